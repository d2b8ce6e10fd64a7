// What the hostile-build tests (source_hostile, cache_hostile, hostile_paths) share: a root-only
// secret outside the build's work directory, and one build run by the real runner against a file
// store, its log written to a file.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "dp/core/id.hpp"
#include "dp/runner/runner.hpp"
#include "dp/storage/object_store.hpp"
#include "dp/test/harness.hpp"

namespace dp::runner::testing {

// A root-only directory (0700) holding secret.txt (0600): a random marker no build may read,
// change or publish.
class outside_secret {
 public:
  explicit outside_secret(std::string_view name)
      : dir_("dp-" + std::string(name) + "-outside"),
        marker_("DP-SECRET-" + std::string(name) + "-" + dp::random_hex(8)) {
    namespace fs = std::filesystem;
    fs::permissions(dir_.path(), fs::perms::owner_all);
    std::ofstream(file()) << marker_ << "\n";
    fs::permissions(file(), fs::perms::owner_read | fs::perms::owner_write);
  }

  const std::filesystem::path& dir() const noexcept { return dir_.path(); }
  std::filesystem::path file() const { return dir_.path() / "secret.txt"; }
  const std::string& marker() const noexcept { return marker_; }

  // The directory holds only the secret, unchanged: one link, root's, 0600.
  void expect_untouched(const std::string& log) const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir())) {
      names.push_back(e.path().filename().string());
    }
    EXPECT_EQ(names, std::vector<std::string>{"secret.txt"}) << log;
    EXPECT_EQ(dp::test::read_file(file()), marker_ + "\n");
    struct stat st {};
    ASSERT_EQ(::stat(file().c_str(), &st), 0);
    EXPECT_EQ(st.st_nlink, 1u);
    EXPECT_EQ(st.st_uid, 0u);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
  }

 private:
  dp::test::temp_dir dir_;
  std::string marker_;
};

struct build_run {
  build_report report;
  std::string log;
};

// Runs `job` with `opts` against the file store in `storage_dir`, the build's log written to
// `log_dir`/log-<id>. DP_HOSTILE_VERBOSE=1 prints the log and the outcome.
inline build_run run_build(const proto::job& job, const runner_options& opts,
                           const std::filesystem::path& storage_dir,
                           const std::filesystem::path& log_dir) {
  namespace asio = boost::asio;
  auto log_file = log_dir / ("log-" + job.deployment_id);
  int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  EXPECT_GE(fd, 0);
  asio::io_context ioc;
  build_run out;
  auto done = asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        // No temporary in a co_await expression: g++ 12 miscompiles them (a bad free).
        auto ex = co_await asio::this_coro::executor;
        auto storage = dp::storage::open_storage(
            ex, *dp::storage::parse_storage_url("file://" + storage_dir.string()), {});
        EXPECT_TRUE(storage);
        auto sink = make_stream_sink(fd, false, job.deployment_id);
        runner r(job, opts, **storage, *sink);
        out.report = co_await r.run();
        (void)co_await sink->flush();
      },
      asio::use_future);
  ioc.run();
  done.get();
  ::close(fd);
  out.log = dp::test::read_file(log_file);
  if (std::getenv("DP_HOSTILE_VERBOSE")) {
    std::cerr << out.log << "outcome: " << to_string(out.report.outcome) << ": " << out.report.error
              << "\n";
  }
  return out;
}

// Every object in the file store at `storage_dir` is free of `marker`.
inline void expect_not_stored(const std::filesystem::path& storage_dir, const std::string& marker) {
  for (const auto& e : std::filesystem::recursive_directory_iterator(storage_dir)) {
    if (e.is_regular_file()) {
      EXPECT_EQ(dp::test::read_file(e.path()).find(marker), std::string::npos)
          << "the secret reached storage: " << e.path();
    }
  }
}

}  // namespace dp::runner::testing
