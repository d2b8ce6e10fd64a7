// The docker and ecs launchers against an HTTP server inside the test that checks every request
// against the published API (Docker Engine API v1.43; ECS JSON 1.1 with SigV4, the signature
// recomputed with libs/aws) and answers as the real API does. The launchers' code path is the
// production one: only the socket path or the endpoint differs.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <ctime>
#include <functional>
#include <mutex>
#include <thread>

#include "dp/aws/crypto.hpp"
#include "dp/aws/sigv4.hpp"
#include "dp/http_client/client.hpp"
#include "dp/redis/client.hpp"
#include "dp/state/records.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"
#include "dp/test/options.hpp"
#include "dp/worker/build_redis_users.hpp"
#include "dp/worker/launcher.hpp"
#include "fake_sts.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;

struct seen_request {
  std::string method, target, body;
  std::map<std::string, std::string> headers;  // lowercased names
};
struct answer {
  int status = 200;
  std::string body;
};

// A minimal HTTP/1.1 server (keep-alive, Content-Length bodies), one thread per connection.
class api_server {
 public:
  using handler = std::function<answer(const seen_request&)>;

  // unix_path empty: TCP on 127.0.0.1, port 0.
  api_server(std::string unix_path, handler h) : handler_(std::move(h)) {
    if (!unix_path.empty()) {
      fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::snprintf(a.sun_path, sizeof(a.sun_path), "%s", unix_path.c_str());
      EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    } else {
      fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
      socklen_t len = sizeof(a);
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
      port_ = ntohs(a.sin_port);
    }
    ::listen(fd_, 16);
    acceptor_ = std::thread([this] {
      for (;;) {
        int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) {
          return;
        }
        std::lock_guard lock(mutex_);
        conns_.push_back(c);
        threads_.emplace_back([this, c] { serve(c); });
      }
    });
  }
  ~api_server() {
    ::shutdown(fd_, SHUT_RDWR);
    acceptor_.join();
    ::close(fd_);
    {
      std::lock_guard lock(mutex_);
      for (int c : conns_) {
        ::shutdown(c, SHUT_RDWR);
      }
    }
    for (auto& t : threads_) {
      t.join();
    }
    for (int c : conns_) {
      ::close(c);
    }
  }
  uint16_t port() const { return port_; }
  std::vector<seen_request> requests() {
    std::lock_guard lock(mutex_);
    return seen_;
  }

 private:
  void serve(int c) {
    std::string buf;
    char chunk[8192];
    for (;;) {
      auto end = buf.find("\r\n\r\n");
      while (end == std::string::npos) {
        auto n = ::read(c, chunk, sizeof(chunk));
        if (n <= 0) {
          return;
        }
        buf.append(chunk, n);
        end = buf.find("\r\n\r\n");
      }
      seen_request r;
      std::string head = buf.substr(0, end);
      buf.erase(0, end + 4);
      auto line_end = head.find("\r\n");
      auto first = head.substr(0, line_end);
      r.method = first.substr(0, first.find(' '));
      r.target = first.substr(first.find(' ') + 1);
      r.target = r.target.substr(0, r.target.rfind(' '));
      size_t pos = line_end;
      while (pos != std::string::npos && pos < head.size()) {
        auto next = head.find("\r\n", pos + 2);
        auto h =
            head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
        auto colon = h.find(':');
        if (colon != std::string::npos) {
          std::string name = h.substr(0, colon);
          for (auto& ch : name) {
            ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          }
          auto value = h.substr(colon + 1);
          value.erase(0, value.find_first_not_of(' '));
          r.headers[name] = value;
        }
        pos = next;
      }
      size_t length =
          r.headers.contains("content-length") ? std::stoul(r.headers["content-length"]) : 0;
      while (buf.size() < length) {
        auto n = ::read(c, chunk, sizeof(chunk));
        if (n <= 0) {
          return;
        }
        buf.append(chunk, n);
      }
      r.body = buf.substr(0, length);
      buf.erase(0, length);
      {
        std::lock_guard lock(mutex_);
        seen_.push_back(r);
      }
      auto a = handler_(r);
      auto out = fmt::format(
          "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
          a.status, a.body.size(), a.body);
      if (::send(c, out.data(), out.size(), MSG_NOSIGNAL) < 0) {
        return;
      }
    }
  }

  handler handler_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread acceptor_;
  std::mutex mutex_;
  std::vector<int> conns_;
  std::vector<std::thread> threads_;
  std::vector<seen_request> seen_;
};

