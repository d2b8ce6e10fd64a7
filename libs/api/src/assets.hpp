// Files compiled into the library (see CMakeLists.txt).
#pragma once

#include <string_view>

namespace dp::api::assets {

// One file of the dashboard (libs/api/assets/), served at /ui/<name>.
struct file {
  std::string_view name;
  std::string_view content_type;
  std::string_view etag;  // quoted: a hash of the content
  std::string_view body;
};

// The dashboard file of that name; null when there is none.
const file* find(std::string_view name);

extern const std::string_view openapi_json;

}  // namespace dp::api::assets
