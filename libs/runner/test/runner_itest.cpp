// The whole build against real peers: git repositories from the fixture, real npm and node under
// real bubblewrap, a real redis-server, and the file backend or s3rver.
#include "dp/runner/runner.hpp"

#include <brotli/decode.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <filesystem>
#include <fstream>

#include "dp/core/clock.hpp"
#include "dp/core/id.hpp"
#include "dp/core/spawn.hpp"
#include "dp/proto/json.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/redis/client.hpp"
#include "dp/redis/subscriber.hpp"
#include "dp/siteconfig/siteconfig.hpp"
#include "dp/state/logbook.hpp"
#include "dp/state/records.hpp"
#include "dp/storage/object_store.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using dp::proto::deployment_status;
using dp::runner::build_outcome;

// A project without dependencies whose `npm run build` (a node script) writes dist/.
std::map<std::string, dp::test::git_file> project(const std::string& build_js) {
  return {
      {"package.json",
       R"({"name":"app","version":"1.0.0","private":true,"scripts":{"build":"node build.js"}})"},
      {"package-lock.json",
       R"({"name":"app","version":"1.0.0","lockfileVersion":3,"requires":true,)"
       R"("packages":{"":{"name":"app","version":"1.0.0"}}})"},
      {"build.js", build_js},
  };
}

const std::string site_js = R"(
const fs = require('fs');
fs.mkdirSync('dist/assets', {recursive: true});
fs.writeFileSync('dist/index.html', '<!doctype html><title>app</title>');
fs.writeFileSync('dist/assets/app-4f3a9c2b.js', 'console.log("hi")');
console.log('built 2 files');
)";

struct outcome {
  dp::runner::build_report report;
  dp::proto::deployment record;
  std::vector<deployment_status> statuses;  // from events:deployments, in order
  std::vector<dp::proto::log_event> logs;   // the whole logbook
  std::optional<std::string> production;    // alias:<project> afterwards

  std::string all_lines() const {
    std::string s;
    for (const auto& e : logs) {
      s += e.line;
      s += '\n';
    }
    return s;
  }
};

struct case_options {
  std::string storage_url;  // empty: a file:// store in a temp dir
  std::optional<std::string> build_command;
  std::optional<std::string> output_dir;
  std::optional<dp::proto::serve_mode> serve_mode;
  bool install_scripts = true;
  dp::proto::env_map env;
  int64_t timeout_s = 0;
  std::optional<std::chrono::milliseconds> cancel_after_building;
  std::optional<std::string> previous_alias;  // alias:<project> before the build
  dp::proto::redirects_shadowing shadowing = dp::proto::redirects_shadowing::files;
  std::string project = "shop";  // another name for a second build in the same test
};

class Runner : public ::testing::Test {
 protected:
  outcome build(const std::map<std::string, dp::test::git_file>& files, case_options c = {}) {
    dp::test::git_repo repo(files);
    asio::io_context ioc;
    outcome out;
    // A build installs from the npm registry: the bound only keeps a hang from stopping the suite.
    dp::test::run_async(ioc, run_case(repo.url(), std::move(c), out), std::chrono::minutes(4));
    return out;
  }