dp::proto::job make_job() {
  dp::proto::job j;
  j.deployment_id = "01jh5k7q3x9m2c8r4t6v0w1y3z";
  j.project = "shop";
  j.git_url = "https://example.com/shop.git";
  j.timeout_s = 60;
  return j;
}

using dp::test::run_async;

// ---- docker ----

struct docker_fixture {
  dp::test::temp_dir dir{"dp-docker"};
  std::string socket = (dir.path() / "docker.sock").string();
  std::atomic<bool> release_wait{false};
  std::atomic<bool> oom_killed{false};
  api_server server{socket, [this](const seen_request& r) { return answer_for(r); }};

  answer answer_for(const seen_request& r) {
    const std::string v = "/v1.43";
    if (r.method == "GET" && r.target == "/version") {
      return {200, R"({"Version":"24.0.7","ApiVersion":"1.43","MinAPIVersion":"1.12"})"};
    }
    if (r.method == "GET" && r.target == v + "/containers/abc123/logs?stderr=true&tail=20") {
      // Multiplexed frames: stream 2 (stderr), then the payload's big-endian length.
      std::string line1 = "npm run build\n", line2 = "sh: 1: vite: not found\n";
      return {200, std::string("\2\0\0\0\0\0\0", 7) + char(line1.size()) + line1 +
                       std::string("\2\0\0\0\0\0\0", 7) + char(line2.size()) + line2};
    }
    if (r.method == "GET" && r.target.starts_with(v + "/containers/json?all=true&filters=")) {
      return {200, R"([{"Id":"orphan1","Labels":{"dp.deployment":"d1","dp.worker":"gone"}},
                      {"Id":"live1","Labels":{"dp.deployment":"d2","dp.worker":"alive"}}])"};
    }
    if (r.method == "GET" && r.target == v + "/containers/abc123/json") {
      return {200, fmt::format(R"({{"Id":"abc123","State":{{"Status":"exited","OOMKilled":{}}}}})",
                               oom_killed.load())};
    }
    if (r.method == "POST" && r.target.starts_with(v + "/containers/create?name=dp-build-")) {
      return {201, R"({"Id":"abc123","Warnings":[]})"};
    }
    if (r.method == "POST" && r.target == v + "/containers/abc123/start") {
      return {204, ""};
    }
    if (r.method == "POST" && r.target == v + "/containers/abc123/wait?condition=not-running") {
      dp::test::eventually([this] { return release_wait.load(); }, 5s);
      return {200, R"({"StatusCode":3,"Error":null})"};
    }
    if (r.method == "DELETE" && r.target.starts_with(v + "/containers/") &&
        r.target.ends_with("?force=true&v=true")) {
      return {204, ""};
    }
    return {404, R"({"message":"page not found"})"};
  }

  dp::worker::docker_launcher_options options() {
    dp::worker::docker_launcher_options o;
    o.socket = socket;
    o.api_version = "v1.43";
    o.image = "deploy-platform/build-runner:test";
    o.env = {{"REDIS_URL", "redis://redis:6379"}, {"STORAGE_URL", "s3://b"}};
    o.worker_id = "w1";
    o.memory_bytes = 512 << 20;
    o.nano_cpus = 1'000'000'000;
    o.pids_limit = 256;
    return o;
  }
};

