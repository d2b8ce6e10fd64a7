// JSON responses and THE one error body: {"error":{"code":"...","message":"..."}}.
#pragma once

#include <boost/json/value.hpp>

#include <string_view>

#include "dp/core/error.hpp"
#include "dp/http/message.hpp"

namespace dp::http {

response json_response(unsigned status, const boost::json::value& body);
// `code` is a stable machine-readable word ("not_found"), `message` is for a person.
response error_response(unsigned status, std::string_view code, std::string_view message);
// The status and code for a dp::error (see status_for), with the error's message.
response error_response(const dp::error& e);

// From dp::errc_table: invalid_argument 400, unauthorized 401, forbidden 403, not_found 404,
// conflict 409, too_large 413, unavailable 503, timeout 504, anything else 500.
unsigned status_for(dp::errc e) noexcept;
unsigned status_for(const dp::error& e) noexcept;
// The error body's code for a dp::errc ("invalid_argument", "not_found", ...).
std::string_view code_for(dp::errc e) noexcept;

}  // namespace dp::http
