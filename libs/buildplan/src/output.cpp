#include "dp/buildplan/output.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <memory>

#include "dp/buildplan/beneath.hpp"
#include "dp/core/json_escape.hpp"

namespace dp::buildplan {
namespace fs = std::filesystem;

namespace {

constexpr size_t max_warnings = 100;
// Each level holds one descriptor while its subdirectories are walked.
constexpr size_t max_depth = 128;

dp::error sys_error(std::string_view what, std::string_view name, int err = errno) {
  return make_error(boost::system::error_code(err, boost::system::system_category()),
                    fmt::format("{} '{}'", what, name.empty() ? "." : name));
}

int64_t ctime_ns(const struct stat& st) {
  return static_cast<int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
}

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "/" + name;
}

// The names in a directory (without "." and ".."), sorted.
result<std::vector<std::string>> list_names(int dir, const std::string& key) {
  int fd = ::openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return sys_error("list output directory", key);
  }
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    ::close(fd);
    return sys_error("list output directory", key);
  }
  std::unique_ptr<DIR, int (*)(DIR*)> closer(d, ::closedir);
  std::vector<std::string> names;
  errno = 0;
  while (auto* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") {
      names.emplace_back(n);
    }
  }
  if (errno != 0) {
    return sys_error("list output directory", key);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// A name the proxy can serve and a log can show: no control characters, no backslash (a path
// separator to some clients), valid UTF-8 (object keys are UTF-8).
bool acceptable_name(const std::string& name) {
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f || c == '\\') {
      return false;
    }
  }
  return sanitize_utf8(name) == name;
}

// Printable form of a refused name for the log.
std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : sanitize_utf8(s)) {
    out += c < 0x20 || c == 0x7f ? '?' : static_cast<char>(c);
  }
  return out;
}

class walker {
 public:
  walker(int root, const output_limits& limits) : root_(root), limits_(limits) {}

