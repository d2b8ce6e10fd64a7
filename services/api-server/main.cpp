// api-server: REST API, live logs and the dashboard. Wiring only; the logic lives in libs/.
#include <boost/asio/io_context.hpp>

#include "dp/api/api.hpp"
#include "dp/api/browser.hpp"
#include "dp/core/config.hpp"
#include "dp/core/limits.hpp"
#include "dp/core/log.hpp"
#include "dp/core/shutdown.hpp"
#include "dp/core/spawn.hpp"
#include "dp/dns/txt_resolver.hpp"
#include "dp/http/server.hpp"
#include "dp/redis/client.hpp"
#include "dp/settings/settings.hpp"
#include "dp/storage/from_settings.hpp"

extern char** environ;

namespace {

struct api_config {
  dp::settings::common common;
  dp::config::host_port listen;
  std::vector<std::string> api_tokens;
  std::vector<std::string> allowed_origins;
  std::vector<std::string> api_hosts;
  dp::settings::build build;
  dp::settings::retention retention;
  std::string site_scheme = "http";
  int64_t site_port = 8000;
  int64_t source_max_mb = 100;
  std::string domain_verify_address;
  std::optional<dp::dns::server_address> dns_resolver;
};

}  // namespace

int main(int argc, char** argv) {
  api_config cfg;
  dp::config::parser parser("api-server", "REST API, live build logs and the dashboard");
  dp::settings::add_common(parser, cfg.common, {.base_domain = true});
  parser.add_host_port("API_LISTEN", &cfg.listen, "127.0.0.1:9000", "Address the API listens on");
  parser.add_checked_list(
      "API_TOKENS", &cfg.api_tokens,
      "Comma-separated bearer tokens; when empty only loopback clients are served",
      [](std::string_view t) { return t.size() >= 16; },
      "each token must have at least 16 characters", /*secret=*/true);
  parser.add_checked_list(
      "API_ALLOWED_ORIGINS", &cfg.allowed_origins,
      "Comma-separated origins (https://dash.example.com) whose pages may call the API besides "
      "its own; a request with another Origin header is refused",
      [](std::string_view o) {
        bool http = o.starts_with("http://"), https = o.starts_with("https://");
        o.remove_prefix(http ? 7 : https ? 8 : 0);
        return (http || https) && dp::api::host_name(o);
      },
      "each origin must be http(s)://host[:port], without a path");
  parser.add_checked_list(
      "API_HOSTS", &cfg.api_hosts,
      "Local mode: comma-separated host names the API answers to besides localhost and IP "
      "addresses (others are refused against DNS rebinding)",
      [](std::string_view h) { return dp::api::host_name(h).has_value(); },
      "each entry must be a host name (with an optional :port)");
  dp::settings::add_build(parser, cfg.build, {});
  dp::settings::add_retention(parser, cfg.retention, false);
  parser.add_choice("SITE_SCHEME", &cfg.site_scheme, "http", {"http", "https"},
                    "Scheme of the public site URLs (where the s3-reverse-proxy is reached)");
  parser.add_int("SITE_PORT", &cfg.site_port, 8000, 0, 65535,
                 "Port of the public site URLs; 0 or the scheme's default port is left out");
  parser.add_int("SOURCE_MAX_MB", &cfg.source_max_mb, 100, 1, 4096,
                 "Largest uploaded source archive (deployctl deploy <directory>), in MiB");
  parser.add({.env = "DOMAIN_VERIFY_ADDRESS",
              .help = "host:port the custom-domain ownership check connects to instead of the "
                      "domain's DNS address (a proxy reached privately); empty: DNS",
              .apply = [&cfg](std::string_view v) -> std::optional<std::string> {
                dp::config::host_port hp;
                if (!v.empty()) {
                  if (auto err = dp::config::parse_host_port(v, hp)) {
                    return err;
                  }
                }
                cfg.domain_verify_address = v;
                return std::nullopt;
              }});
  parser.add({.env = "DNS_RESOLVER",
              .help = "the DNS server the custom-domain TXT check asks (tests, a private "
                      "resolver): a.b.c.d[:port] or an IPv6 address, [::1]:port with a port; "
                      "empty: the system's (/etc/resolv.conf)",
              .apply = [&cfg](std::string_view v) -> std::optional<std::string> {
                if (v.empty()) {
                  cfg.dns_resolver.reset();
                  return std::nullopt;
                }
                auto server = dp::dns::parse_server(v);
                if (!server) {
                  return server.error().message;
                }
                cfg.dns_resolver = *server;
                return std::nullopt;
              }});
  auto outcome =
      dp::settings::parse_service(parser, argc, argv, dp::config::environment_from(environ));
  if (!outcome.run) {
    return outcome.exit_code;
  }
  dp::settings::configure_logging(cfg.common.log, "api-server");

  // One thread: the Redis client, the log hub and every handler share it (no locks anywhere).
  boost::asio::io_context ioc(1);
  dp::redis::options redis_opts{.url = cfg.common.redis};
  dp::redis::client redis(ioc.get_executor(), redis_opts);
  auto storage = dp::storage::storage_from_settings(ioc.get_executor(), cfg.common);
  if (!storage) {
    dp::log::error("cannot open storage", {{"error", storage.error()}});
    return dp::settings::exit_misconfigured;
  }
  dp::api::options api_opts{.keys = dp::proto::keys(cfg.common.key_prefix),
                            .site = {.scheme = cfg.site_scheme,
                                     .base_domain = cfg.common.base_domain,
                                     .port = static_cast<uint16_t>(cfg.site_port)},
                            .api_tokens = cfg.api_tokens,
                            .allowed_origins = cfg.allowed_origins,
                            .api_hosts = cfg.api_hosts,
                            .allowed_git_protocols = cfg.build.allowed_git_protocols,
                            .build_timeout_s = cfg.build.timeout_s,
                            .source_max_bytes = static_cast<size_t>(cfg.source_max_mb) << 20,
                            .keep_deployments = cfg.retention.keep_deployments,
                            .keep_production_days = cfg.retention.keep_production_days,
                            .domain_verify_address = cfg.domain_verify_address,
                            .dns_resolver = cfg.dns_resolver};
  // The name the API listens on answers too (API_LISTEN=myhost:9000).
  api_opts.api_hosts.push_back(cfg.listen.host);
  dp::api::service api(ioc.get_executor(), redis, redis_opts, *storage, std::move(api_opts));
  dp::raise_open_files_limit();  // a descriptor per connection, log streams included
  dp::http::server server(ioc, {.listen = cfg.listen}, api.routes());
  if (auto r = server.start(); !r) {
    dp::log::error("cannot start the api-server", {{"error", r.error()}});
    return dp::settings::exit_misconfigured;
  }
  // Streams work once the hub is subscribed; a Redis that is down at start is retried.
  dp::spawn(
      ioc.get_executor(),
      [&api]() -> boost::asio::awaitable<void> {
        if (auto r = co_await api.start(); !r) {
          dp::log::warn("log streams wait for Redis; subscribing when it is back",
                        {{"error", r.error()}});
        }
      },
      "log hub start");
  dp::on_shutdown_signal(ioc, [&](int) {
    dp::log::info("api-server stopping");
    server.stop(std::chrono::seconds(10), [&] {
      api.stop();
      redis.close();
      // The signal handler stays armed for a second signal: stop the loop once drained.
      ioc.stop();
    });
  });
  dp::log::info(
      "api-server listening",
      {{"listen", server.local_endpoint().to_string()},
       {"redis", cfg.common.redis.redacted()},
       {"auth", cfg.api_tokens.empty() ? "local mode (loopback only)" : "bearer tokens"}});
  server.run();
  return 0;
}
