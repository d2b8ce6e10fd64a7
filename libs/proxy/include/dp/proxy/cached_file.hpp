// A file in the proxy's memory cache. Small ones are bytes, written from memory with the head.
// Larger ones live in a sealed memfd and go out with sendfile: the socket takes references to
// its pages instead of a copy per response, as nginx does from the page cache.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "dp/http/message.hpp"

namespace dp::proxy {

class cached_file {
 public:
  // Memfds are descriptors: the cache holds at most this many at once (the proxy makes it a
  // quarter of RLIMIT_NOFILE), so that it never takes the descriptors connections need.
  // Descriptors are per process, so the budget and the count are too.
  static void set_memfd_budget(size_t n) noexcept;
  static size_t memfds_live() noexcept;

  // Keeps `bytes` in a memfd when `in_memfd` and the budget allows, else as bytes.
  static std::shared_ptr<const cached_file> make(std::string bytes, bool in_memfd);

  // The range [first, first + length) as a response body that shares the entry (no copy): a
  // file_body on the memfd, or a shared_body on the bytes.
  static http::response::body_type body(std::shared_ptr<const cached_file> self, size_t first,
                                        size_t length);

  cached_file() = default;
  cached_file(const cached_file&) = delete;
  cached_file& operator=(const cached_file&) = delete;
  ~cached_file();

  size_t size() const noexcept { return size_; }
  bool in_memfd() const noexcept { return fd_ >= 0; }

 private:
  std::shared_ptr<const std::string> bytes_;
  int fd_ = -1;
  size_t size_ = 0;
};

}  // namespace dp::proxy
