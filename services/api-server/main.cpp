// api-server: REST API, live logs and the dashboard. Wiring only; the logic lives in libs/.
#include <boost/asio/io_context.hpp>

#include "dp/core/config.hpp"
#include "dp/core/log.hpp"
#include "dp/core/shutdown.hpp"
#include "dp/settings/settings.hpp"

extern char** environ;

namespace {

struct api_config {
  dp::settings::common common;
  dp::config::host_port listen;
  std::vector<std::string> api_tokens;
  std::vector<std::string> allowed_git_protocols;
  int64_t build_timeout_s = 900;
  int64_t max_attempts = 2;
};

}  // namespace

int main(int argc, char** argv) {
  api_config cfg;
  dp::config::parser parser("api-server", "REST API, live build logs and the dashboard");
  dp::settings::add_common(parser, cfg.common, {.base_domain = true});
  parser.add_host_port("API_LISTEN", &cfg.listen, "127.0.0.1:9000", "Address the API listens on");
  parser.add({.env = "API_TOKENS",
              .help = "Comma-separated bearer tokens; when empty only loopback clients are served",
              .secret = true,
              .apply = [&](std::string_view v) -> std::optional<std::string> {
                cfg.api_tokens = dp::config::split_list(v);
                for (const auto& t : cfg.api_tokens) {
                  if (t.size() < 16) {
                    return "each token must have at least 16 characters";
                  }
                }
                return std::nullopt;
              }});
  parser.add_list("ALLOWED_GIT_PROTOCOLS", &cfg.allowed_git_protocols, "https",
                  "Git URL schemes a deployment may use", {"https", "http", "file"});
  parser.add_int("BUILD_TIMEOUT_S", &cfg.build_timeout_s, 900, 10, 86400,
                 "Wall-clock limit of one build, in seconds");
  parser.add_int("MAX_ATTEMPTS", &cfg.max_attempts, 2, 1, 10, "Attempts per build job");
  auto outcome = parser.parse(argc, argv, dp::config::environment_from(environ));
  if (!outcome.run) {
    return outcome.exit_code;
  }
  if (!parser.positionals().empty()) {
    std::fprintf(stderr, "api-server: unexpected argument '%s' (see --help)\n",
                 parser.positionals()[0].c_str());
    return 2;
  }
  dp::settings::configure_logging(cfg.common.log, "api-server");

  boost::asio::io_context ioc;
  dp::on_shutdown_signal(ioc, [&](int) { ioc.stop(); });
  dp::log::info("api-server starting",
                {{"listen", cfg.listen.to_string()}, {"redis", cfg.common.redis.redacted()}});
  ioc.run();
  return 0;
}