TEST(docker_launcher_test, create_start_wait_remove) {
  docker_fixture f;
  f.release_wait = true;
  auto end = run_async(
      [&](asio::any_io_executor ex) -> asio::awaitable<dp::result<dp::worker::build_end>> {
        dp::http_client::client http(ex);
        auto l = dp::worker::make_docker_launcher(http, f.options());
        dp::worker::stop_flag stop(ex);
        co_return co_await l->run(make_job(), stop);
      });
  ASSERT_TRUE(end) << end.error().message;
  EXPECT_EQ(end->exit_code, 3);
  EXPECT_FALSE(end->stopped);
  EXPECT_EQ(end->description, "container exited with code 3: sh: 1: vite: not found");
  auto reqs = f.server.requests();
  ASSERT_EQ(reqs.size(), 6u);
  EXPECT_EQ(reqs[0].target, "/v1.43/containers/create?name=dp-build-01jh5k7q3x9m2c8r4t6v0w1y3z-1");
  EXPECT_EQ(reqs[0].headers["content-type"], "application/json");
  auto body = json::parse(reqs[0].body).as_object();
  EXPECT_EQ(body["Image"], "deploy-platform/build-runner:test");
  EXPECT_EQ(body["Cmd"], (json::array{"build", "--deployment", "01jh5k7q3x9m2c8r4t6v0w1y3z"}));
  EXPECT_EQ(body["Env"],
            (json::array{"REDIS_URL=redis://redis:6379", "STORAGE_URL=s3://b",
                         "DEPLOYMENT_ID=01jh5k7q3x9m2c8r4t6v0w1y3z", "BUILD_TIMEOUT_S=60"}));
  EXPECT_EQ(body["Labels"],
            (json::object{{"dp.deployment", "01jh5k7q3x9m2c8r4t6v0w1y3z"}, {"dp.worker", "w1"}}));
  EXPECT_EQ(body["HostConfig"].as_object()["AutoRemove"], false);
  EXPECT_EQ(body["HostConfig"].as_object()["Memory"], 512 << 20);
  EXPECT_EQ(body["HostConfig"].as_object()["NanoCpus"], 1'000'000'000);
  EXPECT_EQ(body["HostConfig"].as_object()["CapDrop"], (json::array{"ALL"}));
  // The runner is root with what it needs to switch install and build to a uid of their own.
  EXPECT_EQ(body["User"], "0:0");
  EXPECT_EQ(body["HostConfig"].as_object()["CapAdd"],
            (json::array{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETGID",
                         "CAP_SETPCAP", "CAP_SETUID"}));
  EXPECT_EQ(body["HostConfig"].as_object()["SecurityOpt"], (json::array{"no-new-privileges"}));
  EXPECT_EQ(body["HostConfig"].as_object()["PidsLimit"], 256);
  EXPECT_EQ(reqs[1].method + " " + reqs[1].target, "POST /v1.43/containers/abc123/start");
  EXPECT_EQ(reqs[2].method + " " + reqs[2].target,
            "POST /v1.43/containers/abc123/wait?condition=not-running");
  // A failure names its cause: a limit of the container (State.OOMKilled), else its last line.
  EXPECT_EQ(reqs[3].method + " " + reqs[3].target, "GET /v1.43/containers/abc123/json");
  EXPECT_EQ(reqs[4].method + " " + reqs[4].target,
            "GET /v1.43/containers/abc123/logs?stderr=true&tail=20");
  EXPECT_EQ(reqs[5].method + " " + reqs[5].target,
            "DELETE /v1.43/containers/abc123?force=true&v=true");
}

// A container the kernel killed at its memory limit (the runner itself, say) names the limit.
TEST(docker_launcher_test, an_oom_killed_container_names_the_memory_limit) {
  docker_fixture f;
  f.release_wait = true;
  f.oom_killed = true;
  auto end = run_async(
      [&](asio::any_io_executor ex) -> asio::awaitable<dp::result<dp::worker::build_end>> {
        dp::http_client::client http(ex);
        auto l = dp::worker::make_docker_launcher(http, f.options());
        dp::worker::stop_flag stop(ex);
        co_return co_await l->run(make_job(), stop);
      });
  ASSERT_TRUE(end) << end.error().message;
  EXPECT_EQ(end->description,
            "container exited with code 3: memory limit of 512 MiB (the container's) reached");
}

TEST(docker_launcher_test, asks_the_engine_its_api_version_once_and_labels_the_scope) {
  docker_fixture f;
  f.release_wait = true;
  auto end = run_async(
      [&](asio::any_io_executor ex) -> asio::awaitable<dp::result<dp::worker::build_end>> {
        dp::http_client::client http(ex);
        auto o = f.options();
        o.api_version.clear();
        o.scope = "redis:6379/0/dp:";
        auto l = dp::worker::make_docker_launcher(http, o);
        dp::worker::liveness_check live = [](std::string, std::string) -> asio::awaitable<bool> {
          co_return true;
        };
        if (auto ok = co_await l->clean_up(live); !ok) {
          co_return ok.error();
        }
        dp::worker::stop_flag stop(ex);
        co_return co_await l->run(make_job(), stop);
      });
  ASSERT_TRUE(end) << end.error().message;
  auto reqs = f.server.requests();
  ASSERT_EQ(reqs.size(), 8u);
  EXPECT_EQ(reqs[0].method + " " + reqs[0].target, "GET /version");
  EXPECT_EQ(
      reqs[1].target,
      "/v1.43/containers/json?all=true&filters=" +
          std::string("%7B%22label%22%3A%5B%22dp.deployment%22%2C%22dp.scope%3Dredis%3A6379%2F0%"
                      "2Fdp%3A%22%5D%7D"));
  EXPECT_EQ(reqs[2].target, "/v1.43/containers/create?name=dp-build-01jh5k7q3x9m2c8r4t6v0w1y3z-1");
  auto body = json::parse(reqs[2].body).as_object();
  EXPECT_EQ(body["Labels"].as_object()["dp.scope"], "redis:6379/0/dp:");
}

TEST(docker_launcher_test, stop_removes_the_container_at_once) {
  docker_fixture f;
  auto end = run_async(
      [&](asio::any_io_executor ex) -> asio::awaitable<dp::result<dp::worker::build_end>> {
        dp::http_client::client http(ex);
        auto l = dp::worker::make_docker_launcher(http, f.options());
        dp::worker::stop_flag stop(ex);
        asio::steady_timer t(ex);
        t.expires_after(300ms);
        t.async_wait([&](boost::system::error_code) { stop.request(); });
        co_return co_await l->run(make_job(), stop);
      });
  f.release_wait = true;
  ASSERT_TRUE(end) << end.error().message;
  EXPECT_TRUE(end->stopped);
  auto reqs = f.server.requests();
  ASSERT_FALSE(reqs.empty());
  EXPECT_EQ(reqs.back().method + " " + reqs.back().target,
            "DELETE /v1.43/containers/abc123?force=true&v=true");
}

TEST(docker_launcher_test, clean_up_removes_orphans_only) {
  docker_fixture f;
  auto ok = run_async([&](asio::any_io_executor ex) -> asio::awaitable<dp::result<void>> {
    dp::http_client::client http(ex);
    auto l = dp::worker::make_docker_launcher(http, f.options());
    dp::worker::liveness_check live = [](std::string, std::string w) -> asio::awaitable<bool> {
      co_return w == "alive";
    };
    co_return co_await l->clean_up(live);
  });
  ASSERT_TRUE(ok) << ok.error().message;
  auto reqs = f.server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].target, "/v1.43/containers/json?all=true&filters=" +
                                std::string("%7B%22label%22%3A%5B%22dp.deployment%22%5D%7D"));
  EXPECT_EQ(reqs[1].method + " " + reqs[1].target,
            "DELETE /v1.43/containers/orphan1?force=true&v=true");
}

