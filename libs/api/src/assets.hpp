// Files compiled into the library (see CMakeLists.txt).
#pragma once

#include <string_view>

namespace dp::api::assets {

extern const std::string_view dashboard_html;
extern const std::string_view openapi_json;

}  // namespace dp::api::assets
