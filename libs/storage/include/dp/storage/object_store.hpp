// The one object storage interface. Two backends: file:// (a local directory) and s3:// (any
// S3: AWS, MinIO, s3rver). Every operation is an awaitable returning dp::result; none throws.
//
// Keys are UTF-8 paths with '/' separators, as S3 keys; both backends accept the same keys
// (validate_key): no empty, "." or ".." segment, no leading '/', no NUL, backslash or control
// character, at most 1024 bytes, no segment starting with ".dp-" (reserved for the file backend).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dp/aws/container_credentials.hpp"
#include "dp/aws/sigv4.hpp"
#include "dp/core/error.hpp"
#include "dp/core/unique_fd.hpp"
#include "dp/storage/url.hpp"

namespace dp::storage {

template <class T>
using task = boost::asio::awaitable<dp::result<T>>;

using metadata_map = std::map<std::string, std::string>;

struct object_info {
  std::string key;
  uint64_t size = 0;
  std::string etag;  // quoted, as in an HTTP ETag header: "\"9f86d0...\""
  std::string content_type;
  std::string cache_control;
  std::chrono::system_clock::time_point last_modified{};
  metadata_map metadata;  // user metadata; names lowercase [a-z0-9-]
};

struct put_options {
  std::string content_type = "application/octet-stream";
  std::string cache_control;
  metadata_map metadata;
};

// An HTTP byte range, inclusive: {first, last}; last empty means to the end. A suffix range
// ("the last n bytes") is {nullopt, n}.
struct byte_range {
  std::optional<uint64_t> first;
  std::optional<uint64_t> last;
};

struct get_options {
  std::optional<byte_range> range;
  std::string if_none_match;  // an ETag as returned in object_info::etag, or "*"
};

// Reads an object's body in pieces. read_some returns 0 at the end.
class object_reader {
 public:
  virtual ~object_reader() = default;
  virtual task<size_t> read_some(std::span<char> buf) = 0;
};

struct get_result {
  object_info info;           // info.size is the whole object's size
  bool not_modified = false;  // If-None-Match matched: no body
  uint64_t first = 0;         // the bytes the body holds: [first, first + length)
  uint64_t length = 0;
  bool partial = false;  // a range was served (HTTP 206)
  std::unique_ptr<object_reader> body;

  // Reads the rest of the body into a string (tests, small objects).
  task<std::string> read_all();
};

struct listing {
  std::vector<object_info> objects;  // sorted by key (bytewise); no user metadata
  std::string next_token;            // empty on the last page
};

class object_store {
 public:
  virtual ~object_store() = default;

  virtual task<object_info> put_buffer(std::string key, std::string data, put_options opts) = 0;
  // From a file the caller opened for reading (a regular file), read by offset from its start,
  // never through a path: a file swapped after the caller checked and opened it cannot be read
  // instead (the build runner uploads the inodes it validated).
  virtual task<object_info> put_file(std::string key, dp::unique_fd file, put_options opts) = 0;
  // From a path the caller trusts: opened (errc::not_found when missing), then as above.
  task<object_info> put_file(std::string key, std::filesystem::path file, put_options opts);
  // errc::not_found for a missing key; errc::invalid_argument for an unsatisfiable range.
  virtual task<get_result> get(std::string key, get_options opts) = 0;
  // Not a default argument: g++ 12 destroys a coroutine's class-type default argument as if it
  // lived in the callee's frame when the caller is a coroutine too (ASan: bad free).
  task<get_result> get(std::string key) { return get(std::move(key), get_options{}); }
  virtual task<object_info> head(std::string key) = 0;
  // Up to max_keys (at most 1000) keys starting with prefix, after the token of the last page.
  virtual task<listing> list_page(std::string prefix, std::string token,
                                  size_t max_keys = 1000) = 0;
  // Deleting a missing key is not an error (as S3).
  virtual task<void> remove(std::string key) = 0;
  // Deletes every key under prefix; returns how many were deleted.
  virtual task<size_t> remove_prefix(std::string prefix) = 0;

  // The file holding key, for zero-copy serving (sendfile); nullopt when the store is not local.
  // The path is only valid while nobody overwrites or deletes the key.
  virtual std::optional<std::filesystem::path> local_path(std::string_view key) const = 0;

  // Every key under prefix, following continuation tokens.
  task<std::vector<object_info>> list(std::string prefix);
};

// Rejects keys that are unsafe on a file system or ambiguous in a URL (see the top of this file).
dp::result<void> validate_key(std::string_view key);

struct store_options {
  size_t max_in_flight = 32;                  // s3: requests in flight at once per store
  uint64_t multipart_threshold = 8ull << 20;  // s3: put_file above this uses multipart upload
  uint64_t part_size = 8ull << 20;
  int max_attempts = 4;  // s3: tries per request on 5xx, 503 SlowDown, I/O
  std::chrono::milliseconds base_backoff{100};
  std::chrono::seconds request_timeout{60};
  bool fsync = true;        // file: fsync each file before its rename (durable across a crash)
  size_t file_threads = 4;  // file: threads for blocking file system calls
  // s3: without keys, fetch temporary ones here (an ECS task role); see
  // dp/aws/container_credentials.hpp.
  std::optional<dp::aws::container_endpoint> credentials_endpoint;
};

// Opens the store a STORAGE_URL names. file:// creates the directory if needed.
dp::result<std::shared_ptr<object_store>> open_storage(boost::asio::any_io_executor ex,
                                                       const storage_url& url,
                                                       const dp::aws::credentials& creds,
                                                       store_options opts = {});

// Uploads every regular file under local_dir to key_prefix + relative path, `concurrency` at a
// time; content types from the file extension. Returns the number of files uploaded.
task<size_t> upload_directory(object_store& store, std::filesystem::path local_dir,
                              std::string key_prefix, size_t concurrency);

// A content type for a file name by its extension ("text/html; charset=utf-8").
std::string_view content_type_for(std::string_view name);

}  // namespace dp::storage