// ---- ecs ----

std::chrono::system_clock::time_point from_amz_date(const std::string& s) {
  std::tm tm{};
  ::strptime(s.c_str(), "%Y%m%dT%H%M%SZ", &tm);
  return std::chrono::system_clock::from_time_t(::timegm(&tm));
}

struct ecs_fixture {
  std::mutex m;
  bool stop_seen = false;
  int describes = 0;
  bool stop_mode = false;     // describe says RUNNING until StopTask
  bool list_mode = false;     // ListTasks and DescribeTasks describe running tasks for clean_up
  bool missing_mode = false;  // DescribeTasks never finds the task
  bool success_mode = false;  // the build container exits 0
  bool oom_mode = false;      // the build container is killed at the task's memory limit
  api_server server{"", [this](const seen_request& r) { return answer_for(r); }};

  answer answer_for(const seen_request& r) {
    // Every request: POST /, JSON 1.1, a target, and a SigV4 signature we can recompute.
    if (r.method != "POST" || r.target != "/" ||
        r.headers.at("content-type") != "application/x-amz-json-1.1") {
      return {400, R"({"__type":"SerializationException","message":"bad request shape"})"};
    }
    dp::aws::request sr;
    sr.method = "POST";
    sr.path = "/";
    sr.style = dp::aws::uri_style::standard;
    sr.headers = {{"host", r.headers.at("host")},
                  {"content-type", r.headers.at("content-type")},
                  {"x-amz-target", r.headers.at("x-amz-target")}};
    auto hash = dp::aws::sha256_hex(r.body);
    sr.payload_hash = hash;
    dp::aws::credentials creds{"AKIDEXAMPLE", "secret", "", "eu-west-1"};
    auto sig =
        dp::aws::sign(sr, creds, {"eu-west-1", "ecs", from_amz_date(r.headers.at("x-amz-date"))});
    if (sig.authorization != r.headers.at("authorization")) {
      return {403, R"({"__type":"InvalidSignatureException","message":"signature mismatch"})"};
    }
    auto target = r.headers.at("x-amz-target");
    std::lock_guard lock(m);
    if (list_mode) {
      return list_answer(target, json::parse(r.body));
    }
    if (target == "AmazonEC2ContainerServiceV20141113.RunTask") {
      return {
          200,
          R"({"tasks":[{"taskArn":"arn:aws:ecs:eu-west-1:1:task/builds/t1","lastStatus":"PROVISIONING"}],"failures":[]})"};
    }
    if (target == "AmazonEC2ContainerServiceV20141113.StopTask") {
      stop_seen = true;
      return {
          200,
          R"({"task":{"taskArn":"arn:aws:ecs:eu-west-1:1:task/builds/t1","lastStatus":"RUNNING"}})"};
    }
    if (target == "AmazonEC2ContainerServiceV20141113.DescribeTasks" && missing_mode) {
      return {
          200,
          R"({"tasks":[],"failures":[{"arn":"arn:aws:ecs:eu-west-1:1:task/builds/t1","reason":"MISSING"}]})"};
    }
    if (target == "AmazonEC2ContainerServiceV20141113.DescribeTasks") {
      ++describes;
      if (stop_mode ? stop_seen : describes >= 2) {
        if (oom_mode) {
          return {
              200,
              R"({"tasks":[{"lastStatus":"STOPPED","stopCode":"EssentialContainerExited","stoppedReason":"Essential container in task exited","containers":[{"name":"build-runner","exitCode":137,"reason":"OutOfMemoryError: Container killed due to memory usage"}]}],"failures":[]})"};
        }
        if (success_mode) {
          return {
              200,
              R"({"tasks":[{"lastStatus":"STOPPED","stopCode":"EssentialContainerExited","containers":[{"name":"build-runner","exitCode":0}]}],"failures":[]})"};
        }
        if (stop_mode) {
          return {
              200,
              R"({"tasks":[{"lastStatus":"STOPPED","stopCode":"UserInitiated","stoppedReason":"stopped by the worker","containers":[{"name":"build-runner"}]}],"failures":[]})"};
        }
        return {
            200,
            R"({"tasks":[{"lastStatus":"STOPPED","stopCode":"EssentialContainerExited","containers":[{"name":"sidecar","exitCode":0},{"name":"build-runner","exitCode":1}]}],"failures":[]})"};
      }
      return {
          200,
          R"({"tasks":[{"lastStatus":"RUNNING","containers":[{"name":"build-runner"}]}],"failures":[]})"};
    }
    return {400, R"({"__type":"InvalidAction","message":"unknown target"})"};
  }

