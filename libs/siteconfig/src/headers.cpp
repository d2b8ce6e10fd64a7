// `_headers`: Cloudflare Pages' format. A URL pattern at the start of a line opens a block; the
// indented lines under it are `Name: value` or `! Name` (remove). Netlify's `Basic-Auth:` line
// becomes a protection rule instead of a header.
#include <fmt/format.h>

#include "detail.hpp"

namespace dp::siteconfig::detail {

namespace {

struct block {
  unsigned line = 0;
  std::optional<pattern> source;  // nullopt: the block was dropped (its lines are skipped)
  header_rule rule;
  std::optional<protection_rule> protection;
};

}  // namespace

void parse_headers(std::string_view text, const options& opt, rule_set& out, const diagnostics& d) {
  auto all = lines(strip_bom(text));
  std::optional<block> current;
  size_t rules = out.header_rules.size();
  size_t credentials = 0;  // each costs a PBKDF2 here: bounded

  auto finish = [&]() {
    if (!current || !current->source) {
      current.reset();
      return;
    }
    block& b = *current;
    bool headers = !b.rule.set.empty() || !b.rule.remove.empty();
    if (!headers && !b.protection) {
      current.reset();
      return;
    }
    // A block counts once against the limit, whether it sets headers, protects, or both.
    if (rules >= opt.limit.max_header_rules) {
      d.warn(b.line,
             fmt::format("rule dropped: more than {} header rules", opt.limit.max_header_rules));
      current.reset();
      return;
    }
    ++rules;
    if (b.protection) {
      b.protection->source = *b.source;
      out.protections.push_back(std::move(*b.protection));
    }
    if (headers) {
      b.rule.source = std::move(*b.source);
      out.header_rules.push_back(std::move(b.rule));
    }
    current.reset();
  };

  for (size_t n = 0; n < all.size(); ++n) {
    unsigned line_no = static_cast<unsigned>(n + 1);
    std::string_view raw = all[n];
    std::string_view line = trim(raw);
    if (line.empty() || line.starts_with('#')) {
      continue;
    }
    bool indented = raw.front() == ' ' || raw.front() == '\t';
    if (raw.size() > opt.limit.max_header_line_chars) {
      if (indented) {
        d.warn(line_no, fmt::format("header dropped: line longer than {} characters",
                                    opt.limit.max_header_line_chars));
      } else {
        finish();
        current = block{line_no, std::nullopt, {}, {}};
        d.warn(line_no, fmt::format("rule dropped: line longer than {} characters",
                                    opt.limit.max_header_line_chars));
      }
      continue;
    }

    if (!indented) {
      finish();
      current = block{line_no, std::nullopt, {}, {}};
      current->rule.origin = fmt::format("{}:{}", headers_file, line_no);
      current->rule.merge = header_merge::join;
      if (is_external(line)) {
        d.warn(line_no, "rule dropped: absolute URLs (a host in the pattern) are not supported");
        continue;
      }
      std::string why;
      auto pat = parse_pattern(line.substr(0, line.find('#')), syntax::cloudflare, opt.limit, why);
      if (!pat) {
        d.warn(line_no, fmt::format("rule dropped: {}", why));
        continue;
      }
      current->source = std::move(pat);
      continue;
    }

    if (!current) {
      d.warn(line_no, "header dropped: an indented line before any URL pattern");
      continue;
    }
    if (!current->source) {
      continue;  // the block's pattern was refused, already said
    }
    auto drop = [&](std::string_view why) {
      d.warn(line_no, fmt::format("header dropped: {}", why));
    };
    if (line.starts_with('!')) {
      std::string_view name = trim(line.substr(1));
      if (!is_token(name)) {
        drop(fmt::format("'{}' is not a header name", name));
      } else if (is_forbidden_header(name)) {
        drop(fmt::format("{} is managed by the server", name));
      } else {
        current->rule.remove.emplace_back(name);
      }
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      drop("expected `Name: value` or `! Name`");
      continue;
    }
    std::string_view name = trim(line.substr(0, colon));
    std::string_view value = trim(line.substr(colon + 1));
    if (!is_token(name)) {
      drop(fmt::format("'{}' is not a header name", name));
      continue;
    }
    if (!is_printable(value)) {
      drop("a control character in the value");
      continue;
    }
    if (iequals(name, "Basic-Auth")) {
      auto pairs = fields(value);
      if (credentials + pairs.size() > opt.limit.max_credentials) {
        drop(fmt::format("more than {} Basic-Auth users in the file", opt.limit.max_credentials));
        continue;
      }
      credentials += pairs.size();
      protection_rule prot;
      prot.iterations = opt.pbkdf2_iterations;
      prot.origin = fmt::format("{}:{}", headers_file, line_no);
      bool ok = true;
      for (auto pair : pairs) {
        size_t c = pair.find(':');
        if (c == std::string_view::npos || c == 0 || c + 1 == pair.size()) {
          drop("Basic-Auth expects `user:password` pairs separated by spaces");
          ok = false;
          break;
        }
        prot.users.push_back(
            make_credential(pair.substr(0, c), pair.substr(c + 1), opt.pbkdf2_iterations));
      }
      if (ok && prot.users.empty()) {
        drop("Basic-Auth without a `user:password` pair");
        ok = false;
      }
      if (ok) {
        if (current->protection) {
          for (auto& u : prot.users) {
            current->protection->users.push_back(std::move(u));
          }
        } else {
          current->protection = std::move(prot);
        }
      }
      continue;
    }
    if (is_forbidden_header(name)) {
      drop(fmt::format("{} is managed by the server", name));
      continue;
    }
    // A repeated name in one block joins, as across blocks.
    bool joined = false;
    for (auto& e : current->rule.set) {
      if (iequals(e.name, name)) {
        e.value += ", ";
        e.value += value;
        joined = true;
        break;
      }
    }
    if (!joined) {
      current->rule.set.push_back(header_entry{std::string(name), std::string(value)});
    }
  }
  finish();
}

}  // namespace dp::siteconfig::detail
