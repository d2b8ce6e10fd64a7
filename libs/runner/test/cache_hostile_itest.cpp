// A hostile build cache: an archive written by an earlier build is data for the next sandboxed
// build only. Restored, an archive holding a symlink to "/" with a file written through it,
// "../" and absolute names, a hard link to a host file, a setuid file and a file larger than the
// build's disk touches nothing outside that build's work directory, and the build goes on. Saved,
// a tree of symlinks to a root-only host file is stored as symlinks: the runner uploads the one
// archive the sandbox packed and never follows what the build left.
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <fstream>

#include "dp/buildplan/cache.hpp"
#include "dp/core/clock.hpp"
#include "dp/core/id.hpp"
#include "dp/proto/storage_layout.hpp"
#include "hostile_support.hpp"

namespace {

namespace fs = std::filesystem;
using dp::test::read_file;

class HostileCache : public ::testing::Test {
 protected:
  // The archive an earlier build could have made, with the index that names it as the store.
  void plant_hostile_store() {
    auto name = std::string("store-") + dp::random_hex(8) + ".tar.gz";
    auto archive = storage_.path() / dp::proto::cache_object_key("hostile", name);
    fs::create_directories(archive.parent_path());
    std::string out = outside_.dir().string();
    std::string script = R"PY(
import io, sys, tarfile
archive, outside, secret = sys.argv[1], sys.argv[2], sys.argv[3]
def reg(t, name, data=b"x", mode=0o644):
    i = tarfile.TarInfo(name); i.size = len(data); i.mode = mode; t.addfile(i, io.BytesIO(data))
with tarfile.open(archive, "w:gz", format=tarfile.GNU_FORMAT) as t:
    reg(t, ".npm/ok.txt")
    i = tarfile.TarInfo(".npm/root"); i.type = tarfile.SYMTYPE; i.linkname = "/"; t.addfile(i)
    reg(t, ".npm/root" + outside + "/through-link.txt")
    reg(t, "../../../../../../.." + outside + "/dotdot.txt")
    reg(t, outside + "/absolute.txt")
    i = tarfile.TarInfo(".npm/hard"); i.type = tarfile.LNKTYPE; i.linkname = secret; t.addfile(i)
    reg(t, ".npm/setuid", b"#!/bin/sh\n", 0o4755)
    class Zeros(io.RawIOBase):
        def __init__(self, n): self.n = n
        def readable(self): return True
        def readinto(self, b):
            k = min(len(b), self.n); b[:k] = bytes(k); self.n -= k; return k
    i = tarfile.TarInfo(".npm/huge"); i.size = 96 << 20; t.addfile(i, Zeros(i.size))
)PY";
    auto script_file = logs_.path() / "make_archive.py";
    std::ofstream(script_file) << script;
    auto cmd = fmt::format("python3 {} {} {} {}", script_file.string(), archive.string(), out,
                           outside_.file().string());
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    dp::buildplan::cache_index index;
    index.entries.push_back(dp::buildplan::cache_entry{.name = name,
                                                       .kind = dp::buildplan::cache_kind::store,
                                                       .bytes = fs::file_size(archive),
                                                       .created_at = 1,
                                                       .used_at = dp::now_ms()});
    std::ofstream(storage_.path() / dp::proto::cache_index_key("hostile"))
        << dp::buildplan::to_json(index);
  }

  dp::runner::testing::build_run build(const dp::test::git_repo& repo) {
    dp::proto::job j;
    j.deployment_id = dp::new_deployment_id();
    j.project = "hostile";
    j.git_url = repo.url();
    j.install_command = "true";
    j.build_command = "sh build.sh";
    j.output_dir = "public";
    j.timeout_s = 120;
    dp::runner::runner_options o;
    o.allowed_git_protocols = {"file"};
    o.work_root = work_.path();
    o.network = dp::runner::network_mode::none;
    o.disk_bytes = uint64_t{64} << 20;  // the huge file does not fit
    return dp::runner::testing::run_build(j, o, storage_.path(), logs_.path());
  }

  dp::runner::testing::outside_secret outside_{"cache"};
  dp::test::temp_dir storage_{"dp-cache-storage"};
  dp::test::temp_dir work_{"dp-cache-work"};
  dp::test::temp_dir logs_{"dp-cache-logs"};
};

TEST_F(HostileCache, RestoredArchiveStaysInsideTheWorkDirectory) {
  plant_hostile_store();
  // The build reports what it found of the restore.
  std::map<std::string, dp::test::git_file> files{
      {"public/index.html", "<h1>hi</h1>"},
      {"build.sh", "ls -la /build/.npm > public/npm.txt 2>&1 || true\n"}};
  dp::test::git_repo repo(files);
  auto r = build(repo);
  ASSERT_EQ(r.report.outcome, dp::runner::build_outcome::ready) << r.report.error << r.log;
  // tar refused some of it (the hard link, the disk quota): the restore is undone, the build goes
  // on cold, and nothing outside the work directory was written.
  EXPECT_NE(r.log.find("warning: cache: store not restored"), std::string::npos) << r.log;
  outside_.expect_untouched(r.log);
  EXPECT_FALSE(fs::exists("/through-link.txt"));
  // The entry that did not unpack is dropped, so that it does not fail every later build.
  EXPECT_NE(r.log.find("cache: miss (0 B"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find("cache: 0 B in 0 entries"), std::string::npos) << r.log;
}

TEST_F(HostileCache, SavedCacheHoldsSymlinksNeverWhatTheyName) {
  // The build leaves npm's cache full of links to a root-only host file and to "/", and makes
  // other members of the store entry (yarn's cache, corepack's state) links too.
  std::map<std::string, dp::test::git_file> files{
      {"public/index.html", "<h1>hi</h1>"},
      {"build.sh",
       "mkdir -p /build/.npm/sub /build/home/.cache /build/.corepack\n"
       "ln -s " +
           outside_.file().string() +
           " /build/.npm/secret\n"
           "ln -s / /build/.npm/sub/root\n"
           "ln -s /etc/shadow /build/.npm/shadow\n"
           "ln -s / /build/home/.cache/yarn\n"
           "ln -s " +
           outside_.file().string() + " /build/.corepack/lastKnownGood.json\n"}};
  dp::test::git_repo repo(files);
  auto r = build(repo);
  ASSERT_EQ(r.report.outcome, dp::runner::build_outcome::ready) << r.report.error << r.log;
  EXPECT_NE(r.log.find("cache: saved store"), std::string::npos) << r.log;
  outside_.expect_untouched(r.log);
  // Every stored object, archives decompressed, holds no byte of the secret.
  size_t archives = 0;
  for (const auto& e : fs::recursive_directory_iterator(storage_.path())) {
    if (!e.is_regular_file()) {
      continue;
    }
    auto name = e.path().filename().string();
    std::string text = read_file(e.path());
    if (name.ends_with(".tar.zst") || name.ends_with(".tar.gz")) {
      ++archives;
      auto listing = logs_.path() / "listing";
      auto cmd = fmt::format("tar -xOf {} {} > {} 2>/dev/null; tar -tvf {} {} >> {}",
                             e.path().string(), name.ends_with(".zst") ? "--zstd" : "--gzip",
                             listing.string(), e.path().string(),
                             name.ends_with(".zst") ? "--zstd" : "--gzip", listing.string());
      ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
      text = read_file(listing);
      EXPECT_NE(text.find("-> " + outside_.file().string()), std::string::npos) << text;
    }
    EXPECT_EQ(text.find(outside_.marker()), std::string::npos)
        << "the secret reached storage: " << e.path();
  }
  EXPECT_EQ(archives, 1u);
}

}  // namespace