  // Three running tasks over two pages: t1 of a live worker, t2 of a gone one, t3 not a build.
  answer list_answer(const std::string& target, const json::value& body) {
    if (target == "AmazonEC2ContainerServiceV20141113.ListTasks") {
      if (body.as_object().contains("nextToken")) {
        return {200, R"({"taskArns":["arn:t3"]})"};
      }
      return {200, R"({"taskArns":["arn:t1","arn:t2"],"nextToken":"page2"})"};
    }
    if (target == "AmazonEC2ContainerServiceV20141113.DescribeTasks") {
      auto task = [](std::string arn, std::string by, std::string deployment) {
        json::array env{json::object{{"name", "STORAGE_URL"}, {"value", "s3://b"}}};
        if (!deployment.empty()) {
          env.push_back(json::object{{"name", "DEPLOYMENT_ID"}, {"value", deployment}});
        }
        return json::object{
            {"taskArn", arn},
            {"startedBy", by},
            {"lastStatus", "RUNNING"},
            {"overrides",
             json::object{{"containerOverrides",
                           json::array{json::object{{"name", "build-runner"},
                                                    {"environment", std::move(env)}}}}}}};
      };
      json::array tasks;
      for (const auto& arn : body.at("tasks").as_array()) {
        if (arn == "arn:t1") {
          tasks.push_back(task("arn:t1", "alive", "d1"));
        } else if (arn == "arn:t2") {
          tasks.push_back(task("arn:t2", "gone", "d2"));
        } else {
          tasks.push_back(task("arn:t3", "ecs-svc/123", ""));
        }
      }
      return {200, json::serialize(json::object{{"tasks", tasks}, {"failures", json::array{}}})};
    }
    if (target == "AmazonEC2ContainerServiceV20141113.StopTask") {
      return {200, R"({"task":{"lastStatus":"RUNNING"}})"};
    }
    return {400, R"({"__type":"InvalidAction","message":"unknown target"})"};
  }

