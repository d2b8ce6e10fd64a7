// The build cache's pure decisions: the index round-trips and refuses bad names, the modules key
// changes with each of its inputs, lookups prefer the branch then the production branch, and
// eviction drops the expired, the superseded and then the least recently used.
#include "dp/buildplan/cache.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "dp/core/unique_fd.hpp"
#include "dp/test/harness.hpp"

namespace {

using dp::buildplan::cache_entry;
using dp::buildplan::cache_index;
using dp::buildplan::cache_kind;

constexpr int64_t day_ms = 24 * 3600 * 1000;

cache_entry entry(std::string name, cache_kind k, std::string scope, uint64_t bytes, int64_t used,
                  std::string key = "") {
  return cache_entry{.name = std::move(name),
                     .kind = k,
                     .scope = std::move(scope),
                     .key = std::move(key),
                     .bytes = bytes,
                     .created_at = used,
                     .used_at = used};
}

TEST(CacheIndex, RoundTripsAndRefusesUnsafeNames) {
  cache_index i;
  i.entries.push_back(entry("modules-ab12.tar.zst", cache_kind::modules, "main", 10, 5, "k"));
  i.entries.push_back(entry("store-cd34.tar.gz", cache_kind::store, "", 20, 6));
  i.entries[0].install_ms = 9000;
  i.entries[0].restore_ms = 800;
  auto back = dp::buildplan::parse_cache_index(dp::buildplan::to_json(i));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, i);
  EXPECT_EQ(back->total_bytes(), 30u);

  for (const char* name : {"../index.json", "a/b", ".hidden", "", "UPPER"}) {
    auto bad = i;
    bad.entries[0].name = name;
    EXPECT_FALSE(dp::buildplan::parse_cache_index(dp::buildplan::to_json(bad))) << name;
  }
  EXPECT_FALSE(dp::buildplan::parse_cache_index("[]"));
  EXPECT_FALSE(dp::buildplan::parse_cache_index(R"({"version":2,"entries":[]})"));
}

TEST(CacheKey, EveryInputCounts) {
  dp::buildplan::install_identity id{"npm", "v20.1.0", "npm ci", "package-lock.json", "aa", "bb"};
  auto base = dp::buildplan::modules_key(id);
  EXPECT_EQ(base.size(), 64u);
  EXPECT_EQ(dp::buildplan::modules_key(id), base);
  using id_t = dp::buildplan::install_identity;
  for (auto field : {&id_t::package_manager, &id_t::node_version, &id_t::install_command,
                     &id_t::lockfile, &id_t::lockfile_sha256, &id_t::manifest_sha256}) {
    auto changed = id;
    (changed.*field).append("x");
    EXPECT_NE(dp::buildplan::modules_key(changed), base);
  }
}

TEST(CacheKey, ReadsTheLockfileBeneathTheProjectNeverThroughASymlink) {
  dp::test::temp_dir dir("dp-cache-key");
  auto write = [&](const char* name, const char* text) {
    std::ofstream(dir.path() / name) << text;
  };
  int fd = ::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  dp::unique_fd project(fd);
  // No lockfile: nothing to key.
  write("package.json", "{}");
  auto none = dp::buildplan::read_install_identity(fd, "npm install", "v20");
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);

  write("package-lock.json", "{\"lockfileVersion\":3}");
  auto id = dp::buildplan::read_install_identity(fd, "npm ci", "v20");
  ASSERT_TRUE(id && *id);
  EXPECT_EQ((*id)->package_manager, "npm");
  EXPECT_EQ((*id)->lockfile, "package-lock.json");
  auto key = dp::buildplan::modules_key(**id);

  write("package-lock.json", "{\"lockfileVersion\":3,\"x\":1}");
  auto changed = dp::buildplan::read_install_identity(fd, "npm ci", "v20");
  ASSERT_TRUE(changed && *changed);
  EXPECT_NE(dp::buildplan::modules_key(**changed), key);

  // A lockfile that is a symlink (to a host file) is refused, never read.
  std::filesystem::remove(dir.path() / "package-lock.json");
  std::filesystem::create_symlink("/etc/passwd", dir.path() / "package-lock.json");
  EXPECT_FALSE(dp::buildplan::read_install_identity(fd, "npm ci", "v20"));
}

