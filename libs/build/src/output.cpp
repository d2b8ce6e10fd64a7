#include "dp/build/output.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <memory>

#include "dp/core/json_escape.hpp"

namespace dp::build {
namespace fs = std::filesystem;

namespace {

constexpr size_t max_warnings = 100;

bool inside(const fs::path& base, const fs::path& p) {
  auto rel = p.lexically_relative(base);
  return !rel.empty() && *rel.begin() != "..";
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
  walker(fs::path root, const output_limits& limits) : root_(std::move(root)), limits_(limits) {}

  result<void> walk(const fs::path& dir, const std::string& prefix) {
    std::error_code ec;
    std::vector<fs::directory_entry> entries;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      entries.push_back(*it);
    }
    if (ec) {
      return make_error(ec,
                        fmt::format("list output directory '{}'", prefix.empty() ? "." : prefix));
    }
    std::sort(entries.begin(), entries.end());
    chain_.push_back(dir);
    for (const auto& entry : entries) {
      auto name = entry.path().filename().string();
      auto key = prefix.empty() ? name : prefix + "/" + name;
      if (!acceptable_name(name)) {
        warn(fmt::format("skipped '{}': control character, backslash or invalid UTF-8 in the name",
                         printable(key)));
        continue;
      }
      if (name == ".git") {
        warn(fmt::format("skipped '{}': git metadata is never published", key));
        continue;
      }
      fs::path real = entry.path();
      auto st = entry.symlink_status(ec);
      if (!ec && fs::is_symlink(st)) {
        real = fs::canonical(entry.path(), ec);
        if (ec) {
          warn(fmt::format("skipped '{}': broken symlink", key));
          continue;
        }
        if (real != root_ && !inside(root_, real)) {
          warn(fmt::format("skipped '{}': symlink leads outside the output directory", key));
          continue;
        }
        st = fs::status(real, ec);
      }
      if (ec) {
        return make_error(ec, fmt::format("stat output file '{}'", key));
      }
      if (fs::is_directory(st)) {
        if (std::find(chain_.begin(), chain_.end(), real) != chain_.end()) {
          warn(fmt::format("skipped '{}': symlink loop", key));
          continue;
        }
        if (auto r = walk(real, key); !r) {
          return r;
        }
      } else if (fs::is_regular_file(st)) {
        if (auto r = add(key, real); !r) {
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
  result<void> add(const std::string& key, const fs::path& file) {
    // Limits are checked before hashing, so an oversized output fails fast.
    if (listing_.files.size() >= limits_.max_files) {
      return make_error(errc::too_large,
                        "the output has more than {} files (the limit); publish fewer files or "
                        "set output_dir to the directory that holds the site",
                        limits_.max_files);
    }
    std::error_code ec;
    auto size = fs::file_size(file, ec);
    if (ec) {
      return make_error(ec, fmt::format("size of output file '{}'", key));
    }
    if (listing_.total_bytes + size > limits_.max_bytes) {
      return make_error(errc::too_large, "the output is larger than {} bytes (the limit) at '{}'",
                        limits_.max_bytes, key);
    }
    auto digest = sha256_file(file);
    if (!digest) {
      return digest.error();
    }
    listing_.total_bytes += digest->second;
    listing_.files.push_back({key, file, digest->second, std::move(digest->first)});
    return {};
  }

  void warn(std::string line) {
    if (listing_.warnings.size() < max_warnings) {
      listing_.warnings.push_back(std::move(line));
    } else {
      ++suppressed_;
    }
  }

  fs::path root_;
  const output_limits& limits_;
  output_listing listing_;
  std::vector<fs::path> chain_;  // directories being walked: a link back to one is a loop
  size_t suppressed_ = 0;
};

}  // namespace

result<std::pair<std::string, uint64_t>> sha256_file(const fs::path& file) {
  auto sys_error = [&](std::string_view what) {
    return make_error(boost::system::error_code(errno, boost::system::system_category()),
                      fmt::format("{} {}", what, file.string()));
  };
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return sys_error("open");
  }
  std::unique_ptr<int, void (*)(int*)> closer(&fd, [](int* f) { ::close(*f); });
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
      return sys_error("read");
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

result<output_listing> scan_output(const fs::path& dir, const output_limits& limits) {
  std::error_code ec;
  auto root = fs::canonical(dir, ec);
  if (ec || !fs::is_directory(root, ec)) {
    return make_error(errc::not_found, "output directory {} does not exist", dir.string());
  }
  walker w(root, limits);
  if (auto r = w.walk(root, ""); !r) {
    return r.error();
  }
  return w.take();
}

}  // namespace dp::build
