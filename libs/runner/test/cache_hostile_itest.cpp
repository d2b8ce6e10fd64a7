// A hostile build cache: an archive written by an earlier build is data for the next sandboxed
// build only. Restored, an archive holding a symlink to "/" with a file written through it,
// "../" and absolute names, a hard link to a host file, a setuid file and a file larger than the
// build's disk touches nothing outside that build's work directory, and the build goes on. Saved,
// a tree of symlinks to a root-only host file is stored as symlinks: the runner uploads the one
// archive the sandbox packed and never follows what the build left.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "dp/buildplan/cache.hpp"
#include "dp/core/id.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/runner/runner.hpp"
#include "dp/storage/object_store.hpp"
#include "dp/test/harness.hpp"

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class HostileCache : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::permissions(outside_.path(), fs::perms::owner_all);
    secret_file_ = outside_.path() / "secret.txt";
    std::ofstream(secret_file_) << marker_ << "\n";
    fs::permissions(secret_file_, fs::perms::owner_read | fs::perms::owner_write);
  }

  // The archive an earlier build could have made, with the index that names it as the store.
  void plant_hostile_store() {
    auto name = std::string("store-") + dp::random_hex(8) + ".tar.gz";
    auto archive = storage_.path() / dp::proto::cache_object_key("hostile", name);
    fs::create_directories(archive.parent_path());
    std::string out = outside_.path().string();
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
                           secret_file_.string());
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    dp::buildplan::cache_index index;
    index.entries.push_back(dp::buildplan::cache_entry{.name = name,
                                                       .kind = dp::buildplan::cache_kind::store,
                                                       .bytes = fs::file_size(archive),
                                                       .created_at = 1,
                                                       .used_at = now_ms()});
    std::ofstream(storage_.path() / dp::proto::cache_index_key("hostile"))
        << dp::buildplan::to_json(index);
  }

  static int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  struct result {
    dp::runner::build_report report;
    std::string log;
  };

  result build(const dp::test::git_repo& repo) {
    dp::proto::job j;
    j.deployment_id = dp::new_deployment_id();
    j.project = "hostile";
    j.git_url = repo.url();
    j.install_command = "true";
    j.build_command = "sh build.sh";
    j.output_dir = "public";
    j.timeout_s = 120;
    auto log_file = logs_.path() / ("log-" + j.deployment_id);
    int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0);
    asio::io_context ioc;
    auto storage = dp::storage::open_storage(
        ioc.get_executor(), *dp::storage::parse_storage_url("file://" + storage_.path().string()),
        {});
    EXPECT_TRUE(storage);
    auto sink = dp::runner::make_stream_sink(fd, false, j.deployment_id);
    dp::runner::runner_options o;
    o.allowed_git_protocols = {"file"};
    o.work_root = work_.path();
    o.network = dp::runner::network_mode::none;
    o.disk_bytes = uint64_t{64} << 20;  // the huge file does not fit
    dp::runner::runner r(j, o, **storage, *sink);
    auto done = asio::co_spawn(ioc, r.run(), asio::use_future);
    ioc.run();
    result out{done.get(), {}};
    ::close(fd);
    out.log = slurp(log_file);
    if (std::getenv("DP_HOSTILE_VERBOSE")) {
      std::cerr << out.log;
    }
    return out;
  }

  // The outside directory holds only the secret, unchanged.
  void expect_outside_untouched() {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(outside_.path())) {
      names.push_back(e.path().filename().string());
    }
    EXPECT_EQ(names, std::vector<std::string>{"secret.txt"});
    EXPECT_EQ(slurp(secret_file_), marker_ + "\n");
    struct stat st {};
    ASSERT_EQ(::stat(secret_file_.c_str(), &st), 0);
    EXPECT_EQ(st.st_nlink, 1u);
    EXPECT_EQ(st.st_uid, 0u);
  }

  std::string marker_ = "DP-CACHE-SECRET-" + dp::random_hex(8);
  fs::path secret_file_;
  dp::test::temp_dir outside_{"dp-cache-outside"};
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
  expect_outside_untouched();
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
           secret_file_.string() +
           " /build/.npm/secret\n"
           "ln -s / /build/.npm/sub/root\n"
           "ln -s /etc/shadow /build/.npm/shadow\n"
           "ln -s / /build/home/.cache/yarn\n"
           "ln -s " +
           secret_file_.string() + " /build/.corepack/lastKnownGood.json\n"}};
  dp::test::git_repo repo(files);
  auto r = build(repo);
  ASSERT_EQ(r.report.outcome, dp::runner::build_outcome::ready) << r.report.error << r.log;
  EXPECT_NE(r.log.find("cache: saved store"), std::string::npos) << r.log;
  expect_outside_untouched();
  // Every stored object, archives decompressed, holds no byte of the secret.
  size_t archives = 0;
  for (const auto& e : fs::recursive_directory_iterator(storage_.path())) {
    if (!e.is_regular_file()) {
      continue;
    }
    auto name = e.path().filename().string();
    std::string text = slurp(e.path());
    if (name.ends_with(".tar.zst") || name.ends_with(".tar.gz")) {
      ++archives;
      auto listing = logs_.path() / "listing";
      auto cmd = fmt::format("tar -xOf {} {} > {} 2>/dev/null; tar -tvf {} {} >> {}",
                             e.path().string(), name.ends_with(".zst") ? "--zstd" : "--gzip",
                             listing.string(), e.path().string(),
                             name.ends_with(".zst") ? "--zstd" : "--gzip", listing.string());
      ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
      text = slurp(listing);
      EXPECT_NE(text.find("-> " + secret_file_.string()), std::string::npos) << text;
    }
    EXPECT_EQ(text.find(marker_), std::string::npos) << "the secret reached storage: " << e.path();
  }
  EXPECT_EQ(archives, 1u);
}

}  // namespace
