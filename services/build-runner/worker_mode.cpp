#include "worker_mode.hpp"

#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <filesystem>

#include "dp/core/log.hpp"
#include "dp/core/shutdown.hpp"
#include "dp/core/spawn.hpp"
#include "dp/http_client/client.hpp"
#include "dp/redis/client.hpp"
#include "dp/storage/from_settings.hpp"
#include "dp/tls/platform_key.hpp"
#include "dp/worker/build_redis_users.hpp"
#include "dp/worker/certificates.hpp"
#include "dp/worker/from_settings.hpp"
#include "dp/worker/worker.hpp"

namespace build_runner {

int run_worker(const dp::settings::common& common, const dp::settings::build& build,
               const dp::settings::worker_settings& w, const dp::settings::retention& r,
               const dp::settings::acme& acme, const std::string& platform_key_hex,
               const std::string& self_path) {
  if (auto why = dp::worker::check_settings(common, w)) {
    std::fprintf(stderr, "build-runner: %s\n", why->c_str());
    return dp::settings::exit_misconfigured;
  }
  if (!acme.ca_bundle.empty() && !std::filesystem::is_regular_file(acme.ca_bundle)) {
    std::fprintf(stderr, "build-runner: invalid ACME_CA_BUNDLE='%s': no such file\n",
                 acme.ca_bundle.c_str());
    return dp::settings::exit_misconfigured;
  }
  if (auto warning = dp::worker::storage_access_warning(w)) {
    dp::log::warn(*warning);
  }
  boost::asio::io_context ioc;
  auto wo = dp::worker::worker_options_from(build, w);
  // The retention pass removes old deployments' files from the store the builds upload to.
  auto storage = dp::storage::storage_from_settings(ioc.get_executor(), common);
  if (!storage) {
    dp::log::error("cannot open storage", {{"error", storage.error()}});
    return dp::settings::exit_misconfigured;
  }
  wo.retention = dp::worker::retention_options_from(r, build);
  wo.retention.store = storage->get();
  dp::http_client::client http(ioc.get_executor());
  // The connection that makes and deletes each container build's Redis user.
  std::optional<dp::redis::client> admin;
  std::optional<dp::worker::build_redis_users> users;
  if (dp::worker::uses_build_redis_users(w)) {
    admin.emplace(ioc.get_executor(), dp::redis::options{.url = common.redis});
    users.emplace(*admin, dp::proto::keys(common.key_prefix), dp::worker::build_redis_url(common));
  }
  wo.commit_status_http = &http;
  auto launcher = dp::worker::launcher_from_settings(http, common, build, w, wo.id, self_path,
                                                     users ? &*users : nullptr);
  dp::worker::worker worker(ioc.get_executor(), dp::redis::options{.url = common.redis},
                            dp::proto::keys(common.key_prefix), *launcher, wo);
  // Certificates for custom domains need somewhere to issue from and the key that seals them.
  std::optional<dp::redis::client> issuer_redis;
  std::optional<dp::worker::certificate_issuer> issuer;
  if (acme.directory_url.empty() || platform_key_hex.empty()) {
    dp::log::info("no certificate issuance",
                  {{"reason", acme.directory_url.empty() ? "ACME_DIRECTORY_URL is empty"
                                                         : "PLATFORM_KEY is empty"}});
  } else {
    issuer_redis.emplace(ioc.get_executor(), dp::redis::options{.url = common.redis});
    issuer.emplace(ioc.get_executor(), *issuer_redis, dp::redis::options{.url = common.redis},
                   dp::proto::keys(common.key_prefix),
                   *dp::tls::platform_key::from_hex(platform_key_hex),
                   dp::worker::certificate_options_from(acme, wo.id));
  }
  dp::on_shutdown_signal(ioc, [&](int signo) {
    dp::log::info("stopping: no new builds", {{"signal", signo}});
    worker.stop();
    if (issuer) {
      issuer->stop();
    }
  });
  int code = 0;
  // The process ends when both are done: the issuer finishes the domain it is on.
  int running = issuer ? 2 : 1;
  auto finished = [&] {
    if (--running == 0) {
      if (admin) {
        admin->close();
      }
      if (issuer_redis) {
        issuer_redis->close();
      }
      ioc.stop();
    }
  };
  dp::spawn(ioc.get_executor(), worker.run(), "worker", [&](bool threw) {
    if (threw) {
      dp::log::error("the worker failed unexpectedly");
      code = 3;
    }
    if (issuer) {
      issuer->stop();
    }
    finished();
  });
  if (issuer) {
    dp::spawn(ioc.get_executor(), issuer->run(), "certificate issuer", [&](bool threw) {
      if (threw) {
        dp::log::error("the certificate issuer failed unexpectedly");
        code = 3;
        worker.stop();
      }
      finished();
    });
  }
  ioc.run();
  return code;
}

}  // namespace build_runner
