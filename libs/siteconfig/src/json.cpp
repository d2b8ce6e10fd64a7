// The compiled file: the rule set as JSON (version 1). A literal segment is a string, a
// placeholder segment an object; a destination is an array of strings (literal text), integers
// (capture indexes) and [index, text] pairs (text written before the capture when it is not empty).
// Read back strictly: the proxy trusts nothing it cannot check.
#include <fmt/format.h>

#include <boost/json.hpp>

#include "detail.hpp"

namespace dp::siteconfig {

namespace json = boost::json;

namespace {

constexpr uint32_t max_iterations = 10'000'000;

std::string_view to_string(tail_kind t) {
  switch (t) {
    case tail_kind::none:
      return "none";
    case tail_kind::splat:
      return "splat";
    case tail_kind::any_segs:
      return "any";
    case tail_kind::some_segs:
      return "some";
  }
  return "none";
}

json::value write(const pattern& p) {
  json::array segs;
  for (const auto& s : p.segments) {
    if (s.param.empty()) {
      segs.emplace_back(s.prefix);
    } else {
      segs.emplace_back(json::object{{"prefix", s.prefix},
                                     {"param", s.param},
                                     {"suffix", s.suffix},
                                     {"optional", s.optional}});
    }
  }
  json::object o{{"segments", std::move(segs)}, {"tail", to_string(p.tail)}};
  if (p.tail != tail_kind::none) {
    o["tail_prefix"] = p.tail_prefix;
    o["tail_suffix"] = p.tail_suffix;
    o["tail_name"] = p.tail_name;
  } else {
    o["trailing_slash"] = p.trailing_slash;
  }
  return o;
}

json::value write(const redirect_rule& r) {
  json::array dest;
  for (const auto& part : r.destination) {
    if (part.capture >= 0 && part.text.empty()) {
      dest.emplace_back(part.capture);
    } else if (part.capture >= 0) {
      dest.emplace_back(json::array{part.capture, json::string(part.text)});
    } else {
      dest.emplace_back(part.text);
    }
  }
  return json::object{{"source", write(r.source)},
                      {"destination", std::move(dest)},
                      {"status", r.status},
                      {"over_files", r.over_files},
                      {"origin", r.origin}};
}

json::value write(const header_rule& r) {
  json::array set;
  for (const auto& e : r.set) {
    set.emplace_back(json::array{json::string(e.name), json::string(e.value)});
  }
  json::array remove;
  for (const auto& n : r.remove) {
    remove.emplace_back(n);
  }
  return json::object{{"source", write(r.source)},
                      {"set", std::move(set)},
                      {"remove", std::move(remove)},
                      {"merge", r.merge == header_merge::join ? "join" : "replace"},
                      {"origin", r.origin}};
}

json::value write(const protection_rule& r) {
  json::array users;
  for (const auto& u : r.users) {
    users.emplace_back(json::object{{"user", u.user}, {"salt", u.salt_hex}, {"hash", u.hash_hex}});
  }
  return json::object{{"source", write(r.source)},
                      {"users", std::move(users)},
                      {"iterations", r.iterations},
                      {"origin", r.origin}};
}

template <class T>
json::array write_all(const std::vector<T>& v) {
  json::array a;
  for (const auto& x : v) {
    a.push_back(write(x));
  }
  return a;
}

// ---- reading ----

struct bad {
  std::string message;
};

const json::value& field(const json::object& o, std::string_view key, std::string_view path) {
  auto it = o.find(key);
  if (it == o.end()) {
    throw bad{fmt::format("field '{}.{}' is missing", path, key)};
  }
  return it->value();
}

std::string get_string(const json::object& o, std::string_view key, std::string_view path) {
  const json::value& v = field(o, key, path);
  if (!v.is_string()) {
    throw bad{fmt::format("field '{}.{}' must be a string", path, key)};
  }
  return std::string(v.get_string());
}

bool get_bool(const json::object& o, std::string_view key, std::string_view path) {
  const json::value& v = field(o, key, path);
  if (!v.is_bool()) {
    throw bad{fmt::format("field '{}.{}' must be a boolean", path, key)};
  }
  return v.get_bool();
}

uint64_t get_uint(const json::object& o, std::string_view key, std::string_view path,
                  uint64_t max) {
  const json::value& v = field(o, key, path);
  if (!v.is_int64() && !v.is_uint64()) {
    throw bad{fmt::format("field '{}.{}' must be an integer", path, key)};
  }
  int64_t i = v.is_int64() ? v.get_int64()
                           : static_cast<int64_t>(std::min<uint64_t>(v.get_uint64(), INT64_MAX));
  if (i < 0 || static_cast<uint64_t>(i) > max) {
    throw bad{fmt::format("field '{}.{}' is out of range", path, key)};
  }
  return static_cast<uint64_t>(i);
}

const json::object& get_object(const json::value& v, std::string_view path) {
  if (!v.is_object()) {
    throw bad{fmt::format("field '{}' must be an object", path)};
  }
  return v.get_object();
}

const json::array& get_array(const json::object& o, std::string_view key, std::string_view path) {
  const json::value& v = field(o, key, path);
  if (!v.is_array()) {
    throw bad{fmt::format("field '{}.{}' must be an array", path, key)};
  }
  return v.get_array();
}

pattern read_pattern(const json::value& v, const std::string& path) {
  const json::object& o = get_object(v, path);
  pattern p;
  const json::array& segs = get_array(o, "segments", path);
  for (size_t i = 0; i < segs.size(); ++i) {
    std::string sp = fmt::format("{}.segments[{}]", path, i);
    if (segs[i].is_string()) {
      p.segments.push_back(segment{std::string(segs[i].get_string()), "", "", false});
      continue;
    }
    const json::object& so = get_object(segs[i], sp);
    segment s{get_string(so, "prefix", sp), get_string(so, "param", sp),
              get_string(so, "suffix", sp), get_bool(so, "optional", sp)};
    if (s.param.empty()) {
      throw bad{fmt::format("field '{}.param' must not be empty", sp)};
    }
    p.segments.push_back(std::move(s));
  }
  std::string tail = get_string(o, "tail", path);
  if (tail == "none") {
    p.tail = tail_kind::none;
    p.trailing_slash = get_bool(o, "trailing_slash", path);
  } else {
    if (tail == "splat") {
      p.tail = tail_kind::splat;
    } else if (tail == "any") {
      p.tail = tail_kind::any_segs;
    } else if (tail == "some") {
      p.tail = tail_kind::some_segs;
    } else {
      throw bad{fmt::format("field '{}.tail' has an unknown value", path)};
    }
    p.tail_prefix = get_string(o, "tail_prefix", path);
    p.tail_suffix = get_string(o, "tail_suffix", path);
    p.tail_name = get_string(o, "tail_name", path);
  }
  if (p.capture_count() > detail::max_capture_slots) {
    throw bad{fmt::format("field '{}' has too many captures", path)};
  }
  return p;
}

redirect_rule read_redirect(const json::value& v, const std::string& path) {
  const json::object& o = get_object(v, path);
  redirect_rule r;
  r.source = read_pattern(field(o, "source", path), path + ".source");
  size_t caps = r.source.capture_count();
  const json::array& dest = get_array(o, "destination", path);
  for (const auto& part : dest) {
    if (part.is_string()) {
      r.destination.push_back(template_part{std::string(part.get_string()), -1});
    } else if (part.is_int64() && part.get_int64() >= 0 &&
               static_cast<size_t>(part.get_int64()) < caps) {
      r.destination.push_back(template_part{"", static_cast<int>(part.get_int64())});
    } else if (const json::array* a = part.if_array();
               a && a->size() == 2 && (*a)[0].is_int64() && (*a)[0].get_int64() >= 0 &&
               static_cast<size_t>((*a)[0].get_int64()) < caps && (*a)[1].is_string()) {
      r.destination.push_back(
          template_part{std::string((*a)[1].get_string()), static_cast<int>((*a)[0].get_int64())});
    } else {
      throw bad{fmt::format(
          "field '{}.destination' holds something other than text or a capture index", path)};
    }
  }
  r.status = static_cast<unsigned>(get_uint(o, "status", path, 999));
  if (r.status != 200 && r.status != 301 && r.status != 302 && r.status != 303 && r.status != 307 &&
      r.status != 308) {
    throw bad{fmt::format("field '{}.status' is not a redirect or 200", path)};
  }
  r.over_files = get_bool(o, "over_files", path);
  r.origin = get_string(o, "origin", path);
  return r;
}

header_rule read_header(const json::value& v, const std::string& path) {
  const json::object& o = get_object(v, path);
  header_rule r;
  r.source = read_pattern(field(o, "source", path), path + ".source");
  for (const auto& e : get_array(o, "set", path)) {
    const json::array* pair = e.if_array();
    if (!pair || pair->size() != 2 || !(*pair)[0].is_string() || !(*pair)[1].is_string()) {
      throw bad{fmt::format("field '{}.set' must hold [name, value] pairs", path)};
    }
    header_entry h{std::string((*pair)[0].get_string()), std::string((*pair)[1].get_string())};
    if (!detail::is_token(h.name) || detail::is_forbidden_header(h.name) ||
        !detail::is_printable(h.value)) {
      throw bad{fmt::format("field '{}.set' holds an invalid or forbidden header", path)};
    }
    r.set.push_back(std::move(h));
  }
  for (const auto& n : get_array(o, "remove", path)) {
    if (!n.is_string()) {
      throw bad{fmt::format("field '{}.remove' must hold strings", path)};
    }
    r.remove.emplace_back(n.get_string());
  }
  std::string merge = get_string(o, "merge", path);
  if (merge != "join" && merge != "replace") {
    throw bad{fmt::format("field '{}.merge' must be join or replace", path)};
  }
  r.merge = merge == "join" ? header_merge::join : header_merge::replace;
  r.origin = get_string(o, "origin", path);
  return r;
}

protection_rule read_protection(const json::value& v, const std::string& path) {
  const json::object& o = get_object(v, path);
  protection_rule r;
  r.source = read_pattern(field(o, "source", path), path + ".source");
  const json::array& users = get_array(o, "users", path);
  for (size_t i = 0; i < users.size(); ++i) {
    std::string up = fmt::format("{}.users[{}]", path, i);
    const json::object& u = get_object(users[i], up);
    r.users.push_back(credential{get_string(u, "user", up), get_string(u, "salt", up),
                                 get_string(u, "hash", up)});
  }
  if (r.users.empty()) {
    throw bad{fmt::format("field '{}.users' is empty", path)};
  }
  r.iterations = static_cast<uint32_t>(get_uint(o, "iterations", path, max_iterations));
  if (r.iterations == 0) {
    throw bad{fmt::format("field '{}.iterations' must be positive", path)};
  }
  r.origin = get_string(o, "origin", path);
  return r;
}

template <class T>
std::vector<T> read_all(const json::object& o, std::string_view key,
                        T (*read)(const json::value&, const std::string&)) {
  std::vector<T> out;
  const json::array& a = get_array(o, key, "rules");
  for (size_t i = 0; i < a.size(); ++i) {
    out.push_back(read(a[i], fmt::format("{}[{}]", key, i)));
  }
  return out;
}

}  // namespace

std::string to_json(const rule_set& r) {
  std::string_view ts = r.trailing_slash == trailing_slash_mode::add      ? "add"
                        : r.trailing_slash == trailing_slash_mode::remove ? "remove"
                                                                          : "keep";
  json::object o{{"version", rule_set::current_version},
                 {"trailing_slash", ts},
                 {"clean_urls", r.clean_urls},
                 {"static_redirects", write_all(r.static_redirects)},
                 {"dynamic_redirects", write_all(r.dynamic_redirects)},
                 {"header_rules", write_all(r.header_rules)},
                 {"protections", write_all(r.protections)}};
  return json::serialize(o);
}

dp::result<rule_set> parse_rule_set(std::string_view text) {
  boost::system::error_code ec;
  // Paths are bytes (a percent-decoded path need not be UTF-8), and serialize writes them as they
  // are.
  json::parse_options popt;
  popt.allow_invalid_utf8 = true;
  json::value root = json::parse(text, ec, {}, popt);
  if (ec) {
    return make_error(errc::invalid_argument, "rules: invalid JSON: {}", ec.message());
  }
  try {
    const json::object& o = get_object(root, "rules");
    if (get_uint(o, "version", "rules", 1000) != static_cast<uint64_t>(rule_set::current_version)) {
      throw bad{"field 'rules.version' is not 1"};
    }
    rule_set r;
    std::string ts = get_string(o, "trailing_slash", "rules");
    if (ts == "add") {
      r.trailing_slash = trailing_slash_mode::add;
    } else if (ts == "remove") {
      r.trailing_slash = trailing_slash_mode::remove;
    } else if (ts != "keep") {
      throw bad{"field 'rules.trailing_slash' must be keep, add or remove"};
    }
    r.clean_urls = get_bool(o, "clean_urls", "rules");
    r.static_redirects = read_all<redirect_rule>(o, "static_redirects", read_redirect);
    for (const auto& s : r.static_redirects) {
      if (!s.source.is_static()) {
        throw bad{"field 'rules.static_redirects' holds a dynamic rule"};
      }
    }
    r.dynamic_redirects = read_all<redirect_rule>(o, "dynamic_redirects", read_redirect);
    r.header_rules = read_all<header_rule>(o, "header_rules", read_header);
    r.protections = read_all<protection_rule>(o, "protections", read_protection);
    r.index();
    return r;
  } catch (const bad& b) {
    return make_error(errc::invalid_argument, "rules: {}", b.message);
  }
}

}  // namespace dp::siteconfig
