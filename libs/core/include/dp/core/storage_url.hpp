// STORAGE_URL: where objects live. Parsed once, by the settings every service shares, so a bad
// value stops the service with a clear line; dp::storage opens a store from the parsed form
// (dp/storage/url.hpp names the same types).
//   file:///abs/dir
//   s3://bucket[/prefix][?endpoint=http://127.0.0.1:4569&region=us-east-1&path_style=true]
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "dp/core/error.hpp"

namespace dp::config {

struct storage_url {
  enum class scheme { file, s3 };
  scheme kind = scheme::file;
  std::filesystem::path root;  // file: absolute directory
  std::string bucket;          // s3
  std::string prefix;          // s3: key prefix, empty or ending in '/'
  std::string endpoint;        // s3: scheme://host[:port]; empty means AWS for the region
  std::string region;          // s3: empty means the credentials' region, else us-east-1
  bool path_style = false;     // s3: default true with a custom endpoint, false on AWS
};

result<storage_url> parse_storage_url(std::string_view s);

}  // namespace dp::config