  // `dir` is open at the directory whose key is `prefix` and whose real path (beneath the root,
  // without symlinks) is `real_prefix`.
  result<void> walk(int dir, const std::string& prefix, const std::string& real_prefix,
                    size_t depth) {
    auto names = list_names(dir, prefix);
    if (!names) {
      return names.error();
    }
    struct stat self {};
    if (::fstat(dir, &self) != 0) {
      return sys_error("stat output directory", prefix);
    }
    chain_.push_back(self);
    for (const auto& name : *names) {
      auto key = join(prefix, name);
      if (!acceptable_name(name)) {
        warn(fmt::format("skipped '{}': control character, backslash or invalid UTF-8 in the name",
                         printable(key)));
        continue;
      }
      if (name == ".git") {
        warn(fmt::format("skipped '{}': git metadata is never published", key));
        continue;
      }
      struct stat st {};
      if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return sys_error("stat output file", key);
      }
      auto real = join(real_prefix, name);
      bool link = S_ISLNK(st.st_mode);
      if (link) {
        // Resolved beneath the output directory, as the kernel would but never above it: an
        // absolute target or one that climbs out is skipped, whatever it names on the host.
        auto text = read_link(dir, name);
        if (text.empty() || text.front() == '/') {
          warn(fmt::format("skipped '{}': symlink leads outside the output directory", key));
          continue;
        }
        auto target = resolve_beneath(root_, join(real_prefix, text));
        if (!target) {
          if (target.error().is(errc::not_found)) {
            warn(fmt::format("skipped '{}': broken symlink", key));
          } else if (target.error().is(errc::invalid_argument)) {
            warn(fmt::format("skipped '{}': symlink leads outside the output directory", key));
          } else {
            return target.error();
          }
          continue;
        }
        real = std::move(*target);
        auto at = open_beneath(root_, real, O_PATH);
        if (!at || ::fstat(at->get(), &st) != 0) {
          warn(fmt::format("skipped '{}': broken symlink", key));
          continue;
        }
      }
      // Symlinks were resolved to a path of real directories; others are opened right here.
      auto open = [&](int flags) -> result<unique_fd> {
        if (link) {
          return open_beneath(root_, real, flags);
        }
        int fd = ::openat(dir, name.c_str(), flags | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
          return sys_error("open output file", key);
        }
        return unique_fd(fd);
      };
      if (S_ISDIR(st.st_mode)) {
        if (std::any_of(chain_.begin(), chain_.end(),
                        [&](const struct stat& s) { return same_file(s, st); })) {
          warn(fmt::format("skipped '{}': symlink loop", key));
          continue;
        }
        if (depth + 1 >= max_depth) {
          warn(fmt::format("skipped '{}': directories nested deeper than {}", key, max_depth));
          continue;
        }
        auto sub = open(O_RDONLY | O_DIRECTORY);
        struct stat now {};
        if (!sub || ::fstat(sub->get(), &now) != 0 || !same_file(now, st)) {
          return make_error(errc::conflict, "output directory '{}' changed while it was read", key);
        }
        if (auto r = walk(sub->get(), key, real, depth + 1); !r) {
          return r;
        }
      } else if (S_ISREG(st.st_mode)) {
        auto fd = open(O_RDONLY | O_NONBLOCK | O_NOCTTY);
        if (!fd) {
          return fd.error();
        }
        if (auto r = add(key, real, fd->get(), st); !r) {
          return r;
        }
      } else {
        warn(fmt::format("skipped '{}': not a regular file", key));
      }
    }
    chain_.pop_back();
    return {};
  }

  output_listing take() {
    if (suppressed_ > 0) {
      listing_.warnings.push_back(fmt::format("... and {} more skipped entries", suppressed_));
    }
    std::sort(listing_.files.begin(), listing_.files.end(),
              [](const auto& a, const auto& b) { return a.key < b.key; });
    return std::move(listing_);
  }

 private:
  // A symlink's target; "" (skipped as leading nowhere) when it cannot be read.
  static std::string read_link(int dir, const std::string& name) {
    std::string target(4096, '\0');
    ssize_t n = ::readlinkat(dir, name.c_str(), target.data(), target.size());
    if (n <= 0 || static_cast<size_t>(n) >= target.size()) {
      return {};
    }
    target.resize(static_cast<size_t>(n));
    return target;
  }

  result<void> add(const std::string& key, const std::string& real, int fd,
                   const struct stat& seen) {
    // Limits are checked before hashing, so an oversized output fails fast.
    if (listing_.files.size() >= limits_.max_files) {
      return make_error(errc::too_large,
                        "the output has more than {} files (the limit); publish fewer files or "
                        "set output_dir to the directory that holds the site",
                        limits_.max_files);
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      return sys_error("stat output file", key);
    }
    if (!S_ISREG(st.st_mode) || !same_file(st, seen)) {
      return make_error(errc::conflict, "output file '{}' changed while it was read", key);
    }
    auto size = static_cast<uint64_t>(st.st_size);
    if (listing_.total_bytes + size > limits_.max_bytes) {
      return make_error(errc::too_large, "the output is larger than {} bytes (the limit) at '{}'",
                        limits_.max_bytes, key);
    }
    auto digest = sha256_fd(fd);
    if (!digest) {
      return make_error(digest.error().code,
                        fmt::format("output file '{}': {}", key, digest.error().message));
    }
    if (digest->second != size) {
      return make_error(errc::conflict, "output file '{}' changed while it was read", key);
    }
    listing_.total_bytes += size;
    listing_.files.push_back({key, real, size, std::move(digest->first),
                              static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino),
                              ctime_ns(st)});
    return {};
  }

  void warn(std::string line) {
    if (listing_.warnings.size() < max_warnings) {
      listing_.warnings.push_back(std::move(line));
    } else {
      ++suppressed_;
    }
  }

  int root_;
  const output_limits& limits_;
  output_listing listing_;
  std::vector<struct stat> chain_;  // directories being walked: a link back to one is a loop
  size_t suppressed_ = 0;
};

}  // namespace

result<std::pair<std::string, uint64_t>> sha256_fd(int fd) {
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return make_error(errc::internal, "sha256: OpenSSL digest initialisation failed");
  }
  auto buf = std::make_unique<std::array<unsigned char, 65536>>();
  uint64_t total = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf->data(), buf->size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return sys_error("read", "");
    }
    if (n == 0) {
      break;
    }
    EVP_DigestUpdate(ctx.get(), buf->data(), static_cast<size_t>(n));
    total += static_cast<uint64_t>(n);
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  std::string hex;
  hex.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    hex += fmt::format("{:02x}", md[i]);
  }
  return std::pair{std::move(hex), total};
}

result<output_listing> scan_output(int dir, const output_limits& limits) {
  walker w(dir, limits);
  if (auto r = w.walk(dir, "", "", 0); !r) {
    return r.error();
  }
  return w.take();
}

result<output_listing> scan_output(const fs::path& dir, const output_limits& limits) {
  unique_fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) {
    return make_error(errc::not_found, "output directory {} does not exist", dir.string());
  }
  return scan_output(fd.get(), limits);
}

result<unique_fd> open_output_file(int dir, const output_file& file) {
  auto fd = open_beneath(dir, file.path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
  if (!fd) {
    return make_error(errc::conflict, "output file '{}' changed after validation: {}", file.key,
                      fd.error().message);
  }
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0 || !S_ISREG(st.st_mode) ||
      static_cast<uint64_t>(st.st_dev) != file.dev ||
      static_cast<uint64_t>(st.st_ino) != file.ino || ctime_ns(st) != file.ctime_ns ||
      static_cast<uint64_t>(st.st_size) != file.size) {
    return make_error(errc::conflict,
                      "output file '{}' changed after validation (another file, or another size)",
                      file.key);
  }
  return fd;
}

}  // namespace dp::buildplan