  asio::awaitable<void> run_case(std::string url, case_options c, outcome& out) {
    auto ex = co_await asio::this_coro::executor;
    dp::redis::options ro;
    dp::config::parse_redis_url(redis_.url(), ro.url);
    dp::redis::client redis(ex, ro);
    dp::state::records records(redis, dp::proto::keys("t:"));
    auto surl = dp::storage::parse_storage_url(
        c.storage_url.empty() ? "file://" + storage_dir_.path().string() : c.storage_url);
    EXPECT_TRUE(surl);
    auto storage = dp::storage::open_storage(
        ex, *surl, {dp::test::s3rver::access_key(), dp::test::s3rver::secret_key(), "", ""});
    EXPECT_TRUE(storage);

    dp::proto::project p;
    p.name = c.project;
    p.git_url = url;
    p.build_command = c.build_command;
    p.output_dir = c.output_dir;
    p.mode = c.serve_mode;
    p.install_scripts = c.install_scripts;
    p.shadowing = c.shadowing;
    p.env = c.env;
    p.created_at = dp::now_ms();
    EXPECT_TRUE(co_await records.create_project(p));
    dp::proto::deployment d;
    d.id = dp::new_deployment_id();
    d.project = p.name;
    d.git_url = url;
    d.created_at = dp::now_ms();
    auto job = dp::proto::job{};
    EXPECT_TRUE(co_await records.create_deployment(d, job));
    if (c.previous_alias) {
      EXPECT_TRUE(co_await records.set_alias(p.name, p.name, *c.previous_alias));
    }
    auto j = co_await dp::runner::job_from_deployment(records, d.id);
    EXPECT_TRUE(j);
    j->timeout_s = c.timeout_s;

    // Every status event, in the order Redis published them.
    dp::redis::subscriber events(ex, ro);
    EXPECT_TRUE(co_await events.subscribe(records.keys().events_channel()));
    dp::spawn(
        ex,
        [&]() -> asio::awaitable<void> {
          for (;;) {
            auto m = co_await events.next();
            if (!m) {
              co_return;
            }
            if (auto e = dp::proto::parse_status_event(m->payload); e && e->deployment_id == d.id) {
              out.statuses.push_back(e->status);
            }
          }
        },
        "status events of the deployment");

    dp::state::log_writer logs(ex, redis, records.keys(), d.id, 1, {.max_len = 1'000'000});
    auto sink = dp::runner::make_redis_sink(records, logs, d);
    dp::runner::runner_options o;
    o.allowed_git_protocols = {"file"};
    o.work_root = work_.path();
    dp::runner::runner r(*j, o, **storage, *sink);
    dp::runner::cancel_watch watch(ex, records, ro, d.id,
                                   [&](std::string reason) { r.cancel(std::move(reason)); });
    watch.start();

    // Cancel once the build command runs: a request as the api-server makes it.
    if (c.cancel_after_building) {
      dp::spawn(
          ex,
          [&]() -> asio::awaitable<void> {
            asio::steady_timer t(ex);
            for (int i = 0; i < 600; ++i) {
              auto cur = co_await records.get_deployment(d.id);
              if (cur && cur->status == deployment_status::building) {
                break;
              }
              t.expires_after(std::chrono::milliseconds(50));
              co_await t.async_wait(asio::use_awaitable);
            }
            t.expires_after(*c.cancel_after_building);
            co_await t.async_wait(asio::use_awaitable);
            dp::proto::cancel_request req{d.id, dp::now_ms(), "user asked"};
            EXPECT_TRUE(co_await records.request_cancel(req));
          },
          "cancel request once building");
    }

    out.report = co_await r.run();
    watch.stop();
    auto rec = co_await records.get_deployment(d.id);
    EXPECT_TRUE(rec);
    out.record = *rec;
    // The event of the status the record ends in comes last: wait for it to arrive.
    co_await dp::test::co_eventually(
        [&] { return !out.statuses.empty() && out.statuses.back() == out.record.status; });
    events.close();
    auto book = co_await dp::state::read_logbook(redis, records.keys(), d.id, 0, 1'000'000);
    EXPECT_TRUE(book);
    out.logs = std::move(*book);
    auto alias = co_await records.resolve_alias(p.name);
    EXPECT_TRUE(alias);
    out.production = *alias;
    redis.close();
  }

  // The phases of the log in the order they started; "-" for a line without one.
  static std::vector<std::string> phases(const std::vector<dp::proto::log_event>& logs) {
    std::vector<std::string> out;
    for (const auto& e : logs) {
      std::string p = e.phase ? std::string(dp::proto::to_string(*e.phase)) : "-";
      if (out.empty() || out.back() != p) {
        out.push_back(std::move(p));
      }
    }
    return out;
  }

