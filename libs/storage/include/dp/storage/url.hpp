// STORAGE_URL's parsed form, under the names storage callers use. It is parsed in core
// (dp/core/storage_url.hpp), so that the settings every service shares validate it without
// linking the storage backends.
#pragma once

#include "dp/core/storage_url.hpp"

namespace dp::storage {

using storage_url = dp::config::storage_url;
using dp::config::parse_storage_url;

}  // namespace dp::storage
