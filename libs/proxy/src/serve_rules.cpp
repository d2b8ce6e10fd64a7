// Serving a deployment through its own rules: Basic-Auth paths, then redirects and rewrites
// (static ones by one hash lookup, a bounded scan of dynamic ones), then the path as usual; the
// header rules on whatever the deployment answers (200, 206, 304, 404, redirects, 401).
#include "dp/core/log.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/proxy/site_rules.hpp"
#include "proxy_impl.hpp"

namespace dp::proxy {

asio::awaitable<http::response> proxy::impl::serve_with_rules(http::request& req,
                                                              request_note& note,
                                                              std::shared_ptr<const site> s,
                                                              const std::string& label,
                                                              const clean_path& path) {
  const site& st = *s;
  const siteconfig::rule_set& rules = *st.rules;
  std::string matched = rule_path(path);
  auto known = remembered_rules_for(st, path, matched);
  const path_rules& pr = *known;
  http::response res;
  if (const auto* guard = pr.guard) {
    // Remembered per deployment and rule: deployments are immutable, so is the rule's hash.
    std::string key = st.deployment_id + '\n' + guard->origin;
    auto header = req.header("Authorization");
    bool ok = header && credentials.contains(key, *header);
    std::optional<http::response> refused;
    if (header && !ok) {
      refused = over_guess_limit(req);
      if (!refused) {
        ok = siteconfig::verify(*guard, *header);
        if (ok) {
          credentials.add(key, *header);
        } else {
          guess_failed(req);
        }
      }
    }
    if (refused) {
      co_return std::move(*refused);  // not the site's headers: a 429 must never be cached
    }
    if (!ok) {
      res = unauthorized(label);
      apply_header_edits(pr.headers, res.headers);
      co_return res;
    }
  }
  switch (pr.type) {
    case siteconfig::outcome::kind::none: {
      // vercel.json's trailingSlash decides the slash: the clean-URL slash redirects of
      // resolve() would loop with its redirect, so the page is served where the rule left it.
      if (rules.trailing_slash != siteconfig::trailing_slash_mode::keep &&
          resolve(st, path).type == resolution::kind::redirect) {
        auto r = resolve_rewrite(st, path);
        if (r.type == resolution::kind::file) {
          res = co_await serve_file(req, st, s, *r.file, r.status, note);
          break;
        }
      }
      res = co_await serve_path(req, note, s, label, path);
      break;
    }
    case siteconfig::outcome::kind::redirect: {
      res = http::response(pr.status);
      std::string location = pr.location;
      siteconfig::append_query(location, req.query_string());
      res.headers.emplace_back("Location", std::move(location));
      break;
    }
    case siteconfig::outcome::kind::rewrite: {
      auto target = rewrite_path(pr.location);
      auto r = target ? resolve_rewrite(st, *target) : resolution{};
      if (r.type == resolution::kind::file) {
        res = co_await serve_file(req, st, s, *r.file, r.status, note);
      } else {
        res = page(404, "404 Not Found");
      }
      break;
    }
  }
  apply_header_edits(pr.headers, res.headers);
  co_return res;
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