  // Seqs 1..n without a hole.
  static void expect_dense(const std::vector<dp::proto::log_event>& logs) {
    for (size_t i = 0; i < logs.size(); ++i) {
      if (logs[i].seq != static_cast<int64_t>(i + 1)) {
        ADD_FAILURE() << "seq " << logs[i].seq << " at index " << i;
        return;
      }
    }
  }

  std::string read_object(const std::string& key) {
    asio::io_context ioc;
    auto s = dp::storage::open_storage(
        ioc.get_executor(),
        *dp::storage::parse_storage_url("file://" + storage_dir_.path().string()), {});
    return dp::test::run_async(ioc, [&]() -> asio::awaitable<std::string> {
      auto g = co_await (*s)->get(key);
      if (!g) {
        co_return "<missing: " + g.error().message + ">";
      }
      auto body = co_await g->read_all();
      co_return body ? *body : "<unreadable>";
    }());
  }

  dp::test::redis_server redis_;
  dp::test::temp_dir storage_dir_{"dp-runner-storage"};
  dp::test::temp_dir work_{"dp-runner-work"};
};

// The project's serve_mode wins over the 404.html rule (none here, which would mean spa).
TEST_F(Runner, ProjectServeModeDecidesTheManifestMode) {
  case_options c;
  c.serve_mode = dp::proto::serve_mode::static_files;
  auto out = build(project(site_js), c);
  ASSERT_EQ(out.report.outcome, build_outcome::ready) << out.report.error << "\n"
                                                      << out.all_lines();
  auto m = dp::proto::parse_manifest(read_object(dp::proto::manifest_key(out.record.id)));
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->mode, dp::proto::serve_mode::static_files);
  EXPECT_NE(out.all_lines().find("mode static (the project's serve_mode"), std::string::npos)
      << out.all_lines();
}

TEST_F(Runner, NoDependencyProjectGoesLive) {
  auto out = build(project(site_js));
  ASSERT_EQ(out.report.outcome, build_outcome::ready) << out.report.error << "\n"
                                                      << out.all_lines();
  const auto& id = out.record.id;
  EXPECT_EQ(out.record.status, deployment_status::ready);
  EXPECT_EQ(out.record.files, 2);
  EXPECT_TRUE(out.record.commit && out.record.commit->size() == 40);
  EXPECT_TRUE(out.record.started_at && out.record.finished_at);
  std::vector<deployment_status> want = {deployment_status::cloning, deployment_status::installing,
                                         deployment_status::building, deployment_status::uploading,
                                         deployment_status::ready};
  EXPECT_EQ(out.statuses, want);
  EXPECT_EQ(out.production, id);
  expect_dense(out.logs);
  // Every line in its phase, each phase once (nothing to install: no install phase).
  EXPECT_EQ(phases(out.logs), (std::vector<std::string>{"clone", "restore_cache", "build", "upload",
                                                        "save_cache", "go_live"}))
      << out.all_lines();
  auto lines = out.all_lines();
  EXPECT_NE(lines.find("built 2 files"), std::string::npos);
  EXPECT_NE(lines.find("output directory: dist"), std::string::npos);
  EXPECT_EQ(lines.find("has no index.html"), std::string::npos);
  // Nothing to install: npm is not started for it.
  EXPECT_NE(lines.find("install: skipped (package.json declares no dependencies"),
            std::string::npos);
  EXPECT_EQ(lines.find("install: running"), std::string::npos);
  if (::geteuid() == 0) {
    EXPECT_NE(lines.find("; as uid 2"), std::string::npos) << "a root runner builds as its own uid";
  }

  EXPECT_EQ(read_object(dp::proto::output_key(id, "index.html")),
            "<!doctype html><title>app</title>");
  auto m = dp::proto::parse_manifest(read_object(dp::proto::manifest_key(id)));
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->mode, dp::proto::serve_mode::spa);
  ASSERT_EQ(m->files.size(), 2u);
  EXPECT_EQ(m->files["index.html"].content_type, "text/html; charset=utf-8");
  EXPECT_EQ(m->files["index.html"].cache_control, "public, max-age=0, must-revalidate");
  EXPECT_EQ(m->files["assets/app-4f3a9c2b.js"].cache_control,
            "public, max-age=31536000, immutable");
  // Nothing of the work directory is left.
  EXPECT_TRUE(fs::is_empty(work_.path()));
}

