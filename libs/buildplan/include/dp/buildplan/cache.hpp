// The build cache's decisions, as pure functions: what identifies an install (the key of a
// cached node_modules), the per-project index of what is cached, which entry a build restores,
// what is evicted, and the tar commands that pack and unpack an entry inside the sandbox.
//
// Decisions (docs/architecture.md repeats them):
// - Three kinds of entry per project: `modules` (node_modules, keyed by a hash of the package
//   manager, the Node version, the install command, package.json and the lockfile: on an exact
//   hit the install is skipped), `store` (the package managers' caches: npm's cache directory,
//   pnpm's store, yarn's caches, corepack's downloads of pnpm and yarn; after a lockfile change
//   the install takes its packages from them) and `dirs` (the framework's cache folders).
// - Entries are immutable objects with random names; the index (one JSON object per project)
//   says which exist, for which branch (scope), their size and when each was last used. A
//   branch without a `store` or `dirs` entry starts from the production branch's. A `modules`
//   entry serves any branch with the same key: the key decides its content.
// - Eviction at each save: entries unused for max_age, `store` and `dirs` entries superseded by
//   a newer one of the same scope, then the least recently used until the total fits max_bytes.
// - An entry is data for the next sandboxed build only: packed and unpacked by tar inside the
//   sandbox as the build's user; the runner only moves the one archive file.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dp/core/error.hpp"

namespace dp::buildplan {

enum class cache_kind { modules, store, dirs };
std::string_view to_string(cache_kind k) noexcept;
std::optional<cache_kind> parse_cache_kind(std::string_view s) noexcept;

struct cache_entry {
  std::string name;  // the object's file name: "<kind>-<random>.tar.zst" (or .tar.gz)
  cache_kind kind = cache_kind::modules;
  std::string scope;  // the branch that wrote it ("" without one)
  std::string key;    // modules: modules_key(); else ""
  uint64_t bytes = 0;
  int64_t created_at = 0;  // Unix ms
  int64_t used_at = 0;     // Unix ms: written or last restored
  int64_t install_ms = 0;  // modules: how long the install it replaces took
  int64_t restore_ms = 0;  // the last restore (fetch and unpack); 0 before the first
  bool operator==(const cache_entry&) const = default;
};

struct cache_index {
  std::vector<cache_entry> entries;
  uint64_t total_bytes() const noexcept;
  bool operator==(const cache_index&) const = default;
};

std::string to_json(const cache_index& index);
// Strict: an index that does not parse is an error (the caller starts from an empty one).
result<cache_index> parse_cache_index(std::string_view text);

// What decides the content of node_modules after an install.
struct install_identity {
  std::string package_manager;  // npm, pnpm, yarn, bun: from the lockfile's name
  std::string node_version;     // `node --version`
  std::string install_command;  // as displayed: "npm ci" or the project's install_command
  std::string lockfile;         // its name
  std::string lockfile_sha256;  // of its bytes
  std::string manifest_sha256;  // of package.json
};
// Lowercase hex SHA-256 of all of the above.
std::string modules_key(const install_identity& id);

// The identity of the project open at `project` (a descriptor opened before install ran): its
// lockfile and package.json, read beneath it (a symlink is never followed). nullopt when there is
// no lockfile or no package.json: an install without a lockfile is not repeatable.
result<std::optional<install_identity>> read_install_identity(int project,
                                                              std::string install_command,
                                                              std::string node_version);

// The most recently used `modules` entry with this key, of any scope.
const cache_entry* find_modules(const cache_index& index, std::string_view key) noexcept;
// The most recently used entry of `kind` in `scope`, else in `fallback` (the production branch).
const cache_entry* find_latest(const cache_index& index, cache_kind kind, std::string_view scope,
                               std::string_view fallback) noexcept;
// True when restoring `e` took longer than the install it replaces: it does not pay.
bool restore_does_not_pay(const cache_entry& e) noexcept;

struct cache_limits {
  uint64_t max_bytes = uint64_t{5} << 30;  // BUILD_CACHE_MB, per project
  std::chrono::hours max_age{24 * 7};      // BUILD_CACHE_DAYS since the last use
};
// Removes from `index` and returns what goes: expired entries, `store` and `dirs` entries older
// than another of the same kind and scope, then the least recently used until the rest fits.
std::vector<cache_entry> evict(cache_index& index, int64_t now_ms, const cache_limits& limits);

// The compression of a new archive: zstd when the runner finds it, else gzip.
enum class cache_compression { zstd, gzip };
// "<kind>-<random>.tar.zst"
std::string cache_archive_name(cache_kind kind, cache_compression c, std::string_view random);

// tar creating `archive` from `members` (relative to `dir`), symlinks stored as symlinks.
std::vector<std::string> cache_pack_argv(const std::string& archive, const std::string& dir,
                                         const std::vector<std::string>& members,
                                         cache_compression c);
// tar extracting `archive` into `dir` (its compression from its name), owners and permissions
// not restored (set-id bits dropped). Meant to run as the build's user inside the sandbox.
std::vector<std::string> cache_unpack_argv(const std::string& archive, const std::string& dir);

}  // namespace dp::buildplan