  dp::worker::ecs_launcher_options options() {
    dp::worker::ecs_launcher_options o;
    o.endpoint = fmt::format("http://127.0.0.1:{}", server.port());
    o.region = "eu-west-1";
    o.credentials.access_key = "AKIDEXAMPLE";
    o.credentials.secret_key = "secret";
    o.cluster = "builds";
    o.task_definition = "build-runner:3";
    o.subnets = {"subnet-1", "subnet-2"};
    o.security_groups = {"sg-1"};
    o.assign_public_ip = true;
    o.env = {{"REDIS_URL", "redis://r:6379"}, {"STORAGE_URL", "s3://b"}};
    o.started_by = "w1";
    o.poll = 50ms;
    return o;
  }
};

// One job through an ECS launcher with options `o`, to its end.
dp::result<dp::worker::build_end> run_ecs_job(const dp::worker::ecs_launcher_options& o) {
  return run_async(
      [&](asio::any_io_executor ex) -> asio::awaitable<dp::result<dp::worker::build_end>> {
        dp::http_client::client http(ex);
        auto l = dp::worker::make_ecs_launcher(http, o);
        dp::worker::stop_flag stop(ex);
        co_return co_await l->run(make_job(), stop);
      });
}

TEST(ecs_launcher_test, run_task_then_describe_until_stopped) {
  ecs_fixture f;
  auto end = run_ecs_job(f.options());
  ASSERT_TRUE(end) << end.error().message;
  EXPECT_EQ(end->exit_code, 1);  // the build container's, not the sidecar's
  auto reqs = f.server.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].headers["x-amz-target"], "AmazonEC2ContainerServiceV20141113.RunTask");
  auto run = json::parse(reqs[0].body);
  auto expected = json::parse(R"({"cluster":"builds","taskDefinition":"build-runner:3","count":1,
    "launchType":"FARGATE","networkConfiguration":{"awsvpcConfiguration":{"subnets":["subnet-1","subnet-2"],
    "securityGroups":["sg-1"],"assignPublicIp":"ENABLED"}},"overrides":{"containerOverrides":[
    {"name":"build-runner","environment":[{"name":"REDIS_URL","value":"redis://r:6379"},
    {"name":"STORAGE_URL","value":"s3://b"},{"name":"DEPLOYMENT_ID","value":"01jh5k7q3x9m2c8r4t6v0w1y3z"},
    {"name":"BUILD_TIMEOUT_S","value":"60"}]}]},
    "startedBy":"w1"})");
  EXPECT_EQ(run, expected) << reqs[0].body;
  auto describe = json::parse(reqs[1].body);
  EXPECT_EQ(
      describe,
      json::parse(R"({"cluster":"builds","tasks":["arn:aws:ecs:eu-west-1:1:task/builds/t1"]})"));
}