// A project whose postinstall script writes into the output.
std::map<std::string, dp::test::git_file> with_postinstall() {
  auto files = project(site_js);
  files.insert_or_assign(
      "package.json",
      R"({"name":"app","version":"1.0.0","private":true,"scripts":{"build":"node build.js",)"
      R"("postinstall":"mkdir -p dist && echo installed > dist/postinstall.txt"}})");
  return files;
}

// npm runs install scripts by default; the deployment records what ran and where it came from.
TEST_F(Runner, InstallScriptsRunByDefault) {
  auto out = build(with_postinstall());
  ASSERT_EQ(out.report.outcome, build_outcome::ready) << out.report.error << "\n"
                                                      << out.all_lines();
  EXPECT_EQ(read_object(dp::proto::output_key(out.record.id, "postinstall.txt")), "installed\n");
  ASSERT_TRUE(out.record.settings);
  const auto& s = *out.record.settings;
  EXPECT_EQ(s.framework, "");
  EXPECT_EQ(s.package_manager, "npm");
  EXPECT_EQ(s.install_command, (dp::proto::build_setting{"npm ci", false}));
  EXPECT_EQ(s.build_command, (dp::proto::build_setting{"npm run build", false}));
  EXPECT_EQ(s.output_dir, (dp::proto::build_setting{"dist", false}));
  EXPECT_NE(out.all_lines().find("framework: none detected in package.json"), std::string::npos);
}

TEST_F(Runner, InstallScriptsTurnedOff) {
  auto out = build(with_postinstall(), {.output_dir = "dist", .install_scripts = false});
  ASSERT_EQ(out.report.outcome, build_outcome::ready) << out.report.error << "\n"
                                                      << out.all_lines();
  EXPECT_NE(out.all_lines().find("install: running `npm ci --ignore-scripts`"), std::string::npos)
      << out.all_lines();
  auto m = dp::proto::parse_manifest(read_object(dp::proto::manifest_key(out.record.id)));
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_FALSE(m->files.contains("postinstall.txt"));
  ASSERT_TRUE(out.record.settings);
  EXPECT_EQ(out.record.settings->install_command,
            (dp::proto::build_setting{"npm ci --ignore-scripts", false}));
  EXPECT_EQ(out.record.settings->output_dir, (dp::proto::build_setting{"dist", true}));
}

TEST_F(Runner, UploadsToS3) {
  dp::test::s3rver s3;
  auto out = build(project(site_js), {.storage_url = s3.storage_url()});
  ASSERT_EQ(out.report.outcome, build_outcome::ready) << out.report.error << "\n"
                                                      << out.all_lines();
  auto dir = s3.dir();
  // s3rver keeps objects as files; the manifest was written.
  asio::io_context ioc;
  auto s = dp::storage::open_storage(ioc.get_executor(),
                                     *dp::storage::parse_storage_url(s3.storage_url()),
                                     {"S3RVER", "S3RVER", "", "us-east-1"});
  ASSERT_TRUE(s);
  auto listed = dp::test::run_async(ioc, [&]() -> asio::awaitable<size_t> {
    auto l = co_await (*s)->list(dp::proto::output_prefix(out.record.id));
    co_return l ? l->size() : 0;
  }());
  EXPECT_EQ(listed, 3u);  // two files and the manifest
}

