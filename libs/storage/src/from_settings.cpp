#include "dp/storage/from_settings.hpp"

namespace dp::storage {

dp::result<std::shared_ptr<object_store>> storage_from_settings(boost::asio::any_io_executor ex,
                                                                const settings::common& common) {
  store_options options;
  options.credentials_endpoint = common.aws_credentials.endpoint();
  return open_storage(std::move(ex), common.storage, common.aws_credentials.keys(), options);
}

}  // namespace dp::storage
