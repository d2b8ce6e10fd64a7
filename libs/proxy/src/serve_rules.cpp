// A deployment's own rules before it is served: Basic-Auth paths (behind the failed-guess limit),
// then redirects and rewrites, from what the site's memo remembers of the path (worked out once:
// the static rules by one hash lookup, a bounded scan of the dynamic ones).
#include "dp/core/log.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/proxy/site_rules.hpp"
#include "proxy_impl.hpp"

namespace dp::proxy {

proxy::impl::rules_step proxy::impl::rules_before(const http::request& req, const site& st,
                                                  const path_rules& pr, const std::string& label,
                                                  const clean_path& path) {
  rules_step step;
  if (const auto* guard = pr.guard) {
    // Remembered per deployment and rule: deployments are immutable, so is the rule's hash.
    std::string key = st.deployment_id + '\n' + guard->origin;
    auto header = req.header("Authorization");
    bool ok = header && credentials.contains(key, *header);
    if (header && !ok) {
      if (auto refused = over_guess_limit(req)) {
        step.answer = std::move(*refused);
        step.bare = true;  // not the site's headers: a 429 must never be cached
        return step;
      }
      ok = siteconfig::verify(*guard, *header);
      if (ok) {
        credentials.add(key, *header);
      } else {
        guess_failed(req);
      }
    }
    if (!ok) {
      step.answer = unauthorized(label);
      return step;
    }
  }
  switch (pr.type) {
    case siteconfig::outcome::kind::none:
      // vercel.json's trailingSlash decides the slash: the clean-URL slash redirects of
      // resolve() would loop with its redirect, so the page is served where the rule left it.
      if (st.rules->trailing_slash != siteconfig::trailing_slash_mode::keep &&
          resolve(st, path).type == resolution::kind::redirect) {
        auto r = resolve_rewrite(st, path);
        if (r.type == resolution::kind::file) {
          step.file = r.file;
          step.status = r.status;
        }
      }
      break;
    case siteconfig::outcome::kind::redirect: {
      step.answer.emplace(pr.status);
      std::string location = pr.location;
      siteconfig::append_query(location, req.query_string());
      step.answer->headers.emplace_back("Location", std::move(location));
      break;
    }
    case siteconfig::outcome::kind::rewrite: {
      auto target = rewrite_path(pr.location);
      auto r = target ? resolve_rewrite(st, *target) : resolution{};
      if (r.type == resolution::kind::file) {
        step.file = r.file;
        step.status = r.status;
      } else {
        step.answer = page(404, "404 Not Found");
      }
      break;
    }
  }
  return step;
}

asio::awaitable<dp::result<std::shared_ptr<const siteconfig::rule_set>>> proxy::impl::get_rules(
    std::string id, std::string name) {
  auto text = co_await read_metadata(proto::output_key(id, name));
  if (!text) {
    co_return text.error();
  }
  auto rules = siteconfig::parse_rule_set(*text);
  if (!rules) {
    // The runner wrote it; a file it cannot read back is a bug to fix, not a reason to go dark.
    log::error("proxy: site rules unreadable, served without them",
               {{"deployment", id}, {"error", rules.error()}});
    co_return std::shared_ptr<const siteconfig::rule_set>();
  }
  co_return std::make_shared<const siteconfig::rule_set>(std::move(*rules));
}

}  // namespace dp::proxy