TEST(CacheLookup, BranchThenProductionBranchModulesByKeyOnly) {
  cache_index i;
  i.entries.push_back(entry("store-a.tar.zst", cache_kind::store, "main", 1, 10));
  i.entries.push_back(entry("store-b.tar.zst", cache_kind::store, "feature", 1, 5));
  i.entries.push_back(entry("modules-c.tar.zst", cache_kind::modules, "main", 1, 10, "k1"));
  i.entries.push_back(entry("modules-d.tar.zst", cache_kind::modules, "other", 1, 20, "k1"));

  EXPECT_EQ(find_latest(i, cache_kind::store, "feature", "main")->name, "store-b.tar.zst");
  // A branch without a cache starts from the production branch's.
  EXPECT_EQ(find_latest(i, cache_kind::store, "new", "main")->name, "store-a.tar.zst");
  EXPECT_EQ(find_latest(i, cache_kind::store, "new", "gone"), nullptr);
  EXPECT_EQ(find_latest(i, cache_kind::dirs, "main", "main"), nullptr);
  // Any branch's node_modules with the same key; the most recently used.
  EXPECT_EQ(find_modules(i, "k1")->name, "modules-d.tar.zst");
  EXPECT_EQ(find_modules(i, "k2"), nullptr);

  cache_entry slow = i.entries[2];
  slow.install_ms = 1000;
  slow.restore_ms = 1500;
  EXPECT_TRUE(dp::buildplan::restore_does_not_pay(slow));
  slow.restore_ms = 200;
  EXPECT_FALSE(dp::buildplan::restore_does_not_pay(slow));
}

TEST(CacheEvict, ExpiredSupersededThenLeastRecentlyUsed) {
  int64_t now = 100 * day_ms;
  cache_index i;
  i.entries.push_back(entry("modules-old.tar.zst", cache_kind::modules, "", 10, now - 8 * day_ms));
  i.entries.push_back(entry("store-1.tar.zst", cache_kind::store, "", 10, now - 3 * day_ms));
  i.entries.push_back(entry("store-2.tar.zst", cache_kind::store, "", 10, now - 2 * day_ms));
  i.entries.push_back(entry("modules-a.tar.zst", cache_kind::modules, "", 40, now - day_ms));
  i.entries.push_back(entry("modules-b.tar.zst", cache_kind::modules, "", 40, now - 10));
  i.entries.push_back(entry("modules-c.tar.zst", cache_kind::modules, "", 40, now - 5));

  auto gone =
      dp::buildplan::evict(i, now, {.max_bytes = 95, .max_age = std::chrono::hours(24 * 7)});
  std::set<std::string> gone_names;
  for (const auto& e : gone) {
    gone_names.insert(e.name);
  }
  // Unused for 8 days; a store with a newer one in its scope; then the least recently used
  // until 95 bytes fit (c 40 + b 40 + store-2 10).
  EXPECT_EQ(gone_names,
            (std::set<std::string>{"modules-old.tar.zst", "store-1.tar.zst", "modules-a.tar.zst"}));
  EXPECT_EQ(i.total_bytes(), 90u);
  EXPECT_EQ(i.entries.front().name, "modules-c.tar.zst");
}

TEST(CacheTar, PacksWithoutFollowingAndUnpacksWithoutOwners) {
  auto pack = dp::buildplan::cache_pack_argv("/build/a.tar.zst", "/build/src", {"node_modules"},
                                             dp::buildplan::cache_compression::zstd);
  EXPECT_EQ(pack.front(), "tar");
  EXPECT_EQ(std::count(pack.begin(), pack.end(), "--dereference"), 0);
  EXPECT_EQ(pack.back(), "node_modules");
  auto unpack = dp::buildplan::cache_unpack_argv("/build/a.tar.gz", "/build/src");
  EXPECT_NE(std::find(unpack.begin(), unpack.end(), "--no-same-owner"), unpack.end());
  EXPECT_NE(std::find(unpack.begin(), unpack.end(), "--gzip"), unpack.end());
  EXPECT_EQ(dp::buildplan::cache_archive_name(dp::buildplan::cache_kind::store,
                                              dp::buildplan::cache_compression::gzip, "ab"),
            "store-ab.tar.gz");
}

}  // namespace
