// The hostile-build fixture (tests/fixtures/hostile/, docs/security.md) through the docker
// launcher against a real Docker Engine (the fixture is docker_engine_support.hpp): each attack a
// hostile repository makes from a sibling build container, and what stops it. Where the docker
// launcher does not stop an attack, the test shows the gap (docs/security.md, the docker rows).
#include <signal.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <iostream>

#include "docker_engine_support.hpp"
#include "dp/core/id.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/state/logbook.hpp"

namespace {

using namespace dp::worker_test;
using files = std::map<std::string, dp::test::git_file>;

std::string fixture(const std::string& name) {
  std::ifstream in(dp::test::source_dir() / "tests/fixtures/hostile" / name);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// What a test says when it fails (and prints with DP_HOSTILE_VERBOSE set).
std::string describe(const auto& out) {
  return fmt::format("end: {}\nstatus: {}\nerror: {}\nlog: {}",
                     out.end ? out.end->description : out.end.error().message,
                     dp::proto::to_string(out.deployment.status), out.deployment.error.value_or(""),
                     out.log);
}

class DockerHostile : public DockerEngine {
 protected:
  struct outcome {
    dp::proto::job job;
    dp::result<dp::worker::build_end> end = dp::worker::build_end{};
    dp::proto::deployment deployment;
    std::string log;  // the deployment's logbook
  };

  // One build of `repo` through the docker launcher in this process, to its end, with the
  // container limits build-runner's worker mode gives it (BUILD_MEMORY_MB 512, BUILD_PIDS_MAX 300).
  outcome build(const dp::test::git_repo& repo, const adjust_fn& adjust,
                const std::function<void(dp::worker::docker_launcher_options&)>& options = {}) {
    auto o = launcher_options();
    o.memory_bytes = std::int64_t{512} << 20;
    o.pids_limit = 300;
    if (options) {
      options(o);
    }
    outcome out;
    // A container the engine could not start never ran the build (the deployment is still
    // queued); the worker would run the job again, and so does this, once. Seen on this machine
    // now and then under load: "exec: build-runner: executable file not found in $PATH".
    for (int attempt = 1; attempt <= 2; ++attempt) {
      auto name = "site" + std::to_string(++builds_);
      auto job = enqueue(serve(repo, name), [&](dp::proto::project& p, dp::proto::job& j) {
        p.name = name;
        adjust(p, j);
      });
      out = outcome{job, dp::result<dp::worker::build_end>(dp::worker::build_end{}), {}, {}};
      {
        direct_run run(o, job, redis_);
        out.end = run.end.get();
      }
      out.deployment = get(redis_, job.deployment_id);
      out.log = logbook(job.deployment_id);
      if (std::getenv("DP_HOSTILE_VERBOSE")) {
        std::cerr << describe(out) << "\n";
      }
      bool not_started = !out.end &&
                         out.end.error().message.find("start container") != std::string::npos &&
                         out.deployment.status == dp::proto::deployment_status::queued;
      if (!not_started) {
        break;
      }
      std::cerr << "the engine did not start the build container, once more: "
                << out.end.error().message << "\n";
    }
    return out;
  }

  // The deployment's log lines, as the API serves them.
  std::string logbook(const std::string& id) const {
    asio::io_context ioc;
    dp::redis::client redis(ioc.get_executor(), options_for(redis_));
    return dp::test::run_async(ioc, [&]() -> asio::awaitable<std::string> {
      auto events = co_await dp::state::read_logbook(redis, dp::proto::keys(prefix), id, 0, 10000);
      redis.close();
      std::string text;
      for (const auto& e : events ? *events : std::vector<dp::proto::log_event>{}) {
        text += e.line + "\n";
      }
      co_return text;
    }());
  }

  std::optional<std::string> stored(const dp::proto::job& job, const std::string& path) const {
    auto r = dp::test::http_request(s3_.port(), "GET",
                                    "/test/" + dp::proto::output_key(job.deployment_id, path));
    if (!r || r->status != 200) {
      return std::nullopt;
    }
    return r->body;
  }

  void expect_container_gone(const dp::proto::job& job) const {
    EXPECT_EQ(engine_.containers("dp.deployment=" + job.deployment_id), std::vector<std::string>{});
  }

  // A build whose checkout was swapped for the container's "/" (output_dir "etc"): it said so,
  // failed, stored nothing of /etc, and its container is gone.
  void expect_swap_published_nothing(const outcome& out) const {
    EXPECT_NE(out.log.find("swapped"), std::string::npos) << describe(out);
    EXPECT_EQ(out.deployment.status, dp::proto::deployment_status::failed) << describe(out);
    EXPECT_FALSE(stored(out.job, "passwd")) << describe(out);
    EXPECT_FALSE(stored(out.job, "hostname")) << describe(out);
    expect_container_gone(out.job);
  }

  int builds_ = 0;
};

// The build command replaces the checkout with a symlink to the container's "/", so that the
// output directory "etc" would be the container's /etc: nothing is published.
TEST_F(DockerHostile, BuildCommandSwapsTheCheckoutForRoot) {
  dp::test::git_repo repo(files{{"index.html", "<h1>site</h1>"}, {"swap.sh", fixture("swap.sh")}});
  auto out = build(repo, [](dp::proto::project& p, dp::proto::job&) {
    p.build_command = "sh swap.sh src";
    p.output_dir = "etc";
  });
  expect_swap_published_nothing(out);
}

// The same swap from an npm lifecycle script (postprepare, the last one npm install runs).
TEST_F(DockerHostile, NpmScriptSwapsTheCheckoutForRoot) {
  dp::test::git_repo repo(files{
      {"index.html", "<h1>site</h1>"},
      {"swap.sh", fixture("swap.sh")},
      {"package.json",
       R"({"name":"hostile","version":"1.0.0","scripts":{"postprepare":"sh swap.sh src"}})"}});
  auto out = build(repo, [](dp::proto::project& p, dp::proto::job&) {
    p.build_command = "true";
    p.output_dir = "etc";
  });
  expect_swap_published_nothing(out);
}

// What the build reads of its container: its environment, every process's environ and cmdline,
// and the files of the container outside the image's /usr. It publishes what it found.
const char* const secrets_js = R"JS(const fs = require('fs');
const path = require('path');
// NEEDLES is hex, so that its own value holds none of them.
const needles = JSON.parse(Buffer.from(process.env.NEEDLES, 'hex').toString());
const found = [];
const look = (where, text) => {
  for (const n of needles) if (text.includes(n)) found.push(where + ' has ' + n);
};
look('env', Object.entries(process.env).map(([k, v]) => k + '=' + v).join('\n'));
let procs = 0, unreadable = 0;
for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
  if (pid === String(process.pid)) continue;
  procs++;
  for (const f of ['environ', 'cmdline']) {
    try { look('/proc/' + pid + '/' + f, fs.readFileSync('/proc/' + pid + '/' + f, 'latin1')); }
    catch (e) { unreadable++; }
  }
}
let files = 0;
const walk = (dir) => {
  let entries;
  try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch (e) { return; }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) { walk(p); continue; }
    if (!e.isFile()) continue;
    try {
      if (fs.statSync(p).size > (1 << 20)) continue;
      look(p, fs.readFileSync(p, 'latin1'));
      files++;
    } catch (e) {}
  }
};
for (const top of fs.readdirSync('/')) {
  if (!['proc', 'sys', 'dev', 'usr'].includes(top)) walk('/' + top);
}
// The runner is pid 1 of the container; the image user's credentials file is the runner's.
const runner = fs.readFileSync('/proc/1/status', 'utf8').match(/^Uid:\s*(\d+)/m)[1];
let credentials = 'readable';
try { fs.readFileSync('/home/dp/.aws/credentials'); } catch (e) { credentials = e.code; }
fs.mkdirSync('dist', { recursive: true });
fs.writeFileSync('dist/found.txt', 'uid=' + process.getuid() + ' gid=' + process.getgid() +
  ' runner_uid=' + runner + ' credentials=' + credentials + ' processes=' + procs +
  ' unreadable=' + unreadable + ' files=' + files + '\n' + found.join('\n') + '\n');
)JS";

