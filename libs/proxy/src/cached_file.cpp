#include "dp/proxy/cached_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <string_view>

namespace dp::proxy {
namespace {

std::atomic<size_t> memfd_budget{256};
std::atomic<size_t> memfd_count{0};

// A memfd holding `bytes`, sealed against any change; -1 when none can be had (the budget is
// spent, or the kernel refuses), and the caller keeps the bytes in memory instead.
int sealed_memfd(std::string_view bytes) {
  if (memfd_count.fetch_add(1) >= memfd_budget.load()) {
    memfd_count.fetch_sub(1);
    return -1;
  }
  int fd = ::memfd_create("dp-proxy-cache", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  bool ok = fd >= 0;
  size_t done = 0;
  while (ok && done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    ok = n > 0;
    done += ok ? static_cast<size_t>(n) : 0;
  }
  ok =
      ok && ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) == 0;
  if (!ok) {
    if (fd >= 0) {
      ::close(fd);
    }
    memfd_count.fetch_sub(1);
    return -1;
  }
  return fd;
}

}  // namespace

void cached_file::set_memfd_budget(size_t n) noexcept {
  memfd_budget.store(n);
}

size_t cached_file::memfds_live() noexcept {
  return memfd_count.load();
}

std::shared_ptr<const cached_file> cached_file::make(std::string bytes, bool in_memfd) {
  auto f = std::make_shared<cached_file>();
  f->size_ = bytes.size();
  if (in_memfd) {
    f->fd_ = sealed_memfd(bytes);
  }
  if (f->fd_ < 0) {
    f->bytes_ = std::make_shared<const std::string>(std::move(bytes));
  }
  return f;
}

http::response::body_type cached_file::body(std::shared_ptr<const cached_file> self, size_t first,
                                            size_t length) {
  if (self->fd_ >= 0) {
    int fd = self->fd_;
    return http::file_body(std::move(self), fd, first, length);
  }
  return http::shared_body{self->bytes_, first, length};
}

cached_file::~cached_file() {
  if (fd_ >= 0) {
    ::close(fd_);
    memfd_count.fetch_sub(1);
  }
}

}  // namespace dp::proxy
