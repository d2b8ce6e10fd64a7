// `_redirects`: Cloudflare Pages' format (a superset of what sites write for Netlify), one rule a
// line: `source destination [code]`, Netlify's `!` after the code forcing the rule over a file.
#include <fmt/format.h>

#include <charconv>

#include "detail.hpp"

namespace dp::siteconfig::detail {

namespace {

bool valid_status(unsigned s) noexcept {
  return s == 200 || s == 301 || s == 302 || s == 303 || s == 307 || s == 308;
}

}  // namespace

bool add_redirect(rule_set& out, redirect_rule rule, const limits& lim, std::string& why) {
  if (rule.source.is_static() && out.dynamic_redirects.empty()) {
    if (out.static_redirects.size() >= lim.max_static_redirects) {
      why = fmt::format("more than {} static rules", lim.max_static_redirects);
      return false;
    }
    out.static_redirects.push_back(std::move(rule));
    return true;
  }
  if (out.dynamic_redirects.size() >= lim.max_dynamic_redirects) {
    why = rule.source.is_static()
              ? fmt::format(
                    "more than {} dynamic rules (a static rule after the first dynamic one "
                    "counts as dynamic: move static rules first)",
                    lim.max_dynamic_redirects)
              : fmt::format("more than {} dynamic rules", lim.max_dynamic_redirects);
    return false;
  }
  out.dynamic_redirects.push_back(std::move(rule));
  return true;
}

void parse_redirects(std::string_view text, const options& opt, rule_set& out,
                     const diagnostics& d) {
  auto all = lines(strip_bom(text));
  for (size_t n = 0; n < all.size(); ++n) {
    unsigned line_no = static_cast<unsigned>(n + 1);
    std::string_view line = trim(all[n]);
    if (line.empty() || line.starts_with('#')) {
      continue;
    }
    auto drop = [&](std::string_view why) {
      d.warn(line_no, fmt::format("rule dropped: {}", why));
    };
    if (line.size() > opt.limit.max_rule_chars) {
      drop(fmt::format("longer than {} characters", opt.limit.max_rule_chars));
      continue;
    }
    auto f = fields(line);
    // An inline comment ends the rule.
    for (size_t i = 0; i < f.size(); ++i) {
      if (f[i].starts_with('#')) {
        f.resize(i);
        break;
      }
    }
    if (f.size() < 2) {
      drop("expected `source destination [code]`");
      continue;
    }
    std::string_view source = f[0];
    std::string_view destination = f[1];
    if (is_external(source)) {
      drop("domain-level sources (a scheme and host) are not supported");
      continue;
    }
    if (destination.find('=') != std::string_view::npos && !destination.starts_with('/') &&
        !is_external(destination)) {
      drop("query parameter matching (Netlify's `source key=:value destination`) is not supported");
      continue;
    }
    unsigned status = 302;
    bool force = false;
    if (f.size() >= 3) {
      std::string_view code = f[2];
      if (code.ends_with('!')) {
        force = true;
        code.remove_suffix(1);
      }
      auto [ptr, ec] = std::from_chars(code.data(), code.data() + code.size(), status);
      if (ec != std::errc() || ptr != code.data() + code.size()) {
        drop("conditions (Country=, Language=, Role=, Cookie=) are not supported");
        continue;
      }
      if (!valid_status(status)) {
        drop(fmt::format("status {} is not supported (200, 301, 302, 303, 307, 308)", code));
        continue;
      }
      if (f.size() > 3) {
        drop("conditions (Country=, Language=, Role=, Cookie=) are not supported");
        continue;
      }
    }
    // A fragment in the source is the browser's, never sent.
    source = source.substr(0, source.find('#'));
    std::string why;
    auto pat = parse_pattern(source, syntax::cloudflare, opt.limit, why);
    if (!pat) {
      drop(why);
      continue;
    }
    bool external = is_external(destination);
    if (status == 200 && external) {
      drop(
          "a 200 rule to another host would proxy it; only paths of this deployment can be "
          "rewritten");
      continue;
    }
    if (!external && !destination.starts_with('/')) {
      drop("the destination must be a path starting with '/' or an http(s) URL");
      continue;
    }
    if (!is_printable(destination)) {
      drop("a control character in the destination");
      continue;
    }
    std::string_view target = destination;
    if (status == 200) {
      // A rewrite serves a file: the query and fragment mean nothing to it.
      target = target.substr(0, target.find_first_of("?#"));
    }
    auto dest = parse_destination(target, *pat, syntax::cloudflare, status == 200, why);
    if (!dest) {
      drop(why);
      continue;
    }
    redirect_rule rule;
    rule.source = std::move(*pat);
    rule.destination = std::move(*dest);
    rule.status = status;
    rule.over_files = force || opt.shadow == shadowing::rules_win;
    rule.origin = fmt::format("{}:{}", redirects_file, line_no);
    if (!add_redirect(out, std::move(rule), opt.limit, why)) {
      drop(why);
    }
  }
}

}  // namespace dp::siteconfig::detail
