#include "dp/settings/settings.hpp"

#include <algorithm>

#include "dp/core/log.hpp"
#include "dp/storage/url.hpp"

namespace dp::settings {

bool is_domain(std::string_view s) {
  // Stricter than a resolver: the proxy compares Host headers as written, lowercase.
  return dp::config::is_dns_name(s) && s.back() != '.' &&
         std::none_of(s.begin(), s.end(),
                      [](char c) { return c == '_' || (c >= 'A' && c <= 'Z'); });
}

void add_common(dp::config::parser& p, common& c, needs n) {
  p.add_logging(&c.log.level, &c.log.format);
  if (n.redis) {
    std::string def = n.redis_optional ? "" : "redis://127.0.0.1:6379";
    p.add({.env = "REDIS_URL",
           .default_value = def,
           .help = n.redis_optional
                       ? "Redis URL; when empty, logs go to stdout and no state is kept"
                       : "Redis URL (redis://[user[:password]@]host[:port][/db])",
           .apply = [&c, optional = n.redis_optional](std::string_view v) {
             c.redis_set = !v.empty();
             if (v.empty() && optional) {
               return std::optional<std::string>{};
             }
             return dp::config::parse_redis_url(v, c.redis);
           }});
    p.add({.env = "REDIS_PREFIX",
           .default_value = c.key_prefix,
           .help = "Prefix of every Redis key and channel",
           .apply = [&c](std::string_view v) -> std::optional<std::string> {
             if (v.size() > 64 || v.find_first_of(" \t\r\n*?[]") != std::string_view::npos) {
               return "at most 64 characters, no spaces or glob characters";
             }
             c.key_prefix = std::string(v);
             return std::nullopt;
           }});
  }
  if (n.storage) {
    p.add(
        {.env = "STORAGE_URL",
         .default_value = "file:///var/lib/deploy-platform/storage",
         .help =
             "Object storage: file:///abs/dir or s3://bucket?endpoint=URL&region=R&path_style=true",
         .apply = [&c](std::string_view v) -> std::optional<std::string> {
           auto parsed = dp::storage::parse_storage_url(v);
           if (!parsed) {
             return parsed.error().message;
           }
           c.storage_url = std::string(v);
           return std::nullopt;
         }});
    p.add_string("AWS_ACCESS_KEY_ID", &c.aws_credentials.access_key_id, "", "S3 access key", true);
    p.add_string("AWS_SECRET_ACCESS_KEY", &c.aws_credentials.secret_access_key, "", "S3 secret key",
                 true);
    p.add_string("AWS_SESSION_TOKEN", &c.aws_credentials.session_token, "",
                 "Session token for temporary credentials", true);
    p.add_string("AWS_REGION", &c.aws_credentials.region, "us-east-1",
                 "AWS region (the storage URL's region= wins for S3)");
    p.add_string(
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", &c.aws_credentials.container_relative_uri, "",
        "Set by ECS for a task role: temporary keys from 169.254.170.2 when no keys are set");
    p.add_string("AWS_CONTAINER_CREDENTIALS_FULL_URI", &c.aws_credentials.container_full_uri, "",
                 "A container credentials endpoint (when no keys and no RELATIVE_URI are set)");
    p.add_string("AWS_CONTAINER_AUTHORIZATION_TOKEN", &c.aws_credentials.container_authorization,
                 "", "Authorization header for the container credentials endpoint", true);
  }
  if (n.base_domain) {
    p.add({.env = "BASE_DOMAIN",
           .default_value = c.base_domain,
           .help = "Sites are served at <label>.<BASE_DOMAIN>",
           .apply = [&c](std::string_view v) -> std::optional<std::string> {
             if (!is_domain(v)) {
               return "expected a lowercase DNS name such as localhost or apps.example.com";
             }
             c.base_domain = std::string(v);
             return std::nullopt;
           }});
  }
}

void configure_logging(const logging& l, std::string_view service) {
  dp::log::level level = dp::log::level::info;
  dp::log::format format = dp::log::format::text;
  dp::log::parse_level(l.level, level);
  dp::log::parse_format(l.format, format);
  dp::log::configure(level, format, service);
}

}  // namespace dp::settings
