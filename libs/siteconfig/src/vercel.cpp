// `vercel.json`: the routing keys (redirects, rewrites, headers, cleanUrls, trailingSlash); every
// other key is a warning. Invalid JSON is an error naming the line.
#include <fmt/format.h>

#include <boost/json.hpp>

#include <algorithm>

#include "detail.hpp"

namespace dp::siteconfig::detail {

namespace json = boost::json;

namespace {

const json::string* string_field(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it == o.end() ? nullptr : it->value().if_string();
}

// Keys Vercel accepts in a route that we do not: a warning each, the rule kept.
void warn_unknown_keys(const json::object& o, std::initializer_list<std::string_view> known,
                       std::string_view name, const diagnostics& d) {
  for (const auto& kv : o) {
    if (std::find(known.begin(), known.end(), kv.key()) == known.end()) {
      d.warn(0,
             fmt::format("{}: key '{}' ignored (not supported)", name, std::string_view(kv.key())));
    }
  }
}

// has/missing make a rule conditional on the request: refused (a rule that applied without its
// condition would redirect requests it was not meant for).
bool conditional(const json::object& o, std::string_view name, const diagnostics& d) {
  if (o.contains("has") || o.contains("missing")) {
    d.warn(0, fmt::format("{} dropped: conditions (has, missing) are not supported", name));
    return true;
  }
  return false;
}

void route(const json::value& v, std::string_view name, bool rewrite, const options& opt,
           rule_set& out, const diagnostics& d) {
  auto drop = [&](std::string_view why) { d.warn(0, fmt::format("{} dropped: {}", name, why)); };
  const json::object* o = v.if_object();
  if (!o) {
    drop("not an object");
    return;
  }
  const json::string* source = string_field(*o, "source");
  const json::string* destination = string_field(*o, "destination");
  if (!source || !destination) {
    drop("'source' and 'destination' must be strings");
    return;
  }
  if (conditional(*o, name, d)) {
    return;
  }
  if (rewrite) {
    warn_unknown_keys(*o, {"source", "destination"}, name, d);
  } else {
    warn_unknown_keys(*o, {"source", "destination", "permanent", "statusCode"}, name, d);
  }
  if (source->size() > opt.limit.max_rule_chars || destination->size() > opt.limit.max_rule_chars) {
    drop(fmt::format("source or destination longer than {} characters", opt.limit.max_rule_chars));
    return;
  }
  unsigned status = rewrite ? 200 : 308;
  if (!rewrite) {
    if (auto it = o->find("permanent"); it != o->end()) {
      if (!it->value().is_bool()) {
        drop("'permanent' must be a boolean");
        return;
      }
      status = it->value().get_bool() ? 308 : 307;
    }
    if (auto it = o->find("statusCode"); it != o->end()) {
      auto code = it->value().if_int64();
      if (!code || (*code != 301 && *code != 302 && *code != 303 && *code != 307 && *code != 308)) {
        drop("'statusCode' must be 301, 302, 303, 307 or 308");
        return;
      }
      status = static_cast<unsigned>(*code);
    }
  }
  std::string why;
  auto pat = parse_pattern(*source, syntax::vercel, opt.limit, why);
  if (!pat) {
    drop(why);
    return;
  }
  std::string_view dest = *destination;
  bool external = is_external(dest);
  if (rewrite && external) {
    drop(
        "an external rewrite would proxy another host; only paths of this deployment can be "
        "rewritten");
    return;
  }
  if (!external && !dest.starts_with('/')) {
    drop("the destination must be a path starting with '/' or an http(s) URL");
    return;
  }
  if (!is_printable(dest) || dest.find_first_of(" \t") != std::string_view::npos) {
    drop("a space or control character in the destination");
    return;
  }
  if (rewrite) {
    dest = dest.substr(0, dest.find_first_of("?#"));
  }
  auto parts = parse_destination(dest, *pat, syntax::vercel, rewrite, why);
  if (!parts) {
    drop(why);
    return;
  }
  redirect_rule rule;
  rule.source = std::move(*pat);
  rule.destination = std::move(*parts);
  rule.status = status;
  // Vercel checks redirects before the filesystem and rewrites after it.
  rule.over_files = !rewrite;
  rule.origin = fmt::format("{}:{}", vercel_file, name);
  if (!add_redirect(out, std::move(rule), opt.limit, why)) {
    drop(why);
  }
}

void header_route(const json::value& v, std::string_view name, const options& opt, rule_set& out,
                  const diagnostics& d) {
  auto drop = [&](std::string_view why) { d.warn(0, fmt::format("{} dropped: {}", name, why)); };
  const json::object* o = v.if_object();
  if (!o) {
    drop("not an object");
    return;
  }
  const json::string* source = string_field(*o, "source");
  auto hs = o->find("headers");
  if (!source || hs == o->end() || !hs->value().is_array()) {
    drop("'source' must be a string and 'headers' an array");
    return;
  }
  if (conditional(*o, name, d)) {
    return;
  }
  warn_unknown_keys(*o, {"source", "headers"}, name, d);
  if (source->size() > opt.limit.max_rule_chars) {
    drop(fmt::format("source longer than {} characters", opt.limit.max_rule_chars));
    return;
  }
  std::string why;
  auto pat = parse_pattern(*source, syntax::vercel, opt.limit, why);
  if (!pat) {
    drop(why);
    return;
  }
  header_rule rule;
  rule.merge = header_merge::replace;
  rule.origin = fmt::format("{}:{}", vercel_file, name);
  const auto& arr = hs->value().get_array();
  for (size_t i = 0; i < arr.size(); ++i) {
    std::string entry = fmt::format("{}.headers[{}]", name, i);
    const json::object* h = arr[i].if_object();
    const json::string* key = h ? string_field(*h, "key") : nullptr;
    const json::string* value = h ? string_field(*h, "value") : nullptr;
    if (!key || !value) {
      d.warn(0, fmt::format("{} dropped: 'key' and 'value' must be strings", entry));
      continue;
    }
    if (!is_token(*key)) {
      d.warn(0,
             fmt::format("{} dropped: '{}' is not a header name", entry, std::string_view(*key)));
      continue;
    }
    if (is_forbidden_header(*key)) {
      d.warn(0,
             fmt::format("{} dropped: {} is managed by the server", entry, std::string_view(*key)));
      continue;
    }
    if (!is_printable(*value) || value->size() > opt.limit.max_header_line_chars) {
      d.warn(0, fmt::format(
                    "{} dropped: a control character in the value, or longer than {} characters",
                    entry, opt.limit.max_header_line_chars));
      continue;
    }
    rule.set.push_back(header_entry{std::string(*key), std::string(*value)});
  }
  if (rule.set.empty()) {
    return;
  }
  if (out.header_rules.size() >= opt.limit.max_header_rules) {
    drop(fmt::format("more than {} header rules", opt.limit.max_header_rules));
    return;
  }
  rule.source = std::move(*pat);
  out.header_rules.push_back(std::move(rule));
}

// The 1-based line of byte `offset`.
unsigned line_of(std::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  return static_cast<unsigned>(
      1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(offset), '\n'));
}

}  // namespace

