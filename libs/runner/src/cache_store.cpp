#include "cache_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "dp/buildplan/beneath.hpp"
#include "dp/core/clock.hpp"
#include "dp/core/id.hpp"
#include "dp/core/log.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/storage/object_store.hpp"

namespace dp::runner {
namespace fs = std::filesystem;

namespace {

constexpr size_t copy_chunk = 1 << 20;
// An archive no index names is an orphan only after this long: a concurrent build may be about
// to write the index that names it.
constexpr int64_t orphan_age_ms = 3600 * 1000;

dp::error sys_error(std::string_view what) {
  return make_error(std::error_code(errno, std::generic_category()), std::string(what));
}

// Writes all of buf to fd.
result<void> write_all(int fd, const char* buf, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, buf, n);
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w < 0) {
      return sys_error("cache: write");
    }
    buf += w;
    n -= static_cast<size_t>(w);
  }
  return {};
}

// Copies `from` (read from offset 0) to the end of `to`, at most `max` bytes.
result<uint64_t> copy_fd(int from, int to, uint64_t max) {
  std::vector<char> buf(copy_chunk);
  uint64_t total = 0;
  for (;;) {
    ssize_t n = ::pread(from, buf.data(), buf.size(), static_cast<off_t>(total));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return sys_error("cache: read");
    }
    if (n == 0) {
      return total;
    }
    total += static_cast<uint64_t>(n);
    if (total > max) {
      return make_error(errc::too_large, "cache archive larger than {} bytes", max);
    }
    if (auto w = write_all(to, buf.data(), static_cast<size_t>(n)); !w) {
      return w.error();
    }
  }
}

}  // namespace

task<buildplan::cache_index> cache_store::load_index() {
  auto got = co_await storage_.get(proto::cache_index_key(project_));
  if (!got) {
    if (got.error().is(errc::not_found)) {
      co_return buildplan::cache_index{};
    }
    co_return got.error();
  }
  auto text = co_await got->read_all();
  if (!text) {
    co_return text.error();
  }
  auto index = buildplan::parse_cache_index(*text);
  if (!index) {
    dp::log::warn("build cache index unreadable: starting a new one",
                  {{"project", project_}, {"error", index.error().message}});
    co_return buildplan::cache_index{};
  }
  co_return std::move(*index);
}

task<void> cache_store::save_index(const buildplan::cache_index& index,
                                   const std::vector<buildplan::cache_entry>& gone,
                                   int64_t now_ms) {
  storage::put_options po;
  po.content_type = "application/json";
  auto put = co_await storage_.put_buffer(proto::cache_index_key(project_),
                                          buildplan::to_json(index), std::move(po));
  if (!put) {
    co_return put.error();
  }
  for (const auto& e : gone) {
    if (auto r = co_await storage_.remove(proto::cache_object_key(project_, e.name)); !r) {
      co_return r.error();
    }
  }
  // Orphans: archives the index does not name (a save lost to a concurrent one, a crash).
  auto listed = co_await storage_.list(proto::cache_prefix(project_));
  if (!listed) {
    co_return listed.error();
  }
  std::set<std::string> named{proto::cache_index_key(project_)};
  for (const auto& e : index.entries) {
    named.insert(proto::cache_object_key(project_, e.name));
  }
  for (const auto& o : *listed) {
    auto modified = dp::epoch_ms(o.last_modified);
    if (!named.contains(o.key) && now_ms - modified > orphan_age_ms) {
      if (auto r = co_await storage_.remove(o.key); !r) {
        co_return r.error();
      }
    }
  }
  co_return result<void>();
}

std::string cache_store::local_path(const std::string& name) const {
  if (opts_.local_dir.empty()) {
    return {};
  }
  return (opts_.local_dir / project_ / name).string();
}

