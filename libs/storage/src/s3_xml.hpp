#pragma once
// Private to libs/storage: reading and writing S3's XML. S3's answers are flat enough for tag
// scanning; these are pure functions, unit-tested in test/s3_xml_test.cpp.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dp/core/error.hpp"
#include "dp/storage/object_store.hpp"

namespace dp::storage {

// Entities (&amp; &lt; &gt; &quot; &apos; &#N; &#xN;) decoded, code points as UTF-8; an unknown
// entity or a lone '&' is kept as it is.
std::string xml_unescape(std::string_view s);
// The five XML special characters as entities.
std::string xml_escape(std::string_view s);

// The text of the next <tag>...</tag> at or after pos; pos moves past it.
std::optional<std::string_view> xml_next(std::string_view doc, std::string_view tag, size_t& pos);
// The unescaped text of the first <tag>...</tag>, or "" when there is none.
std::string xml_value(std::string_view doc, std::string_view tag);

// strptime in UTC; the epoch when s does not match fmt.
std::chrono::system_clock::time_point parse_time(std::string_view s, const char* fmt);
// The leading decimal digits of s; 0 when there are none.
uint64_t to_u64(std::string_view s);

// A ListObjectsV2 answer: the objects whose key starts with store_prefix (which is removed from
// them) and the continuation token. A truncated page without a token is a protocol error, which
// names `prefix` (the caller's prefix).
dp::result<listing> parse_list_page(std::string_view doc, std::string_view store_prefix,
                                    std::string_view prefix);

// The DeleteObjects request body (Quiet) for the keys of `objects`, each under store_prefix.
std::string delete_objects_body(const std::vector<object_info>& objects,
                                std::string_view store_prefix);

// An S3 error answer as a dp::error: its status mapped onto an errc, and S3's <Code> when the
// body has one. Names the operation and the key, never the bucket or the body.
dp::error status_error(std::string_view what, std::string_view key, int status,
                       std::string_view body);

}  // namespace dp::storage