// With a Redis user per build (build_redis_users, a real redis-server): the task's REDIS_URL logs
// in as the deployment's own user and the task may not go live itself (BUILD_GO_LIVE=worker); once
// it has exited 0 the worker makes the deployment live and the user is gone.
TEST(ecs_launcher_test, a_build_gets_a_redis_user_of_its_own_and_the_worker_makes_it_live) {
  ecs_fixture f;
  f.success_mode = true;
  dp::test::redis_server redis;
  dp::config::redis_url url;
  ASSERT_EQ(dp::config::parse_redis_url(redis.url(), url), std::nullopt);
  auto job = make_job();
  auto end = run_async(
      [&](asio::any_io_executor ex) -> asio::awaitable<dp::result<dp::worker::build_end>> {
        dp::redis::client admin(ex, dp::test::redis_options(redis));
        dp::state::records records(admin, dp::proto::keys("t:"));
        // The record as the runner leaves a successful build: uploaded, not live.
        dp::proto::project p{.name = job.project, .git_url = job.git_url, .created_at = 1};
        EXPECT_TRUE(co_await records.create_project(p));
        dp::proto::deployment d{.id = job.deployment_id, .project = job.project};
        d.git_url = job.git_url;
        d.created_at = 1;
        EXPECT_TRUE(co_await records.create_deployment(d, job));
        for (auto to :
             {dp::proto::deployment_status::cloning, dp::proto::deployment_status::installing,
              dp::proto::deployment_status::building, dp::proto::deployment_status::uploading}) {
          dp::proto::hash_fields none;
          EXPECT_TRUE(co_await records.transition(job.deployment_id, to, none, std::nullopt));
        }
        dp::worker::build_redis_users users(admin, dp::proto::keys("t:"), url);
        dp::http_client::client http(ex);
        auto l = dp::worker::make_ecs_launcher(http, f.options(), &users);
        dp::worker::stop_flag stop(ex);
        auto out = co_await l->run(job, stop);
        auto after = co_await records.get_deployment(job.deployment_id);
        EXPECT_TRUE(after && after->status == dp::proto::deployment_status::ready);
        auto alias = co_await records.resolve_alias(job.project);
        EXPECT_TRUE(alias && *alias == job.deployment_id);
        admin.close();
        co_return out;
      });
  ASSERT_TRUE(end) << end.error().message;
  EXPECT_TRUE(end->exit_code == 0) << end->description;
  auto reqs = f.server.requests();
  ASSERT_FALSE(reqs.empty());
  auto env = json::parse(reqs[0].body)
                 .at("overrides")
                 .at("containerOverrides")
                 .at(0)
                 .at("environment")
                 .as_array();
  std::map<std::string, std::string> seen;
  for (const auto& e : env) {
    seen[std::string(e.at("name").as_string())] = std::string(e.at("value").as_string());
  }
  EXPECT_EQ(seen["BUILD_GO_LIVE"], "worker");
  dp::config::redis_url given;
  ASSERT_EQ(dp::config::parse_redis_url(seen["REDIS_URL"], given), std::nullopt)
      << seen["REDIS_URL"];
  EXPECT_EQ(given.port, redis.port());
  EXPECT_EQ(given.username, "t:build:" + job.deployment_id);
  EXPECT_EQ(given.password.size(), 64u);
  // Deleted with the build's end.
  auto login = dp::test::redis_command(redis.port(), {"AUTH", given.username, given.password});
  ASSERT_FALSE(login);
  EXPECT_NE(login.error().message.find("WRONGPASS"), std::string::npos) << login.error().message;
}

TEST(ecs_launcher_test, stop_sends_stop_task_and_follows_to_stopped) {
  ecs_fixture f;
  f.stop_mode = true;
  auto end = run_async(
      [&](asio::any_io_executor ex) -> asio::awaitable<dp::result<dp::worker::build_end>> {
        dp::http_client::client http(ex);
        auto l = dp::worker::make_ecs_launcher(http, f.options());
        dp::worker::stop_flag stop(ex);
        asio::steady_timer t(ex);
        t.expires_after(200ms);
        t.async_wait([&](boost::system::error_code) { stop.request(); });
        co_return co_await l->run(make_job(), stop);
      });
  ASSERT_TRUE(end) << end.error().message;
  EXPECT_TRUE(end->stopped);
  EXPECT_FALSE(end->exit_code);
  bool found = false;
  for (const auto& r : f.server.requests()) {
    if (r.headers.at("x-amz-target") == "AmazonEC2ContainerServiceV20141113.StopTask") {
      found = true;
      EXPECT_EQ(
          json::parse(r.body),
          json::parse(
              R"({"cluster":"builds","task":"arn:aws:ecs:eu-west-1:1:task/builds/t1","reason":"stopped by the worker"})"));
    }
  }
  EXPECT_TRUE(found);
}

TEST(ecs_launcher_test, a_wrong_signature_is_refused) {
  ecs_fixture f;
  auto o = f.options();
  o.credentials.secret_key = "wrong";
  auto end = run_ecs_job(o);
  ASSERT_FALSE(end);
  EXPECT_NE(end.error().message.find("InvalidSignatureException"), std::string::npos);
}

