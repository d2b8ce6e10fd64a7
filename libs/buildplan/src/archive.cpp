#include "dp/buildplan/archive.hpp"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "dp/proto/types.hpp"

namespace dp::buildplan {

namespace fs = std::filesystem;

namespace {

constexpr size_t block = 512;

dp::error refused(std::string_view name, std::string_view why) {
  return dp::make_error(errc::invalid_argument, "archive member '{}' refused: {}", name, why);
}

// Reads the decompressed tar stream (several gzip members are one stream, as gzip -d reads them).
class gz_reader {
 public:
  explicit gz_reader(const fs::path& p) : file_(gzopen(p.c_str(), "rb"), &gzclose) {}
  bool is_open() const { return file_ != nullptr; }

  // Exactly n bytes, or an error (a truncated archive, bad compressed data).
  dp::result<void> read(char* out, size_t n) {
    while (n > 0) {
      int got = gzread(file_.get(), out, static_cast<unsigned>(std::min<size_t>(n, 1 << 20)));
      if (got <= 0) {
        int err = 0;
        const char* msg = gzerror(file_.get(), &err);
        return dp::make_error(errc::invalid_argument, "the archive is not a valid tar.gz: {}",
                              got == 0 ? "unexpected end" : msg);
      }
      out += got;
      n -= static_cast<size_t>(got);
    }
    return {};
  }

  dp::result<std::string> read_string(uint64_t n, uint64_t max) {
    if (n > max) {
      return dp::make_error(errc::invalid_argument, "the archive has a header of {} bytes", n);
    }
    std::string s(static_cast<size_t>(n), '\0');
    if (auto r = read(s.data(), s.size()); !r) {
      return r.error();
    }
    if (auto r = skip_padding(n); !r) {
      return r.error();
    }
    return s;
  }

  dp::result<void> skip_padding(uint64_t n) {
    std::array<char, block> pad{};
    size_t rest = static_cast<size_t>((block - n % block) % block);
    return read(pad.data(), rest);
  }

