// Shared by the worker's integration tests: deployments in a real Redis, a worker running on its
// own thread in this process, and waits on Redis state.
#pragma once

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "dp/core/clock.hpp"
#include "dp/core/id.hpp"
#include "dp/http_client/client.hpp"
#include "dp/redis/client.hpp"
#include "dp/state/records.hpp"
#include "dp/storage/object_store.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"
#include "dp/test/options.hpp"
#include "dp/worker/launcher.hpp"
#include "dp/worker/worker.hpp"

namespace dp::worker_test {

namespace asio = boost::asio;
using namespace std::chrono_literals;

inline const std::string prefix = "t:";

using test::eventually;

inline redis::options options_for(const test::redis_server& server) {
  redis::options o = test::redis_options(server);
  o.reconnect_max = 200ms;
  return o;
}

// Runs `body` with the records of `server` and returns what it returns.
template <class T>
T run_sync(const test::redis_server& server,
           std::function<asio::awaitable<T>(state::records&)> body) {
  asio::io_context ioc;
  redis::client redis(ioc.get_executor(), options_for(server));
  state::records records(redis, proto::keys(prefix));
  // The client's connection keeps the io_context busy: close it when the body is done.
  return test::run_async(ioc, [&]() -> asio::awaitable<T> {
    T out = co_await body(records);
    redis.close();
    co_return out;
  }());
}

// A queued deployment of `project` (of `branch`, when given), its job on the queue. Returns its
// id.
inline std::string enqueue(const test::redis_server& server, const std::string& project,
                           int64_t timeout_s = 60, std::optional<std::string> branch = {}) {
  return run_sync<std::string>(server,
                               [&](state::records& records) -> asio::awaitable<std::string> {
                                 proto::deployment d;
                                 d.id = new_deployment_id();
                                 d.project = project;
                                 d.git_url = "https://example.com/" + project + ".git";
                                 d.created_at = dp::now_ms();
                                 d.branch = branch;
                                 d.ref = branch;
                                 proto::job j;
                                 j.deployment_id = d.id;
                                 j.project = project;
                                 j.git_url = d.git_url;
                                 j.timeout_s = timeout_s;
                                 j.enqueued_at = d.created_at;
                                 auto ok = co_await records.create_deployment(d, j);
                                 EXPECT_TRUE(ok) << (ok ? "" : ok.error().message);
                                 co_return d.id;
                               });
}

inline proto::deployment get(const test::redis_server& server, const std::string& id) {
  return run_sync<proto::deployment>(
      server, [&](state::records& records) -> asio::awaitable<proto::deployment> {
        auto d = co_await records.get_deployment(id);
        co_return d ? *d : proto::deployment{};
      });
}

inline std::string cmd(const test::redis_server& server, std::vector<std::string> argv) {
  auto r = test::redis_command(server.port(), argv);
  return r ? *r : std::string();
}

inline bool has_status(const test::redis_server& server, const std::string& id,
                       std::string_view status) {
  return cmd(server, {"HGET", prefix + "deployment:" + id, "status"}) == status;
}

inline std::string fake_build() {
  return (test::source_dir() / "libs/worker/test/fake_build.sh").string();
}

inline worker::process_launcher_options fake_launcher(const test::redis_server& server,
                                                      std::string sleep_s = "0") {
  worker::process_launcher_options o;
  o.program = fake_build();
  o.env = {{"REDIS_URL", server.url()},
           {"KEY_PREFIX", prefix},
           {"FAKE_SLEEP", std::move(sleep_s)},
           {"PATH", "/usr/bin:/bin"}};
  return o;
}

// A worker on its own thread (which lives as long as its builds: PR_SET_PDEATHSIG).
class threaded_worker {
 public:
  threaded_worker(const test::redis_server& server, std::unique_ptr<worker::launcher> l,
                  worker::worker_options o)
      : launcher_(std::move(l)),
        worker_(std::make_unique<worker::worker>(ioc_.get_executor(), options_for(server),
                                                 proto::keys(prefix), *launcher_, o)) {
    start();
  }
  // With a file store opened on the worker's executor, for its retention pass.
  threaded_worker(const test::redis_server& server, std::unique_ptr<worker::launcher> l,
                  worker::worker_options o, const std::filesystem::path& store_root)
      : launcher_(std::move(l)) {
    storage::storage_url url;
    url.root = store_root;
    store_ = storage::open_storage(ioc_.get_executor(), url, {}).value();
    o.retention.store = store_.get();
    worker_ = std::make_unique<worker::worker>(ioc_.get_executor(), options_for(server),
                                               proto::keys(prefix), *launcher_, o);
    start();
  }
  // With an http client on the worker's executor for commit statuses.
  struct with_commit_statuses {};
  threaded_worker(const test::redis_server& server, std::unique_ptr<worker::launcher> l,
                  worker::worker_options o, with_commit_statuses)
      : launcher_(std::move(l)), http_(std::make_unique<http_client::client>(ioc_.get_executor())) {
    o.commit_status_http = http_.get();
    worker_ = std::make_unique<worker::worker>(ioc_.get_executor(), options_for(server),
                                               proto::keys(prefix), *launcher_, o);
    start();
  }
  void start() {
    thread_ = std::thread([this] {
      asio::co_spawn(ioc_, worker_->run(), [this](std::exception_ptr) { ioc_.stop(); });
      ioc_.run();
    });
  }
  ~threaded_worker() { stop(); }
  // Graceful: returns once the worker has drained.
  void stop() {
    if (thread_.joinable()) {
      asio::post(ioc_, [this] { worker_->stop(); });
      thread_.join();
    }
  }
  worker::worker& get() { return *worker_; }

 private:
  asio::io_context ioc_;
  std::unique_ptr<worker::launcher> launcher_;
  std::shared_ptr<storage::object_store> store_;
  std::unique_ptr<http_client::client> http_;
  std::unique_ptr<worker::worker> worker_;
  std::thread thread_;
};

inline worker::worker_options fast_options(std::string id = {}) {
  worker::worker_options o;
  o.id = std::move(id);
  o.concurrency = 2;
  o.lease_ttl = 1500ms;
  o.block = 300ms;
  o.lock_retry = 50ms;
  o.drain = 2000ms;
  return o;
}

}  // namespace dp::worker_test
