#include "dp/buildplan/cache.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>

#include "dp/buildplan/beneath.hpp"
#include "dp/buildplan/output.hpp"

namespace dp::buildplan {
namespace json = boost::json;

namespace {

// Lockfiles by the package manager they belong to, in the order make_plan looks for them.
constexpr std::pair<const char*, const char*> lockfiles[] = {
    {"package-lock.json", "npm"}, {"npm-shrinkwrap.json", "npm"}, {"pnpm-lock.yaml", "pnpm"},
    {"yarn.lock", "yarn"},        {"bun.lockb", "bun"},           {"bun.lock", "bun"}};

// SHA-256 of a regular file directly in `dir` (no symlink followed); not_found when missing.
result<std::string> file_sha256(int dir, const char* name) {
  auto fd = open_beneath(dir, name, O_RDONLY | O_NONBLOCK);
  if (!fd) {
    return fd.error();
  }
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return make_error(errc::invalid_argument, "{} is not a regular file", name);
  }
  auto digest = sha256_fd(fd->get());
  if (!digest) {
    return digest.error();
  }
  return std::move(digest->first);
}

std::string hex_sha256(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += fmt::format("{:02x}", md[i]);
  }
  return out;
}

bool newer(const cache_entry& a, const cache_entry& b) {
  return a.used_at != b.used_at ? a.used_at > b.used_at : a.created_at > b.created_at;
}

}  // namespace

std::string_view to_string(cache_kind k) noexcept {
  switch (k) {
    case cache_kind::modules:
      return "modules";
    case cache_kind::store:
      return "store";
    case cache_kind::dirs:
      return "dirs";
  }
  return "?";
}

std::optional<cache_kind> parse_cache_kind(std::string_view s) noexcept {
  for (auto k : {cache_kind::modules, cache_kind::store, cache_kind::dirs}) {
    if (s == to_string(k)) {
      return k;
    }
  }
  return std::nullopt;
}

uint64_t cache_index::total_bytes() const noexcept {
  uint64_t n = 0;
  for (const auto& e : entries) {
    n += e.bytes;
  }
  return n;
}

std::string to_json(const cache_index& index) {
  json::array entries;
  for (const auto& e : index.entries) {
    entries.push_back(json::object{{"name", e.name},
                                   {"kind", to_string(e.kind)},
                                   {"scope", e.scope},
                                   {"key", e.key},
                                   {"bytes", e.bytes},
                                   {"created_at", e.created_at},
                                   {"used_at", e.used_at},
                                   {"install_ms", e.install_ms},
                                   {"restore_ms", e.restore_ms}});
  }
  return json::serialize(json::object{{"version", 1}, {"entries", std::move(entries)}});
}

result<cache_index> parse_cache_index(std::string_view text) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  auto bad = [](std::string_view why) {
    return make_error(errc::invalid_argument, "cache index: {}", why);
  };
  if (ec || !v.is_object()) {
    return bad("not a JSON object");
  }
  const auto& o = v.as_object();
  const auto* version = o.if_contains("version");
  if (!version || !version->is_int64() || version->as_int64() != 1) {
    return bad("unknown version");
  }
  const auto* entries = o.if_contains("entries");
  if (!entries || !entries->is_array()) {
    return bad("no entries");
  }
  cache_index index;
  for (const auto& ev : entries->as_array()) {
    if (!ev.is_object()) {
      return bad("an entry is not an object");
    }
    const auto& eo = ev.as_object();
    auto str = [&](const char* k) -> const json::string* {
      const auto* f = eo.if_contains(k);
      return f && f->is_string() ? &f->as_string() : nullptr;
    };
    auto num = [&](const char* k) -> std::optional<int64_t> {
      const auto* f = eo.if_contains(k);
      if (f && f->is_int64() && f->as_int64() >= 0) {
        return f->as_int64();
      }
      if (f && f->is_uint64()) {
        return static_cast<int64_t>(f->as_uint64());
      }
      return std::nullopt;
    };
    cache_entry e;
    const auto *name = str("name"), *kind = str("kind"), *scope = str("scope"), *key = str("key");
    auto bytes = num("bytes"), created = num("created_at"), used = num("used_at"),
         install = num("install_ms"), restore = num("restore_ms");
    if (!name || !kind || !scope || !key || !bytes || !created || !used || !install || !restore) {
      return bad("an entry lacks a field");
    }
    auto k = parse_cache_kind(*kind);
    // The name becomes a storage key and a file name: one segment of safe characters.
    bool safe_name = !name->empty() && name->size() <= 100 &&
                     std::all_of(name->begin(), name->end(),
                                 [](char c) {
                                   return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                                          c == '-' || c == '.';
                                 }) &&
                     name->front() != '.';
    if (!k || !safe_name) {
      return bad("an entry has a bad kind or name");
    }
    e.name = std::string(*name);
    e.kind = *k;
    e.scope = std::string(*scope);
    e.key = std::string(*key);
    e.bytes = static_cast<uint64_t>(*bytes);
    e.created_at = *created;
    e.used_at = *used;
    e.install_ms = *install;
    e.restore_ms = *restore;
    index.entries.push_back(std::move(e));
  }
  return index;
}