void parse_vercel(std::string_view text, const options& opt, rule_set& out, const diagnostics& d) {
  text = strip_bom(text);
  json::stream_parser parser;
  boost::system::error_code ec;
  size_t used = parser.write_some(text.data(), text.size(), ec);
  if (!ec) {
    parser.finish(ec);
    used = text.size();
  }
  if (ec) {
    d.error(line_of(text, used),
            fmt::format("invalid JSON: {}; the file's rules are not applied", ec.message()));
    return;
  }
  json::value root = parser.release();
  const json::object* o = root.if_object();
  if (!o) {
    d.error(1, "not a JSON object; the file's rules are not applied");
    return;
  }
  // Vercel's order: the trailingSlash/cleanUrls redirects, then redirects, then the files, then
  // rewrites (rule.over_files = false puts them after the files); headers apply to every answer.
  for (const auto& kv : *o) {
    std::string_view key = kv.key();
    const json::value& v = kv.value();
    if (key == "$schema") {
      continue;
    }
    if (key == "cleanUrls" || key == "trailingSlash") {
      if (!v.is_bool()) {
        d.warn(0, fmt::format("'{}' ignored: not a boolean", key));
      } else if (key == "cleanUrls") {
        out.clean_urls = v.get_bool();
      } else {
        out.trailing_slash = v.get_bool() ? trailing_slash_mode::add : trailing_slash_mode::remove;
      }
      continue;
    }
    if (key != "redirects" && key != "rewrites" && key != "headers") {
      d.warn(0, fmt::format("key '{}' ignored (not supported: only redirects, rewrites, headers, "
                            "cleanUrls and trailingSlash apply)",
                            key));
      continue;
    }
    if (!v.is_array()) {
      d.warn(0, fmt::format("'{}' ignored: not an array", key));
    }
  }
  for (std::string_view key : {"redirects", "rewrites"}) {
    auto it = o->find(key);
    if (it == o->end() || !it->value().is_array()) {
      continue;
    }
    const auto& arr = it->value().get_array();
    for (size_t i = 0; i < arr.size(); ++i) {
      route(arr[i], fmt::format("{}[{}]", key, i), key == "rewrites", opt, out, d);
    }
  }
  if (auto it = o->find("headers"); it != o->end() && it->value().is_array()) {
    const auto& arr = it->value().get_array();
    for (size_t i = 0; i < arr.size(); ++i) {
      header_route(arr[i], fmt::format("headers[{}]", i), opt, out, d);
    }
  }
}

}  // namespace dp::siteconfig::detail