TEST(ecs_launcher_test, clean_up_stops_orphaned_tasks_only) {
  ecs_fixture f;
  f.list_mode = true;
  auto o = f.options();
  o.task_definition = "arn:aws:ecs:eu-west-1:1:task-definition/build-runner:7";
  auto ok = run_async([&](asio::any_io_executor ex) -> asio::awaitable<dp::result<void>> {
    dp::http_client::client http(ex);
    auto l = dp::worker::make_ecs_launcher(http, o);
    dp::worker::liveness_check live = [](std::string d, std::string w) -> asio::awaitable<bool> {
      co_return d == "d1" && w == "alive";
    };
    co_return co_await l->clean_up(live);
  });
  ASSERT_TRUE(ok) << ok.error().message;
  std::vector<std::string> calls;
  for (const auto& r : f.server.requests()) {
    auto target = r.headers.at("x-amz-target");
    calls.push_back(target.substr(target.find('.') + 1) + " " + r.body);
  }
  std::vector<std::string> want = {
      R"(ListTasks {"cluster":"builds","family":"build-runner","desiredStatus":"RUNNING"})",
      R"(DescribeTasks {"cluster":"builds","tasks":["arn:t1","arn:t2"]})",
      R"(StopTask {"cluster":"builds","task":"arn:t2","reason":"orphaned: the worker that started it is gone"})",
      R"(ListTasks {"cluster":"builds","family":"build-runner","desiredStatus":"RUNNING","nextToken":"page2"})",
      R"(DescribeTasks {"cluster":"builds","tasks":["arn:t3"]})",
  };
  EXPECT_EQ(calls, want);
}

TEST(ecs_launcher_test, a_task_missing_for_good_ends_the_follow_with_an_error) {
  ecs_fixture f;
  f.missing_mode = true;
  auto o = f.options();
  o.missing_limit = 200ms;
  auto end = run_ecs_job(o);
  ASSERT_FALSE(end);
  EXPECT_NE(end.error().message.find("MISSING"), std::string::npos) << end.error().message;
}

// A task stopped at its memory limit names the limit, not only the exit code.
TEST(ecs_launcher_test, an_out_of_memory_task_names_the_memory_limit) {
  ecs_fixture f;
  f.oom_mode = true;
  auto end = run_ecs_job(f.options());
  ASSERT_TRUE(end) << end.error().message;
  EXPECT_EQ(end->exit_code, 137);
  EXPECT_EQ(end->description,
            "task exited with code 137: memory limit of the task reached (OutOfMemoryError: "
            "Container killed due to memory usage)");
}

// With a build role, RunTask's overrides carry the temporary keys the worker got for this
// deployment (a stand-in STS), signed for with the worker's own; the task has no other access.
TEST(ecs_launcher_test, a_build_role_puts_the_deployments_temporary_keys_in_the_overrides) {
  ecs_fixture f;
  dp::worker_test::fake_sts sts("ASIATEMPORARY", "temporary-secret");
  auto o = f.options();
  o.storage_role =
      dp::worker::build_storage_role{.role_arn = "arn:aws:iam::1:role/deploy-platform-build",
                                     .sts_endpoint = sts.endpoint(),
                                     .region = "eu-west-1",
                                     .credentials = o.credentials,
                                     .bucket = "b"};
  auto end = run_ecs_job(o);
  ASSERT_TRUE(end) << end.error().message;
  auto reqs = f.server.requests();
  ASSERT_FALSE(reqs.empty());
  auto run = json::parse(reqs[0].body);
  std::map<std::string, std::string> env;
  for (const auto& e :
       run.at("overrides").at("containerOverrides").at(0).at("environment").as_array()) {
    env[std::string(e.at("name").as_string())] = std::string(e.at("value").as_string());
  }
  EXPECT_EQ(env["AWS_ACCESS_KEY_ID"], "ASIATEMPORARY");
  EXPECT_EQ(env["AWS_SECRET_ACCESS_KEY"], "temporary-secret");
  EXPECT_EQ(env["AWS_SESSION_TOKEN"], "token-for-dp-build-01jh5k7q3x9m2c8r4t6v0w1y3z");
  EXPECT_EQ(reqs[0].body.find("AKIDEXAMPLE"), std::string::npos) << reqs[0].body;
  auto assumed = sts.requests();
  ASSERT_EQ(assumed.size(), 1u);
  EXPECT_TRUE(std::string(assumed[0].at("headers").at("authorization").as_string())
                  .starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
}

}  // namespace