TEST_F(Runner, FailingBuildKeepsTheAlias) {
  auto out = build(project("console.error('boom'); process.exit(3)"),
                   {.previous_alias = "0000000000000000000000prev"});
  EXPECT_EQ(out.report.outcome, build_outcome::failed);
  EXPECT_EQ(dp::runner::exit_code(out.report.outcome), 1);
  EXPECT_EQ(out.record.status, deployment_status::failed);
  ASSERT_TRUE(out.record.error);
  EXPECT_NE(out.record.error->find("exited with code"), std::string::npos) << *out.record.error;
  EXPECT_EQ(out.production, "0000000000000000000000prev");
  EXPECT_EQ(out.statuses.back(), deployment_status::failed);
  EXPECT_NE(out.all_lines().find("boom"), std::string::npos);
  expect_dense(out.logs);
  // The failure is told in the phase that failed.
  EXPECT_EQ(phases(out.logs).back(), "build") << out.all_lines();
  auto boom = std::find_if(out.logs.begin(), out.logs.end(),
                           [](const dp::proto::log_event& e) { return e.line == "boom"; });
  ASSERT_NE(boom, out.logs.end());
  EXPECT_EQ(boom->stream, dp::proto::log_stream::err);
  EXPECT_EQ(boom->phase, dp::proto::log_phase::build);
  // A failed build's work directory goes as a ready one's does (issue 16: disks filling).
  EXPECT_TRUE(fs::is_empty(work_.path()));
}