// The build-runner image with a credentials file of the image's user (uid 10001), readable by
// that user only, as a mounted or baked-in credentials file would be. Removed with the object.
struct image_with_credentials {
  image_with_credentials(const dp::test::docker_engine& engine, const std::string& secret)
      : engine_(engine) {
    std::ofstream(context_.path() / "credentials") << secret << "\n";
    fs::permissions(context_.path() / "credentials", fs::perms::owner_read);
    std::ofstream(context_.path() / "Dockerfile")
        << "FROM " << dp::test::docker_engine::build_runner_image << "\n"
        << "COPY --chown=10001:10001 credentials /home/dp/.aws/credentials\n";
    auto r =
        dp::test::run({"docker", "build", "--quiet", "-t", name, context_.path().string()},
                      {{"DOCKER_HOST", "unix://" + engine.socket()}, {"DOCKER_BUILDKIT", "0"}});
    EXPECT_EQ(r.exit_code, 0) << r.output;
  }
  ~image_with_credentials() { engine_.docker({"rmi", "--force", name}); }

  static constexpr const char* name = "deploy-platform-test/build-runner:with-credentials";
  const dp::test::docker_engine& engine_;
  dp::test::temp_dir context_{"dp-image-credentials"};
};

TEST_F(DockerHostile, NoPlatformSecretReachesTheBuild) {
  auto token = "DP-HOSTILE-TOKEN-" + dp::random_hex(8);
  image_with_credentials image(engine_, token);
  dp::test::git_repo repo(files{{"secrets.js", secrets_js}});
  // Names that must not appear in what the build reads, and the values of the secrets the
  // container is given (the storage keys, a session token, the Redis URL).
  boost::json::array needles{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                             "REDIS_URL",         "STORAGE_URL",           token,
                             redis_.url(),        s3_.storage_url()};
  auto out = build(
      repo,
      [&](dp::proto::project& p, dp::proto::job&) {
        p.build_command = "node secrets.js";
        p.output_dir = "dist";
        std::string hex;
        for (unsigned char c : boost::json::serialize(needles)) {
          hex += fmt::format("{:02x}", c);
        }
        p.env["NEEDLES"] = hex;
      },
      [&](dp::worker::docker_launcher_options& o) {
        o.env["AWS_SESSION_TOKEN"] = token;
        o.image = image.name;
      });
  ASSERT_EQ(out.deployment.status, dp::proto::deployment_status::ready) << describe(out);
  auto found = stored(out.job, "found.txt");
  ASSERT_TRUE(found) << describe(out);
  // The runner is root (pid 1); install and build run as a uid of their own, neither root nor
  // the image's user, so the credentials file of that user is closed to them.
  EXPECT_NE(found->find(" runner_uid=0 "), std::string::npos) << *found;
  auto uid = found->substr(4, found->find(' ') - 4);
  EXPECT_NE(uid, "0") << *found;
  EXPECT_NE(uid, "10001") << *found;
  EXPECT_NE(found->find(fmt::format(" gid={} ", uid)), std::string::npos) << *found;
  EXPECT_NE(found->find(" credentials=EACCES "), std::string::npos) << *found;
  EXPECT_NE(out.log.find(fmt::format("as uid {}, no capabilities", uid)), std::string::npos)
      << describe(out);
  // The build saw the runner's process (pid 1 of the container) and could not read its environ.
  EXPECT_EQ(found->find("processes=0 "), std::string::npos) << *found;
  EXPECT_EQ(found->find("unreadable=0 "), std::string::npos) << *found;
  EXPECT_EQ(found->find(" has "), std::string::npos) << *found;
  // The secret values themselves are in none of the published files.
  EXPECT_EQ(found->find(token), std::string::npos) << *found;
}

