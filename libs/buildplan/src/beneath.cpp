#include "dp/buildplan/beneath.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <deque>
#include <system_error>
#include <vector>

namespace dp::buildplan {

namespace {

// Set once openat2 is known to be missing (Linux < 5.6, or a seccomp filter that refuses it).
std::atomic<bool> no_openat2{false};

dp::error errno_error(std::string_view rel, int err) {
  auto why = std::error_code(err, std::generic_category()).message();
  if (err == ENOENT) {
    return make_error(errc::not_found, "'{}' does not exist", rel);
  }
  if (err == ELOOP || err == EXDEV || err == ENOTDIR) {
    // ENOTDIR: O_DIRECTORY | O_NOFOLLOW met a symlink (or a file where a directory should be).
    return make_error(errc::invalid_argument,
                      "'{}' is not a real directory or file inside the tree (a symlink on the "
                      "way, or a file where a directory should be)",
                      rel);
  }
  return make_error(errc::io, "open '{}': {}", rel, why);
}

std::vector<std::string> split(std::string_view rel) {
  std::vector<std::string> parts;
  while (!rel.empty()) {
    auto slash = rel.find('/');
    auto part = rel.substr(0, slash);
    if (!part.empty() && part != ".") {
      parts.emplace_back(part);
    }
    if (slash == std::string_view::npos) {
      break;
    }
    rel.remove_prefix(slash + 1);
  }
  return parts;
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) {
      out += '/';
    }
    out += p;
  }
  return out;
}

// The fallback: each directory opened with O_NOFOLLOW from the one before.
result<unique_fd> walk(int dir, const std::vector<std::string>& parts, std::string_view rel,
                       int flags) {
  unique_fd cur;
  int at = dir;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    int fd = ::openat(at, parts[i].c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      return errno_error(rel, errno);
    }
    cur.reset(fd);
    at = cur.get();
  }
  int fd = ::openat(at, parts.back().c_str(), flags | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return errno_error(rel, errno);
  }
  return unique_fd(fd);
}

}  // namespace

result<unique_fd> open_beneath(int dir, std::string_view rel, int flags) {
  if (!rel.empty() && rel.front() == '/') {
    return make_error(errc::invalid_argument, "'{}' is not a relative path", rel);
  }
  auto parts = split(rel);
  for (const auto& p : parts) {
    if (p == "..") {
      return make_error(errc::invalid_argument, "'{}' contains '..'", rel);
    }
  }
  if (parts.empty()) {
    int fd = ::openat(dir, ".", flags | O_CLOEXEC);
    if (fd < 0) {
      return errno_error(".", errno);
    }
    return unique_fd(fd);
  }
  if (!no_openat2.load(std::memory_order_relaxed)) {
    std::string path = join(parts);
    open_how how{};
    how.flags = static_cast<uint64_t>(flags | O_NOFOLLOW | O_CLOEXEC);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    long fd = ::syscall(SYS_openat2, dir, path.c_str(), &how, sizeof how);
    if (fd >= 0) {
      return unique_fd(static_cast<int>(fd));
    }
    if (errno != ENOSYS && errno != EPERM) {
      return errno_error(rel, errno);
    }
    no_openat2.store(true, std::memory_order_relaxed);
  }
  return walk(dir, parts, rel, flags);
}

result<std::string> resolve_beneath(int dir, std::string_view rel) {
  if (!rel.empty() && rel.front() == '/') {
    return make_error(errc::invalid_argument, "'{}' is not a relative path", rel);
  }
  std::vector<std::string> done;  // real directories, then the last component
  auto first = split(rel);
  std::deque<std::string> todo(first.begin(), first.end());
  int links = 0;
  while (!todo.empty()) {
    auto part = std::move(todo.front());
    todo.pop_front();
    if (part == "..") {
      // `done` holds no symlink, so going up is lexical.
      if (done.empty()) {
        return make_error(errc::invalid_argument, "'{}' leads above the directory", rel);
      }
      done.pop_back();
      continue;
    }
    auto parent = open_beneath(dir, join(done), O_PATH | O_DIRECTORY);
    if (!parent) {
      return parent.error();
    }
    struct stat st {};
    if (::fstatat(parent->get(), part.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      done.push_back(part);
      return errno_error(join(done), errno);
    }
    if (!S_ISLNK(st.st_mode)) {
      done.push_back(std::move(part));
      if (!todo.empty() && !S_ISDIR(st.st_mode)) {
        return make_error(errc::invalid_argument, "'{}' is not a directory", join(done));
      }
      continue;
    }
    if (++links > 40) {
      return make_error(errc::invalid_argument, "'{}': too many levels of symlinks", rel);
    }
    std::string target(4096, '\0');
    ssize_t n = ::readlinkat(parent->get(), part.c_str(), target.data(), target.size());
    if (n < 0 || static_cast<size_t>(n) >= target.size()) {
      return make_error(errc::io, "readlink '{}/{}'", join(done), part);
    }
    target.resize(static_cast<size_t>(n));
    if (target.empty() || target.front() == '/') {
      return make_error(errc::invalid_argument, "the symlink '{}' leads outside (to '{}')",
                        done.empty() ? part : join(done) + "/" + part, target);
    }
    auto more = split(target);
    todo.insert(todo.begin(), more.begin(), more.end());
  }
  return join(done);
}

void use_openat2_for_tests(bool on) noexcept {
  no_openat2.store(!on, std::memory_order_relaxed);
}

result<unique_fd> open_directory(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return make_error(std::error_code(errno, std::generic_category()),
                      fmt::format("open directory {}", path));
  }
  return unique_fd(fd);
}

}  // namespace dp::buildplan
