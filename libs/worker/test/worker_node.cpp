// A worker process for the multi-process tests: dp::worker::worker with the process launcher
// running test/fake_build.sh. (The service's `build-runner worker` is the same wiring with
// settings; this one takes them from a few environment variables and has no other dependency.)
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdlib>

#include "dp/core/log.hpp"
#include "dp/core/shutdown.hpp"
#include "dp/worker/launcher.hpp"
#include "dp/worker/worker.hpp"

namespace {
std::string env_or(const char* name, std::string def) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : def;
}
int64_t int_env(const char* name, int64_t def) {
  const char* v = std::getenv(name);
  return v ? std::atoll(v) : def;
}
}  // namespace

int main() {
  dp::log::configure(dp::log::level::info, dp::log::format::text, "worker_node");
  dp::redis::options ro;
  if (auto err = dp::config::parse_redis_url(env_or("REDIS_URL", ""), ro.url)) {
    std::fprintf(stderr, "worker_node: bad REDIS_URL: %s\n", err->c_str());
    return 2;
  }
  auto prefix = env_or("KEY_PREFIX", "dp:");
  dp::worker::process_launcher_options po;
  po.program = env_or("FAKE_BUILD", "");
  po.env = {{"REDIS_URL", env_or("REDIS_URL", "")},
            {"KEY_PREFIX", prefix},
            {"FAKE_SLEEP", env_or("FAKE_SLEEP", "0")},
            {"PATH", "/usr/bin:/bin"}};
  auto launcher = dp::worker::make_process_launcher(po);
  dp::worker::worker_options wo;
  wo.id = env_or("WORKER_ID", "");
  wo.concurrency = static_cast<int>(int_env("CONCURRENCY", 2));
  wo.lease_ttl = std::chrono::milliseconds(int_env("LEASE_TTL_MS", 3000));
  wo.max_attempts = static_cast<int>(int_env("MAX_ATTEMPTS", 2));
  wo.drain = std::chrono::milliseconds(int_env("DRAIN_MS", 5000));
  wo.block = std::chrono::milliseconds(500);
  wo.lock_retry = std::chrono::milliseconds(50);
  boost::asio::io_context ioc;
  dp::worker::worker w(ioc.get_executor(), ro, dp::proto::keys(prefix), *launcher, wo);
  dp::on_shutdown_signal(ioc, [&](int) { w.stop(); });
  boost::asio::co_spawn(ioc, w.run(), [&](std::exception_ptr) { ioc.stop(); });
  ioc.run();
  return 0;
}
