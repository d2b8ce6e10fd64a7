// The object store a service's settings name: STORAGE_URL with the AWS credentials (keys, or
// the container endpoint that hands out temporary ones). Every service opens its store here.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <memory>

#include "dp/core/error.hpp"
#include "dp/settings/settings.hpp"
#include "dp/storage/object_store.hpp"

namespace dp::storage {

// A store that will not open is start-up misconfiguration: the caller exits
// settings::exit_misconfigured with the error.
dp::result<std::shared_ptr<object_store>> storage_from_settings(boost::asio::any_io_executor ex,
                                                                const settings::common& common);

}  // namespace dp::storage
