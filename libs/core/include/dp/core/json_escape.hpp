// Minimal JSON string escaping for hot paths that must not build a boost::json::value
// (log lines, log events). Output is valid JSON for any input bytes: invalid UTF-8 is replaced.
#pragma once

#include <string>
#include <string_view>

namespace dp {

// Appends `s` as a quoted JSON string. Invalid UTF-8 sequences become U+FFFD.
void append_json_string(std::string& out, std::string_view s);

// Replaces invalid UTF-8 sequences with U+FFFD (so a line is safe to put in any JSON encoder).
std::string sanitize_utf8(std::string_view s);

}  // namespace dp