std::string modules_key(const install_identity& id) {
  std::string text = "dp-cache-modules-1";
  for (const auto* part : {&id.package_manager, &id.node_version, &id.install_command, &id.lockfile,
                           &id.lockfile_sha256, &id.manifest_sha256}) {
    text.push_back('\0');
    text += *part;
  }
  return hex_sha256(text);
}

result<std::optional<install_identity>> read_install_identity(int project,
                                                              std::string install_command,
                                                              std::string node_version) {
  install_identity id;
  id.install_command = std::move(install_command);
  id.node_version = std::move(node_version);
  for (const auto& [name, manager] : lockfiles) {
    auto digest = file_sha256(project, name);
    if (digest) {
      id.lockfile = name;
      id.package_manager = manager;
      id.lockfile_sha256 = std::move(*digest);
      break;
    }
    if (!digest.error().is(errc::not_found)) {
      return digest.error();
    }
  }
  if (id.lockfile.empty()) {
    return std::optional<install_identity>();
  }
  auto manifest = file_sha256(project, "package.json");
  if (!manifest) {
    if (manifest.error().is(errc::not_found)) {
      return std::optional<install_identity>();
    }
    return manifest.error();
  }
  id.manifest_sha256 = std::move(*manifest);
  return std::optional<install_identity>(std::move(id));
}

const cache_entry* find_modules(const cache_index& index, std::string_view key) noexcept {
  const cache_entry* best = nullptr;
  for (const auto& e : index.entries) {
    if (e.kind == cache_kind::modules && e.key == key && (!best || newer(e, *best))) {
      best = &e;
    }
  }
  return best;
}

const cache_entry* find_latest(const cache_index& index, cache_kind kind, std::string_view scope,
                               std::string_view fallback) noexcept {
  for (auto s : {scope, fallback}) {
    const cache_entry* best = nullptr;
    for (const auto& e : index.entries) {
      if (e.kind == kind && e.scope == s && (!best || newer(e, *best))) {
        best = &e;
      }
    }
    if (best) {
      return best;
    }
  }
  return nullptr;
}

bool restore_does_not_pay(const cache_entry& e) noexcept {
  return e.install_ms > 0 && e.restore_ms > e.install_ms;
}

std::vector<cache_entry> evict(cache_index& index, int64_t now_ms, const cache_limits& limits) {
  auto max_age_ms = std::chrono::duration_cast<std::chrono::milliseconds>(limits.max_age).count();
  auto superseded = [&](const cache_entry& e) {
    if (e.kind == cache_kind::modules) {
      return false;
    }
    return std::any_of(index.entries.begin(), index.entries.end(), [&](const cache_entry& o) {
      return &o != &e && o.kind == e.kind && o.scope == e.scope && o.created_at > e.created_at;
    });
  };
  std::vector<cache_entry> gone;
  std::vector<cache_entry> kept;
  for (auto& e : index.entries) {
    if (now_ms - e.used_at > max_age_ms || superseded(e)) {
      gone.push_back(e);
    } else {
      kept.push_back(e);
    }
  }
  // Most recently used first: what is cut from the end is the least recently used.
  std::sort(kept.begin(), kept.end(), newer);
  uint64_t total = 0;
  std::vector<cache_entry> fits;
  for (auto& e : kept) {
    if (total + e.bytes <= limits.max_bytes) {
      total += e.bytes;
      fits.push_back(std::move(e));
    } else {
      gone.push_back(std::move(e));
    }
  }
  index.entries = std::move(fits);
  return gone;
}

std::string cache_archive_name(cache_kind kind, cache_compression c, std::string_view random) {
  return fmt::format("{}-{}{}", to_string(kind), random,
                     c == cache_compression::zstd ? ".tar.zst" : ".tar.gz");
}

std::vector<std::string> cache_pack_argv(const std::string& archive, const std::string& dir,
                                         const std::vector<std::string>& members,
                                         cache_compression c) {
  // zstd -1 on every core: node_modules compresses to about a third either way, and packing
  // runs after the site is built, on the critical path of the next restore only through its size.
  std::vector<std::string> argv{
      "tar",      c == cache_compression::zstd ? "--use-compress-program=zstd -1 -T0" : "--gzip",
      "--create", "--file",
      archive,    "--directory",
      dir,        "--"};
  argv.insert(argv.end(), members.begin(), members.end());
  return argv;
}

std::vector<std::string> cache_unpack_argv(const std::string& archive, const std::string& dir) {
  bool zstd = archive.ends_with(".zst");
  return {"tar",
          zstd ? "--use-compress-program=zstd -d -T0" : "--gzip",
          "--extract",
          "--no-same-owner",
          "--no-same-permissions",
          "--file",
          archive,
          "--directory",
          dir};
}

}  // namespace dp::buildplan
