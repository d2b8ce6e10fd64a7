// AWS Signature Version 4 as a pure function: a request description, credentials and a time in,
// the headers to add (and the intermediate strings, for debugging) out. No I/O, no clock, no
// environment: the same input always signs the same way, which is what the test vectors check.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dp/core/config.hpp"
#include "dp/core/error.hpp"

namespace dp::aws {

struct credentials {
  std::string access_key;
  std::string secret_key;
  std::string session_token;  // empty unless temporary credentials
  std::string region;         // AWS_REGION or AWS_DEFAULT_REGION; may be empty

  bool has_keys() const { return !access_key.empty(); }
};

// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION / AWS_DEFAULT_REGION.
// No keys at all is fine (anonymous); one key without the other is an error.
result<credentials> credentials_from(const dp::config::environment& env);

// How the request path becomes the canonical URI.
enum class uri_style {
  s3,          // raw object path ("/bucket/my key"): each segment encoded once, '/' kept, no
               // normalization; the encoded form is also what goes on the wire
  s3_encoded,  // already encoded exactly as sent on the wire: used as is
  standard,    // the path as sent on the wire: dot segments and duplicate slashes removed, then
               // encoded again (the double encoding every service but S3 expects)
};

using header_list = std::vector<std::pair<std::string, std::string>>;
using query_list = std::vector<std::pair<std::string, std::string>>;

inline constexpr std::string_view unsigned_payload = "UNSIGNED-PAYLOAD";
inline constexpr std::string_view empty_payload_sha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct request {
  std::string_view method;
  std::string_view path = "/";
  uri_style style = uri_style::s3;
  query_list query;     // decoded names and values; encoded and sorted by the signer
  header_list headers;  // must contain host; any case; duplicates are joined with ','
  std::string_view payload_hash = empty_payload_sha256;  // hex sha256 or unsigned_payload
};

struct scope {
  std::string_view region;
  std::string_view service;  // "s3" adds x-amz-content-sha256
  std::chrono::system_clock::time_point time;
};

struct signature {
  header_list
      headers_to_add;  // authorization, x-amz-date, x-amz-security-token, x-amz-content-sha256
  std::string canonical_uri;    // for S3 styles, also the path to put on the wire
  std::string canonical_query;  // the query string to put on the wire
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;  // hex
  std::string authorization;
};

// Signs in the Authorization header. x-amz-date, x-amz-security-token (with a session token)
// and, for S3, x-amz-content-sha256 are signed and returned unless the request already has them.
signature sign(const request& req, const credentials& creds, const scope& sc);

// A presigned URL's query string (X-Amz-Algorithm ... X-Amz-Signature), only host signed,
// payload UNSIGNED-PAYLOAD. The result's canonical_query is the complete query to append.
signature presign(const request& req, const credentials& creds, const scope& sc,
                  std::chrono::seconds expires);

// AWS URI encoding: unreserved characters (A-Z a-z 0-9 - _ . ~) kept, everything else %XX
// (uppercase); '/' kept unless encode_slash.
std::string uri_encode(std::string_view s, bool encode_slash);

// "20150830T123600Z"
std::string amz_date(std::chrono::system_clock::time_point t);

}  // namespace dp::aws
