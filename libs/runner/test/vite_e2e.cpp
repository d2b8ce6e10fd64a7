// A real Vite + React app (tests/fixtures/vite-react, pinned versions and lockfile) installed from
// the npm registry and built in the sandbox: needs the network, hence label e2e.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <fstream>
#include <sstream>

#include "dp/core/id.hpp"
#include "dp/proto/json.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/runner/runner.hpp"
#include "dp/storage/object_store.hpp"
#include "dp/test/harness.hpp"

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

struct built {
  dp::runner::build_report report;
  std::string log;
  std::string manifest;  // the manifest's text, "" when none was written
};

// The fixture's files, committed into a fresh repository (`package_json` replacing its own when
// given), built with default settings.
built build(const std::optional<std::string>& package_json = std::nullopt) {
  std::map<std::string, dp::test::git_file> files;
  auto root = dp::test::source_dir() / "tests" / "fixtures" / "vite-react";
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) {
      std::ifstream in(e.path(), std::ios::binary);
      std::ostringstream s;
      s << in.rdbuf();
      files.emplace(e.path().lexically_relative(root).string(), s.str());
    }
  }
  if (package_json) {
    files.insert_or_assign("package.json", *package_json);
  }
  dp::test::git_repo repo(files);
  dp::test::temp_dir storage_dir("dp-e2e-storage"), work("dp-e2e-work");
  auto log_path = work.path() / "build.log";
  int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  EXPECT_GE(fd, 0);

  dp::proto::job job;
  job.deployment_id = dp::new_deployment_id();
  job.project = "vite";
  job.git_url = repo.url();
  dp::runner::runner_options opts;
  opts.allowed_git_protocols = {"file"};
  opts.work_root = work.path();
  opts.timeout = std::chrono::seconds(600);

  asio::io_context ioc;
  auto storage = dp::storage::open_storage(
      ioc.get_executor(), *dp::storage::parse_storage_url("file://" + storage_dir.path().string()),
      {});
  EXPECT_TRUE(storage);
  auto sink = dp::runner::make_stream_sink(fd, false, job.deployment_id);
  dp::runner::runner runner(job, opts, **storage, *sink);
  auto report = asio::co_spawn(ioc, runner.run(), asio::use_future);
  ioc.run();
  built b{report.get(), "", ""};
  ::close(fd);
  std::ifstream in(log_path);
  b.log.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  std::ifstream mf(storage_dir.path() / dp::proto::manifest_key(job.deployment_id));
  b.manifest.assign(std::istreambuf_iterator<char>(mf), std::istreambuf_iterator<char>());
  return b;
}

TEST(ViteE2e, ReactAppBuildsAndUploads) {
  auto b = build();
  const auto& r = b.report;
  const auto& log = b.log;
  ASSERT_EQ(r.outcome, dp::runner::build_outcome::ready) << r.error << "\n" << log;
  EXPECT_NE(log.find("framework: Vite (devDependency vite in package.json): build `npm run "
                     "build`, output dist"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("install: npm ci"), std::string::npos);
  EXPECT_NE(log.find("output directory: dist"), std::string::npos);

  const auto& text = b.manifest;
  auto m = dp::proto::parse_manifest(text);
  ASSERT_TRUE(m) << m.error().message;
  ASSERT_TRUE(m->files.contains("index.html"));
  bool hashed_js = false;
  for (const auto& [path, e] : m->files) {
    if (path.starts_with("assets/") && path.ends_with(".js")) {
      hashed_js = true;
      EXPECT_EQ(e.cache_control, "public, max-age=31536000, immutable") << path;
      EXPECT_EQ(e.content_type, "text/javascript; charset=utf-8") << path;
    }
  }
  EXPECT_TRUE(hashed_js);
}

// Without a build script, the framework's own command runs through npm (`npm exec`), from the
// project's node_modules; the lockfile lists no scripts, so `npm ci` still accepts it.
TEST(ViteE2e, FrameworkCommandWithoutABuildScript) {
  auto b = build(R"({"name":"vite-react-fixture","private":true,"version":"1.0.0",)"
                 R"("type":"module","dependencies":{"react":"18.3.1","react-dom":"18.3.1"},)"
                 R"("devDependencies":{"@vitejs/plugin-react":"4.3.4","vite":"5.4.11"}})");
  ASSERT_EQ(b.report.outcome, dp::runner::build_outcome::ready) << b.report.error << "\n" << b.log;
  EXPECT_NE(b.log.find("build: running `npm exec --no -- vite build`"), std::string::npos) << b.log;
  auto m = dp::proto::parse_manifest(b.manifest);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_TRUE(m->files.contains("index.html"));
}

}  // namespace