TEST_F(Runner, HundredThousandLinesAllArrive) {
  auto out = build(project(site_js + R"(
let s = '';
for (let i = 0; i < 100000; i++) { s += 'line ' + i + '\n'; }
process.stdout.write(s);
)"));
  ASSERT_EQ(out.report.outcome, build_outcome::ready) << out.report.error;
  expect_dense(out.logs);
  size_t seen = 0;
  int64_t next = 0;
  for (const auto& e : out.logs) {
    if (e.stream == dp::proto::log_stream::out && e.line.starts_with("line ")) {
      EXPECT_EQ(e.line, "line " + std::to_string(next));
      ++next;
      ++seen;
    }
  }
  EXPECT_EQ(seen, 100000u);
}

// Processes whose command line holds `token`.
int count_processes(const std::string& token) {
  int n = 0;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::ifstream f(e.path() / "cmdline", std::ios::binary);
    std::string cmd((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    if (cmd.find(token) != std::string::npos && cmd.find("sh -c") == std::string::npos) {
      ++n;
    }
  }
  return n;
}

TEST_F(Runner, TimeLimitEndsTheWholeProcessGroup) {
  std::string token = fmt::format("9{}.5", ::getpid());
  auto out =
      build(project(site_js),
            {.build_command = fmt::format("sleep {} & sleep {}", token, token), .timeout_s = 3});
  EXPECT_EQ(out.report.outcome, build_outcome::failed);
  ASSERT_TRUE(out.record.error);
  EXPECT_NE(out.record.error->find("timed out"), std::string::npos) << *out.record.error;
  EXPECT_EQ(count_processes("sleep " + token), 0);
  EXPECT_TRUE(fs::is_empty(work_.path()));
}

TEST_F(Runner, NoPlatformSecretReachesTheBuild) {
  auto secret = fs::path("/root") / fmt::format("dp-runner-secret-{}", ::getpid());
  { std::ofstream(secret) << "ROOTFILESECRET\n"; }
  std::map<std::string, std::string> platform = {
      {"AWS_SECRET_ACCESS_KEY", "awssecretvalue123"},     {"AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEY"},
      {"REDIS_URL", "redis://:redispass456@127.0.0.1:1"}, {"API_TOKENS", "apitoken789"},
      {"STORAGE_URL", "file:///storage-secret-path"},     {"BUILD_TIMEOUT_S", "4242"}};
  for (const auto& [k, v] : platform) {
    ::setenv(k.c_str(), v.c_str(), 1);
  }
  auto out =
      build(project(site_js),
            {.build_command = fmt::format(
                 "cat {} ; ls -la /root ; env ; "
                 // Every process the build can see, and every file a secret could sit in.
                 "for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do tr '\\0' '\\n' < $f; "
                 "done ; cat /etc/passwd /etc/group /etc/hosts 2>/dev/null ; node build.js",
                 secret.string()),
             .env = {{"PUBLIC_SETTING", "visible-value"}}});
  fs::remove(secret);
  for (const auto& [k, v] : platform) {
    ::unsetenv(k.c_str());
  }
  ASSERT_EQ(out.report.outcome, build_outcome::ready) << out.report.error;
  auto lines = out.all_lines();
  EXPECT_NE(lines.find("PUBLIC_SETTING=visible-value"), std::string::npos) << "env not printed";
  EXPECT_EQ(lines.find("ROOTFILESECRET"), std::string::npos);
  for (const auto& [k, v] : platform) {
    EXPECT_EQ(lines.find(v), std::string::npos) << k;
    EXPECT_EQ(lines.find(k + "="), std::string::npos) << k;
  }
}

TEST_F(Runner, HostileOutputEntriesAreSkipped) {
  auto out = build(project(R"(
const fs = require('fs');
fs.mkdirSync('dist', {recursive: true});
fs.writeFileSync('dist/index.html', 'ok');
fs.writeFileSync('dist/404.html', 'not found');
fs.symlinkSync('/etc/passwd', 'dist/passwd');
fs.writeFileSync('dist/a..b.txt', 'dots');
fs.writeFileSync('dist/..hidden', 'dots');
fs.writeFileSync('dist/.deployment.json', '{}');
)"));
  ASSERT_EQ(out.report.outcome, build_outcome::ready) << out.report.error << out.all_lines();
  auto lines = out.all_lines();
  EXPECT_NE(lines.find("skipped 'passwd'"), std::string::npos) << lines;
  EXPECT_NE(lines.find("skipped 'a..b.txt'"), std::string::npos) << lines;
  EXPECT_NE(lines.find("skipped '..hidden'"), std::string::npos) << lines;
  EXPECT_NE(lines.find("skipped '.deployment.json'"), std::string::npos) << lines;
  auto m = dp::proto::parse_manifest(read_object(dp::proto::manifest_key(out.record.id)));
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->mode, dp::proto::serve_mode::static_files);
  EXPECT_EQ(m->files.size(), 2u);
  EXPECT_TRUE(m->files.contains("index.html"));
  EXPECT_EQ(read_object(dp::proto::output_key(out.record.id, "passwd")).find("root:"),
            std::string::npos);
}

// The site's rules: compiled by the runner, each dropped rule in the log with file:line, the
// compiled file beside the manifest and named by it; _redirects and _headers are not published.
TEST_F(Runner, SiteRulesAreCompiledBesideTheManifest) {
  auto out = build(project(R"(
const fs = require('fs');
fs.mkdirSync('dist', {recursive: true});
fs.writeFileSync('dist/index.html', 'ok');
fs.writeFileSync('dist/_redirects', '/old /new 301\n/away https://example.com/ 200\n');
fs.writeFileSync('dist/_headers', '/*\n  X-Frame-Options: DENY\n');
fs.writeFileSync('dist/.site-rules.json', '{}');
)"));
  ASSERT_EQ(out.report.outcome, build_outcome::ready) << out.report.error << out.all_lines();
  auto lines = out.all_lines();
  EXPECT_NE(lines.find("_redirects:2: warning"), std::string::npos) << lines;
  EXPECT_NE(lines.find("site rules: 1 redirects and rewrites (1 static, 0 dynamic), 1 header "
                       "rules"),
            std::string::npos)
      << lines;
  EXPECT_NE(lines.find("skipped '.site-rules.json'"), std::string::npos) << lines;
  auto m = dp::proto::parse_manifest(read_object(dp::proto::manifest_key(out.record.id)));
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->rules, std::optional<std::string>(".site-rules.json"));
  EXPECT_EQ(m->files.size(), 1u);
  auto rules = dp::siteconfig::parse_rule_set(
      read_object(dp::proto::output_key(out.record.id, dp::proto::rules_name)));
  ASSERT_TRUE(rules) << rules.error().message;
  EXPECT_EQ(rules->static_redirects.size(), 1u);
}

// The project's redirects_shadowing reaches the compiler through the job: the same _redirects
// yields to files by default (Netlify's rule) and applies over them with "rules" (Cloudflare's).
TEST_F(Runner, RedirectsShadowingIsTheProjectsChoice) {
  const std::string site = R"(
const fs = require('fs');
fs.mkdirSync('dist', {recursive: true});
fs.writeFileSync('dist/index.html', 'ok');
fs.writeFileSync('dist/_redirects', '/old /new 301\n/* /index.html 200\n');
)";
  auto compiled = [&](dp::proto::redirects_shadowing shadowing) {
    auto out = build(project(site), {.shadowing = shadowing,
                                     .project = std::string(dp::proto::to_string(shadowing))});
    EXPECT_EQ(out.report.outcome, build_outcome::ready) << out.report.error << out.all_lines();
    auto rules = dp::siteconfig::parse_rule_set(
        read_object(dp::proto::output_key(out.record.id, dp::proto::rules_name)));
    EXPECT_TRUE(rules) << out.all_lines();
    return std::pair(rules ? *rules : dp::siteconfig::rule_set{}, out.all_lines());
  };
  auto [files, files_log] = compiled(dp::proto::redirects_shadowing::files);
  ASSERT_EQ(files.static_redirects.size(), 1u);
  ASSERT_EQ(files.dynamic_redirects.size(), 1u);
  EXPECT_FALSE(files.static_redirects[0].over_files);
  EXPECT_FALSE(files.dynamic_redirects[0].over_files);
  EXPECT_EQ(files_log.find("rules apply over files"), std::string::npos) << files_log;
  auto [rules, rules_log] = compiled(dp::proto::redirects_shadowing::rules);
  ASSERT_EQ(rules.dynamic_redirects.size(), 1u);
  EXPECT_TRUE(rules.static_redirects[0].over_files);
  EXPECT_TRUE(rules.dynamic_redirects[0].over_files);
  EXPECT_NE(rules_log.find("rules apply over files"), std::string::npos) << rules_log;
}

// A file that cannot be compiled: the deployment goes live without its rules and says so.
TEST_F(Runner, UncompilableRulesDeployWithoutThem) {
  auto out = build(project(R"(
const fs = require('fs');
fs.mkdirSync('dist', {recursive: true});
fs.writeFileSync('dist/index.html', 'ok');
fs.writeFileSync('dist/vercel.json', '{"redirects": [');
)"));
  ASSERT_EQ(out.report.outcome, build_outcome::ready) << out.report.error << out.all_lines();
  auto lines = out.all_lines();
  EXPECT_NE(lines.find("vercel.json:"), std::string::npos) << lines;
  EXPECT_NE(lines.find("goes live without its rules"), std::string::npos) << lines;
  auto m = dp::proto::parse_manifest(read_object(dp::proto::manifest_key(out.record.id)));
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_FALSE(m->rules);
}

// An output without index.html still goes live, with a warning that names the directory.
TEST_F(Runner, OutputWithoutAnIndexIsWarnedAbout) {
  auto out = build(project(R"(
const fs = require('fs');
fs.mkdirSync('dist', {recursive: true});
fs.writeFileSync('dist/about.html', 'about');
)"));
  ASSERT_EQ(out.report.outcome, build_outcome::ready) << out.report.error << out.all_lines();
  auto lines = out.all_lines();
  EXPECT_NE(lines.find("warning: the output directory dist has no index.html"), std::string::npos)
      << lines;
}

// The build sleeps for months: it ends only because the cancel request stopped every process.
TEST_F(Runner, CancelStopsALongBuild) {
  std::string token = fmt::format("8{}.5", ::getpid());
  auto out =
      build(project(site_js), {.build_command = fmt::format("sleep {} & sleep {}", token, token),
                               .cancel_after_building = std::chrono::milliseconds(300),
                               .previous_alias = "0000000000000000000000prev"});
  EXPECT_EQ(out.report.outcome, build_outcome::canceled);
  EXPECT_EQ(out.record.status, deployment_status::canceled);
  EXPECT_EQ(out.record.error, "user asked");
  EXPECT_EQ(out.production, "0000000000000000000000prev");
  EXPECT_EQ(count_processes("sleep " + token), 0);
  EXPECT_TRUE(fs::is_empty(work_.path()));
}

// Brotli and gzip variants beside the compressible files above the threshold, each only when
// smaller; the user's own app.js.br is uploaded as it is and keeps its place.
TEST_F(Runner, CompressibleFilesGetVariants) {
  auto out = build(project(R"(
const fs = require('fs');
const crypto = require('crypto');
fs.mkdirSync('dist', {recursive: true});
const page = '<li class="item"><a href="/posts/1">Post</a></li>\n'.repeat(100);
fs.writeFileSync('dist/index.html', page);
fs.writeFileSync('dist/small.css', 'body{color:red}\n'.repeat(40));
fs.writeFileSync('dist/app.js', 'console.log("hello");\n'.repeat(200));
fs.writeFileSync('dist/app.js.br', 'USER-BROTLI');
fs.writeFileSync('dist/noise.js', crypto.randomBytes(6000));
fs.writeFileSync('dist/photo.png', page);
)"));
  ASSERT_EQ(out.report.outcome, build_outcome::ready) << out.report.error << out.all_lines();
  const auto& id = out.record.id;
  auto m = dp::proto::parse_manifest(read_object(dp::proto::manifest_key(id)));
  ASSERT_TRUE(m) << m.error().message;
  std::vector<std::string> keys;
  for (const auto& [k, e] : m->files) {
    keys.push_back(k);
  }
  std::vector<std::string> want = {"app.js",     "app.js.br",     "app.js.gz",
                                   "index.html", "index.html.br", "index.html.gz",
                                   "noise.js",   "photo.png",     "small.css"};
  EXPECT_EQ(keys, want);
  // The record counts the output's files; its bytes include the variants stored.
  EXPECT_EQ(out.record.files, 6);
  std::string html = read_object(dp::proto::output_key(id, "index.html"));
  std::string br = read_object(dp::proto::output_key(id, "index.html.br"));
  std::string decoded(html.size() + 1, '\0');
  size_t n = decoded.size();
  ASSERT_EQ(BrotliDecoderDecompress(br.size(), reinterpret_cast<const uint8_t*>(br.data()), &n,
                                    reinterpret_cast<uint8_t*>(decoded.data())),
            BROTLI_DECODER_RESULT_SUCCESS);
  decoded.resize(n);
  EXPECT_EQ(decoded, html);
  const auto& e = m->files["index.html.br"];
  EXPECT_EQ(e.size, static_cast<int64_t>(br.size()));
  EXPECT_LT(e.size, m->files["index.html"].size / 10);
  EXPECT_EQ(e.content_type, "application/x-brotli");
  EXPECT_EQ(e.cache_control, m->files["index.html"].cache_control);
  EXPECT_NE(e.sha256, m->files["index.html"].sha256);
  EXPECT_EQ(m->files["index.html.gz"].content_type, "application/gzip");
  EXPECT_EQ(read_object(dp::proto::output_key(id, "app.js.br")), "USER-BROTLI");
  EXPECT_EQ(out.record.bytes, m->files["app.js"].size + m->files["app.js.br"].size +
                                  m->files["app.js.gz"].size + m->files["index.html"].size +
                                  e.size + m->files["index.html.gz"].size +
                                  m->files["noise.js"].size + m->files["photo.png"].size +
                                  m->files["small.css"].size);
  EXPECT_NE(out.all_lines().find("compressed 3 files"), std::string::npos) << out.all_lines();
}

}  // namespace