// The platform's Redis listens on the host's loopback; the build container is on the host's
// network (DOCKER_NETWORK=host, which the runner inside needs to reach Redis and storage here).
// THE GAP that stays: the build reaches its port. But it holds no credential
// (NoPlatformSecretReachesTheBuild: the runner's is its deployment's ACL user, in an environment
// of another uid), and the default user needs a password: Redis answers NOAUTH.
TEST_F(DockerHostile, PlatformRedisOnHostLoopbackIsReachableButRefusesTheBuild) {
  dp::test::git_repo repo(files{{"probe.js", R"JS(const net = require('net');
const fs = require('fs');
const s = net.connect(Number(process.env.TARGET_PORT), '127.0.0.1');
let reply = '';
const done = (what) => {
  fs.mkdirSync('dist', { recursive: true });
  fs.writeFileSync('dist/probe.txt', what + '\n');
  process.exit(0);
};
s.on('connect', () => s.write('PING\r\n'));
s.on('data', (d) => { reply += d; if (reply.includes('\r\n')) done('reply ' + reply.trim()); });
s.on('error', (e) => done('error ' + e.code));
)JS"}});
  auto out = build(repo, [&](dp::proto::project& p, dp::proto::job&) {
    p.build_command = "node probe.js";
    p.output_dir = "dist";
    p.env["TARGET_PORT"] = std::to_string(redis_.port());
  });
  ASSERT_EQ(out.deployment.status, dp::proto::deployment_status::ready) << describe(out);
  auto probe = stored(out.job, "probe.txt");
  ASSERT_TRUE(probe) << describe(out);
  EXPECT_EQ(*probe, "reply -NOAUTH Authentication required.\n");
}

// One file of 3 GiB, in the container's /tmp and in the checkout: the runner's per-file limit
// (BUILD_DISK_MB; the runner in the container is not root, so no filesystem of its own) stops it.
TEST_F(DockerHostile, A3GiBWriteIsStopped) {
  dp::test::git_repo repo(files{{"index.html", "<h1>site</h1>"}});
  for (const char* cmd : {"head -c 3G /dev/zero > /tmp/big", "head -c 3G /dev/zero > big"}) {
    auto out = build(
        repo,
        [&](dp::proto::project& p, dp::proto::job&) {
          p.build_command = cmd;
          p.output_dir = ".";
        },
        [](dp::worker::docker_launcher_options& o) { o.env["BUILD_DISK_MB"] = "64"; });
    EXPECT_NE(out.log.find("file size limit of 64 MiB"), std::string::npos) << describe(out);
    EXPECT_EQ(out.deployment.status, dp::proto::deployment_status::failed) << describe(out);
    expect_container_gone(out.job);
    if (std::string_view(cmd).find("/tmp") != std::string_view::npos) {
      // Killed by SIGXFSZ outside the work directory, which the poller does not count: the
      // error is the shell's exit code, not the quota's message.
      EXPECT_NE(out.deployment.error.value_or("").find(fmt::format("code {}", 128 + SIGXFSZ)),
                std::string::npos)
          << describe(out);
    } else {
      EXPECT_EQ(out.deployment.error.value_or(""),
                "build stopped: disk quota of 64 MiB (BUILD_DISK_MB) reached")
          << describe(out);
    }
  }
}

// A 4 GiB allocation meets the container's memory limit: the build fails, the container goes.
TEST_F(DockerHostile, A4GiBAllocationIsStopped) {
  dp::test::git_repo repo(files{{"index.html", "<h1>site</h1>"}});
  // A shell pipeline that buffers 4 GiB, and node filling 4 GiB of buffers.
  for (const char* cmd : {"head -c 4G /dev/zero | tail -n 1 > /dev/null",
                          "node -e \"const a = []; for (let i = 0; i < 64; i++) "
                          "a.push(Buffer.alloc(64 << 20, 1))\""}) {
    auto out = build(repo, [&](dp::proto::project& p, dp::proto::job&) {
      p.build_command = cmd;
      p.output_dir = ".";
    });
    EXPECT_FALSE(out.end && out.end->exit_code == 0) << describe(out);
    EXPECT_EQ(out.deployment.status, dp::proto::deployment_status::failed) << describe(out);
    // The container's OOM killer (SIGKILL); the runner names the container's limit from its
    // counters (memory.oom_control / memory.events, read-only inside).
    EXPECT_EQ(out.deployment.error.value_or(""),
              "build stopped: memory limit of 512 MiB (the container's) reached")
        << describe(out);
    EXPECT_NE(out.log.find("build stopped: memory limit of 512 MiB (the container's) reached"),
              std::string::npos)
        << describe(out);
    expect_container_gone(out.job);
  }
}

// A fork bomb meets the container's pids limit ("Cannot fork"); the build ends, the container and
// every process in it go, and the next build runs.
TEST_F(DockerHostile, ForkBombIsStoppedAndTheNextBuildRuns) {
  dp::test::git_repo repo(files{{"index.html", "<h1>site</h1>"}});
  // This process's pid in the sleep: a run of this test from another build tree is no match.
  auto sleep = fmt::format("sleep 9{}.44", ::getpid());
  auto out = build(
      repo,
      [&](dp::proto::project& p, dp::proto::job& j) {
        p.build_command = "bomb() { bomb | bomb & }; bomb; " + sleep;
        p.output_dir = ".";
        j.timeout_s = 20;  // the runner's limit in the container (the launcher's: 20 s + 30 s)
      },
      [](dp::worker::docker_launcher_options& o) { o.timeout_margin = std::chrono::seconds(30); });
  // Failed, named from the container's pids.events: the runner stops the build at the first
  // refused fork.
  EXPECT_EQ(out.deployment.status, dp::proto::deployment_status::failed) << describe(out);
  EXPECT_EQ(out.deployment.error.value_or(""),
            "build stopped: process limit of 300 (the container's) reached")
      << describe(out);
  expect_container_gone(out.job);
  EXPECT_EQ(dp::test::processes_matching(sleep), 0);
  auto next = build(repo, [](dp::proto::project& p, dp::proto::job&) {
    p.build_command = "true";
    p.output_dir = ".";
  });
  EXPECT_EQ(next.deployment.status, dp::proto::deployment_status::ready) << describe(next);
}

// The build's wall clock (BUILD_TIMEOUT_S, the job's, enforced by the runner in the container)
// ends a build that never ends, with a line and an error that name the limit.
TEST_F(DockerHostile, TheTimeLimitEndsTheBuildAndIsNamed) {
  dp::test::git_repo repo(files{{"index.html", "<h1>site</h1>"}});
  auto out = build(repo, [&](dp::proto::project& p, dp::proto::job& j) {
    p.build_command = "sleep 1000";
    p.output_dir = ".";
    j.timeout_s = 10;  // BUILD_TIMEOUT_S's minimum
  });
  EXPECT_EQ(out.deployment.status, dp::proto::deployment_status::failed) << describe(out);
  EXPECT_EQ(out.deployment.error.value_or(""),
            "build (`sleep 1000`) timed out: the build's time limit is 10 s (BUILD_TIMEOUT_S)")
      << describe(out);
  expect_container_gone(out.job);
}

// A daemon `npm install` leaves (postinstall, tests/fixtures/hostile/daemon.sh) is killed before
// the build step runs, and one the build step leaves before the runner goes on: every process of
// the build's uid, after each step.
TEST_F(DockerHostile, DaemonLeftByInstallIsGoneBeforeTheBuild) {
  dp::test::git_repo repo(files{
      {"package.json",
       R"({"name":"daemon","version":"1.0.0","scripts":{"postinstall":"sh daemon.sh start"}})"},
      {"daemon.sh", fixture("daemon.sh")}});
  auto marker = fmt::format("9{}.46", ::getpid());  // as in the fork bomb's test
  auto out = build(repo, [&](dp::proto::project& p, dp::proto::job&) {
    p.build_command = "sh daemon.sh check && sh daemon.sh start";
    p.output_dir = "dist";
    p.env["DAEMON_MARKER"] = marker;
  });
  ASSERT_EQ(out.deployment.status, dp::proto::deployment_status::ready) << describe(out);
  EXPECT_EQ(stored(out.job, "daemon.txt"), "gone\n") << describe(out);
  EXPECT_NE(out.log.find("install: killed "), std::string::npos) << describe(out);
  // The build step's daemon is not always there to be counted: until `setsid` runs it is still in
  // the step's process group, which is killed when the step ends. Gone it must be, either way.
  expect_container_gone(out.job);
  EXPECT_EQ(dp::test::processes_matching("sleep " + marker), 0);
}

// Daemons a build leaves (setsid, nohup, a double fork) are dead when it ends.
TEST_F(DockerHostile, DaemonsLeftBehindAreKilled) {
  dp::test::git_repo repo(files{{"index.html", "<h1>site</h1>"}});
  auto sleep = fmt::format("sleep 9{}.45", ::getpid());  // as in the fork bomb's test
  auto out = build(repo, [&](dp::proto::project& p, dp::proto::job&) {
    p.build_command = fmt::format(
        "setsid {0}1 > /dev/null 2>&1 < /dev/null & nohup {0}2 > /dev/null 2>&1 < /dev/null & "
        "({0}3 > /dev/null 2>&1 < /dev/null &) ; true",
        sleep);
    p.output_dir = ".";
  });
  EXPECT_EQ(out.deployment.status, dp::proto::deployment_status::ready) << describe(out);
  expect_container_gone(out.job);
  EXPECT_EQ(dp::test::processes_matching(sleep), 0);
}

}  // namespace
