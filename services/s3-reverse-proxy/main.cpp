// s3-reverse-proxy: serves every deployment at <label>.<BASE_DOMAIN> from object storage.
// Wiring only; the logic lives in libs/.
#include <boost/asio/io_context.hpp>

#include <cstdio>

#include "dp/core/config.hpp"
#include "dp/core/limits.hpp"
#include "dp/core/log.hpp"
#include "dp/core/shutdown.hpp"
#include "dp/proxy/proxy.hpp"
#include "dp/settings/settings.hpp"
#include "dp/storage/url.hpp"

extern char** environ;

namespace {

struct proxy_config {
  dp::settings::common common;
  dp::config::host_port listen;
  dp::config::host_port admin_listen;
  int64_t cache_mb = 256;
  int64_t threads = 1;
  int64_t auth_failures = 10;
  int64_t auth_window_s = 60;
  bool access_log = true;
  std::optional<dp::config::host_port> tls_listen;
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string platform_key;
};

}  // namespace

int main(int argc, char** argv) {
  proxy_config cfg;
  dp::config::parser parser("s3-reverse-proxy", "serves deployments from object storage by Host");
  dp::settings::add_common(parser, cfg.common, {.base_domain = true});
  parser.add_host_port("PROXY_LISTEN", &cfg.listen, "127.0.0.1:8000",
                       "Address sites are served on");
  parser.add_host_port("ADMIN_LISTEN", &cfg.admin_listen, "127.0.0.1:8001",
                       "Address of /metrics and /healthz");
  parser.add_int("PROXY_CACHE_MB", &cfg.cache_mb, 256, 0, 65536,
                 "In-memory cache of small hot files, in MiB (0 disables it)");
  parser.add_int("PROXY_THREADS", &cfg.threads, 1, 1, 64, "Threads serving requests");
  parser.add_int("PROXY_AUTH_FAILURES", &cfg.auth_failures, 10, 1, 1'000'000,
                 "Failed Basic-Auth guesses per client address (IPv6: per /64) per window before "
                 "it is answered 429");
  parser.add_int("PROXY_AUTH_WINDOW_S", &cfg.auth_window_s, 60, 1, 86'400,
                 "The window of PROXY_AUTH_FAILURES, in seconds");
  parser.add_bool("ACCESS_LOG", &cfg.access_log, true, "Write one log line per request");
  parser.add({.env = "PROXY_TLS_LISTEN",
              .help = "Address HTTPS is served on (host:port); empty: no HTTPS",
              .apply = [&cfg](std::string_view v) -> std::optional<std::string> {
                if (v.empty()) {
                  return std::nullopt;
                }
                dp::config::host_port hp;
                if (auto err = dp::config::parse_host_port(v, hp)) {
                  return err;
                }
                cfg.tls_listen = hp;
                return std::nullopt;
              }});
  parser.add_string(
      "PROXY_TLS_CERT_FILE", &cfg.tls_cert_file, "",
      "PEM chain served for the names it lists, e.g. *.<BASE_DOMAIN> (with PROXY_TLS_KEY_FILE)");
  parser.add_string("PROXY_TLS_KEY_FILE", &cfg.tls_key_file, "",
                    "PEM private key of PROXY_TLS_CERT_FILE");
  dp::settings::add_platform_key(parser, &cfg.platform_key);
  auto outcome =
      dp::settings::parse_service(parser, argc, argv, dp::config::environment_from(environ));
  if (!outcome.run) {
    return outcome.exit_code;
  }
  dp::settings::configure_logging(cfg.common.log, "s3-reverse-proxy");
  if (cfg.tls_cert_file.empty() != cfg.tls_key_file.empty()) {
    std::fprintf(stderr,
                 "s3-reverse-proxy: PROXY_TLS_CERT_FILE and PROXY_TLS_KEY_FILE go together\n");
    return dp::settings::exit_misconfigured;
  }

  dp::proxy::options o;
  o.server.listen = cfg.listen;
  o.server.threads = static_cast<int>(cfg.threads);
  o.admin_listen = cfg.admin_listen;
  o.base_domain = cfg.common.base_domain;
  o.redis.url = cfg.common.redis;
  o.keys = dp::proto::keys(cfg.common.key_prefix);
  o.storage = cfg.common.storage;
  o.credentials = cfg.common.aws_credentials.keys();
  o.store.credentials_endpoint = cfg.common.aws_credentials.endpoint();
  o.cache_bytes = static_cast<size_t>(cfg.cache_mb) << 20;
  o.access_log = cfg.access_log;
  o.auth_failures = static_cast<uint32_t>(cfg.auth_failures);
  o.auth_window = std::chrono::seconds(cfg.auth_window_s);
  o.tls_listen = cfg.tls_listen;
  o.tls_cert_file = cfg.tls_cert_file;
  o.tls_key_file = cfg.tls_key_file;
  if (!cfg.platform_key.empty()) {
    o.platform_key = *dp::tls::platform_key::from_hex(cfg.platform_key);
  }

  dp::raise_open_files_limit();  // a descriptor per connection and per large cached file
  boost::asio::io_context ioc(static_cast<int>(cfg.threads));
  dp::proxy::proxy proxy(ioc, std::move(o));
  if (auto started = proxy.start(); !started) {
    dp::log::error("s3-reverse-proxy cannot start", {{"error", started.error()}});
    return dp::settings::exit_misconfigured;
  }
  dp::on_shutdown_signal(ioc, [&](int) {
    // The signal handler stays armed for a second signal: stop the loop once drained.
    proxy.stop(std::chrono::seconds(10), [&] { ioc.stop(); });
  });
  dp::log::info(
      "s3-reverse-proxy listening",
      {{"listen", dp::config::host_port{cfg.listen.host, proxy.port()}.to_string()},
       {"admin", dp::config::host_port{cfg.admin_listen.host, proxy.admin_port()}.to_string()},
       {"tls", cfg.tls_listen
                   ? dp::config::host_port{cfg.tls_listen->host, proxy.tls_port()}.to_string()
                   : std::string("off")},
       {"base_domain", cfg.common.base_domain},
       {"threads", cfg.threads}});
  proxy.run();
  return 0;
}