 private:
  std::unique_ptr<gzFile_s, int (*)(gzFile)> file_;
};

// An octal field (or GNU base-256 for large sizes).
std::optional<uint64_t> number(const char* f, size_t len) {
  if (len > 0 && (static_cast<unsigned char>(f[0]) & 0x80)) {
    uint64_t v = 0;
    for (size_t i = 1; i < len; ++i) {
      if (v >> 56) {
        return std::nullopt;
      }
      v = (v << 8) | static_cast<unsigned char>(f[i]);
    }
    return v;
  }
  uint64_t v = 0;
  size_t i = 0;
  while (i < len && f[i] == ' ') {
    ++i;
  }
  bool any = false;
  for (; i < len && f[i] >= '0' && f[i] <= '7'; ++i) {
    v = v * 8 + static_cast<uint64_t>(f[i] - '0');
    any = true;
  }
  if (i < len && f[i] != ' ' && f[i] != '\0') {
    return std::nullopt;
  }
  return any ? std::optional<uint64_t>(v) : std::optional<uint64_t>(0);
}

std::string field(const char* f, size_t len) {
  return std::string(f, strnlen(f, len));
}

// pax records "<len> key=value\n".
std::map<std::string, std::string> pax_records(std::string_view s) {
  std::map<std::string, std::string> out;
  while (!s.empty()) {
    auto sp = s.find(' ');
    if (sp == std::string_view::npos) {
      break;
    }
    size_t len = 0;
    for (char c : s.substr(0, sp)) {
      len = len * 10 + static_cast<size_t>(c - '0');
    }
    if (len <= sp + 1 || len > s.size()) {
      break;
    }
    auto rec = s.substr(sp + 1, len - sp - 2);  // without the trailing newline
    if (auto eq = rec.find('='); eq != std::string_view::npos) {
      out[std::string(rec.substr(0, eq))] = std::string(rec.substr(eq + 1));
    }
    s.remove_prefix(len);
  }
  return out;
}

// "./a/b/" -> "a/b"; empty for the archive's root entry.
std::string clean_name(std::string name) {
  while (name.starts_with("./")) {
    name.erase(0, 2);
  }
  while (name.ends_with('/')) {
    name.pop_back();
  }
  return name == "." ? std::string() : name;
}

// The lexical target of a symlink at `name`, relative to the root; nullopt if it leaves the tree.
std::optional<std::string> link_target_inside(const std::string& name, const std::string& target) {
  if (target.empty() || target.front() == '/') {
    return std::nullopt;
  }
  std::vector<std::string> parts;
  auto parent = fs::path(name).parent_path();
  for (const auto& p : parent) {
    parts.push_back(p.string());
  }
  for (const auto& p : fs::path(target)) {
    auto s = p.string();
    if (s == "..") {
      if (parts.empty()) {
        return std::nullopt;
      }
      parts.pop_back();
    } else if (s != "." && !s.empty()) {
      parts.push_back(s);
    }
  }
  std::string out;
  for (const auto& p : parts) {
    out += (out.empty() ? "" : "/") + p;
  }
  return out;
}

struct pending_link {
  std::string name;
  std::string target;
};

}  // namespace

dp::result<archive_report> extract_tar_gz(const fs::path& archive, const fs::path& dest,
                                          const archive_limits& limits) {
  gz_reader in(archive);
  if (!in.is_open()) {
    return dp::make_error(errc::io, "cannot open the source archive");
  }
  archive_report report;
  uint64_t members = 0;
  // Regular files written so far, with their sizes: the targets a hard link may name.
  std::map<std::string, uint64_t> files;
  std::vector<pending_link> links;
  std::set<std::string> link_names;
  std::optional<std::string> long_name, long_link;
  std::map<std::string, std::string> pax;
  std::array<char, block> h{};
  std::vector<char> buf(1 << 16);
  int zero_blocks = 0;
  for (;;) {
    if (auto r = in.read(h.data(), block); !r) {
      return r.error();
    }
    if (std::all_of(h.begin(), h.end(), [](char c) { return c == '\0'; })) {
      if (++zero_blocks == 2) {
        break;  // the end-of-archive marker
      }
      continue;
    }
    zero_blocks = 0;
    // The checksum guards against a file that is not a tar (or is corrupted).
    uint64_t sum = 0;
    for (size_t i = 0; i < block; ++i) {
      sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(h[i]);
    }
    auto stored = number(&h[148], 8);
    if (!stored || *stored != sum) {
      return dp::make_error(errc::invalid_argument, "the archive is not a valid tar (checksum)");
    }
    auto size = number(&h[124], 12);
    auto mode = number(&h[100], 8);
    if (!size || !mode) {
      return dp::make_error(errc::invalid_argument, "the archive has a malformed header");
    }
    char type = h[156];
    // Headers that describe the next member.
    if (type == 'L' || type == 'K' || type == 'x' || type == 'g') {
      auto text = in.read_string(*size, 1 << 20);
      if (!text) {
        return text.error();
      }
      if (type == 'L') {
        long_name = field(text->data(), text->size());
      } else if (type == 'K') {
        long_link = field(text->data(), text->size());
      } else if (type == 'x') {
        pax = pax_records(*text);
      }
      continue;
    }
    std::string name = field(&h[0], 100);
    if (std::memcmp(&h[257], "ustar", 5) == 0 && h[345] != '\0') {
      name = field(&h[345], 155) + "/" + name;
    }
    if (long_name) {
      name = *long_name;
    }
    std::string link = long_link ? *long_link : field(&h[157], 100);
    if (auto p = pax.find("path"); p != pax.end()) {
      name = p->second;
    }
    if (auto p = pax.find("linkpath"); p != pax.end()) {
      link = p->second;
    }
    if (auto p = pax.find("size"); p != pax.end()) {
      uint64_t v = 0;
      for (char c : p->second) {
        if (c < '0' || c > '9') {
          return dp::make_error(errc::invalid_argument, "the archive has a malformed pax size");
        }
        v = v * 10 + static_cast<uint64_t>(c - '0');
      }
      size = v;
    }
    long_name.reset();
    long_link.reset();
    pax.clear();

    if (++members > limits.max_members) {
      return dp::make_error(errc::too_large, "the archive has more than {} members",
                            limits.max_members);
    }
    std::string raw = name;
    if (!name.empty() && name.front() == '/') {
      return refused(raw, "absolute path");
    }
    name = clean_name(std::move(name));
    bool is_file = type == '0' || type == '\0' || type == '7';
    if (name.empty()) {
      if (type != '5') {
        return refused(raw, "empty name");
      }
    } else if (!proto::is_safe_relative_path(name)) {
      return refused(raw, "'..', '.', empty or backslash path segment");
    }
    // Nothing is written through a symlink of the archive (they are created last anyway).
    for (auto p = fs::path(name).parent_path(); !p.empty(); p = p.parent_path()) {
      if (link_names.count(p.string())) {
        return refused(raw, "inside the symlink '" + p.string() + "'");
      }
    }
    uint64_t data = (is_file ? *size : 0);
    if (!is_file && type != '5' && *size != 0 && type != '1' && type != '2') {
      return refused(raw, fmt::format("unsupported member type '{}'", type));
    }
    if (report.bytes + data > limits.max_bytes) {
      return dp::make_error(errc::too_large, "the archive unpacks to more than {} bytes",
                            limits.max_bytes);
    }
    std::error_code ec;
    auto target = dest / name;
    if (type == '5') {
      if (!name.empty()) {
        fs::create_directories(target, ec);
      }
    } else if (is_file) {
      fs::create_directories(target.parent_path(), ec);
      if (!ec && fs::is_symlink(target, ec)) {
        return refused(raw, "replaces a symlink");
      }
      std::ofstream out(target, std::ios::binary | std::ios::trunc);
      if (!out) {
        return dp::make_error(errc::io, "cannot write '{}'", name);
      }
      for (uint64_t left = *size; left > 0;) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
        if (auto r = in.read(buf.data(), n); !r) {
          return r.error();
        }
        out.write(buf.data(), static_cast<std::streamsize>(n));
        left -= n;
      }
      out.close();
      if (!out) {
        return dp::make_error(errc::io, "cannot write '{}'", name);
      }
      if (auto r = in.skip_padding(*size); !r) {
        return r.error();
      }
      fs::permissions(target, (*mode & 0111) ? fs::perms(0755) : fs::perms(0644), ec);
      files[name] = data;
      report.files++;
      report.bytes += data;
    } else if (type == '2') {
      if (!link_target_inside(name, link)) {
        return refused(raw, "symlink to '" + link + "' leaves the tree");
      }
      links.push_back({name, link});
      link_names.insert(name);
    } else if (type == '1') {
      auto from = files.find(clean_name(link));
      if (from == files.end()) {
        return refused(raw, "hard link to '" + link + "', not an earlier file of the archive");
      }
      // Unpacked as a copy, so it takes its target's size on disk and counts it: an archive of
      // one large file and many links to it must not fill the disk past max_bytes.
      uint64_t copied = from->second;
      if (report.bytes + copied > limits.max_bytes) {
        return dp::make_error(errc::too_large, "the archive unpacks to more than {} bytes",
                              limits.max_bytes);
      }
      fs::create_directories(target.parent_path(), ec);
      if (!ec) {
        fs::copy_file(dest / from->first, target, fs::copy_options::overwrite_existing, ec);
      }
      files[name] = copied;
      report.files++;
      report.bytes += copied;
    } else {
      return refused(raw, type == '3' || type == '4' ? "device file"
                          : type == '6'              ? "FIFO"
                                                     : fmt::format("member type '{}'", type));
    }
    if (ec) {
      return dp::make_error(errc::io, "cannot unpack '{}': {}", name, ec.message());
    }
  }
  std::error_code root_ec;
  auto root = fs::canonical(dest, root_ec);
  if (root_ec) {
    return dp::make_error(errc::io, "cannot resolve {}: {}", dest.string(), root_ec.message());
  }
  for (const auto& l : links) {
    std::error_code ec;
    auto at = dest / l.name;
    fs::create_directories(at.parent_path(), ec);
    if (!ec && fs::exists(fs::symlink_status(at))) {
      return refused(l.name, "symlink over an existing member");
    }
    if (!ec) {
      fs::create_symlink(l.target, at, ec);
    }
    if (ec) {
      return dp::make_error(errc::io, "cannot unpack '{}': {}", l.name, ec.message());
    }
  }
  // Each target was checked by name; a chain of links ("a -> .", "b -> a/../x") is checked here
  // by resolving it on disk, once every link exists.
  for (const auto& l : links) {
    std::error_code ec;
    // Resolved from the link's real directory, so that a dangling target is checked too.
    auto dir = fs::canonical((dest / l.name).parent_path(), ec);
    auto real = ec ? fs::path() : fs::weakly_canonical(dir / l.target, ec);
    auto rel = real.lexically_relative(root);
    if (ec || rel.empty() || *rel.begin() == "..") {
      return refused(l.name, "symlink to '" + l.target + "' leaves the tree");
    }
  }
  return report;
}

}  // namespace dp::buildplan