task<uint64_t> cache_store::fetch(const std::string& name, int work_dir, const std::string& file) {
  // Read back too: a downloaded archive is copied to the local directory from this file.
  unique_fd out(
      ::openat(work_dir, file.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!out) {
    co_return sys_error("cache: cannot create the archive in the work directory");
  }
  auto local = local_path(name);
  if (!local.empty()) {
    unique_fd in(::open(local.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    struct stat st {};
    if (in && ::fstat(in.get(), &st) == 0 && S_ISREG(st.st_mode)) {
      auto n = copy_fd(in.get(), out.get(), opts_.max_bytes);
      if (n) {
        ::futimens(in.get(), nullptr);  // recently used: the local trim keeps it longest
        co_return *n;
      }
      co_return n.error();
    }
  }
  auto got = co_await storage_.get(proto::cache_object_key(project_, name));
  if (!got) {
    co_return got.error();
  }
  std::vector<char> buf(copy_chunk);
  uint64_t total = 0;
  for (;;) {
    auto n = co_await got->body->read_some(buf);
    if (!n) {
      co_return n.error();
    }
    if (*n == 0) {
      break;
    }
    total += *n;
    if (total > opts_.max_bytes) {
      co_return make_error(errc::too_large, "cache archive larger than {} bytes", opts_.max_bytes);
    }
    if (auto w = write_all(out.get(), buf.data(), *n); !w) {
      co_return w.error();
    }
  }
  keep_local(out.get(), name);
  co_return total;
}

result<unique_fd> cache_store::open_packed(int work_dir, const std::string& file,
                                           uint64_t max_bytes) const {
  // O_NONBLOCK: a FIFO the build put there must not block the runner.
  auto fd = buildplan::open_beneath(work_dir, file, O_RDONLY | O_NONBLOCK);
  if (!fd) {
    return fd.error();
  }
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) {
    return sys_error("cache: stat of the packed archive");
  }
  if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
    return make_error(errc::invalid_argument,
                      "the packed cache archive is not a regular file with one link");
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return make_error(errc::too_large, "the packed cache archive is {} MiB, over {} MiB",
                      st.st_size >> 20, max_bytes >> 20);
  }
  return std::move(*fd);
}

task<uint64_t> cache_store::store(const std::string& name, unique_fd archive) {
  struct stat st {};
  if (::fstat(archive.get(), &st) != 0) {
    co_return sys_error("cache: stat of the packed archive");
  }
  keep_local(archive.get(), name);
  storage::put_options po;
  po.content_type = "application/octet-stream";
  auto put = co_await storage_.put_file(proto::cache_object_key(project_, name), std::move(archive),
                                        std::move(po));
  if (!put) {
    co_return put.error();
  }
  co_return put->size;
}

void cache_store::keep_local(int from, const std::string& name) {
  auto path = local_path(name);
  if (path.empty()) {
    return;
  }
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  auto tmp = path + ".tmp-" + dp::random_hex(4);
  unique_fd to(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  auto copied = to ? copy_fd(from, to.get(), UINT64_MAX) : result<uint64_t>(sys_error("open"));
  if (!copied || ::rename(tmp.c_str(), path.c_str()) != 0) {
    dp::log::warn("cannot keep a local copy of a build cache archive",
                  {{"path", path},
                   {"error", copied ? std::string("rename failed") : copied.error().message}});
    fs::remove(tmp, ec);
    return;
  }
  trim_local();
}

void cache_store::trim_local() {
  struct file {
    fs::path path;
    uint64_t bytes;
    fs::file_time_type used;
  };
  std::vector<file> files;
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(opts_.local_dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code e2;
    if (it->is_regular_file(e2) && !it->is_symlink(e2)) {
      auto bytes = it->file_size(e2);
      auto used = it->last_write_time(e2);
      if (!e2) {
        files.push_back({it->path(), bytes, used});
        total += bytes;
      }
    }
  }
  // Least recently used first.
  std::sort(files.begin(), files.end(),
            [](const file& a, const file& b) { return a.used < b.used; });
  for (const auto& f : files) {
    if (total <= opts_.local_max_bytes) {
      break;
    }
    if (fs::remove(f.path, ec)) {
      total -= f.bytes;
    }
  }
}

}  // namespace dp::runner
