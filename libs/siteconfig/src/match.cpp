// The proxy's per-request calls: a hash lookup for static rules, a scan of the bounded dynamic
// list, and one allocation (the Location or rewritten path) when a rule applies.
#include <array>

#include "detail.hpp"

namespace dp::siteconfig {

namespace {

constexpr size_t capture_slots = detail::max_capture_slots;

// The destination with the captures in: encoded for a Location, as they are for a rewrite.
std::string render(const redirect_rule& rule, const std::string_view* caps, bool encode) {
  std::string out;
  for (const auto& part : rule.destination) {
    if (part.capture < 0) {
      out += part.text;
      continue;
    }
    std::string_view value = caps[part.capture];
    if (!value.empty()) {
      out += part.text;
    }
    if (encode) {
      detail::append_encoded(out, value);
    } else {
      out += value;
    }
  }
  return out;
}

outcome apply(const redirect_rule& rule, const std::string_view* caps, std::string_view raw_query) {
  outcome o;
  o.rule = &rule;
  o.status = rule.status;
  if (rule.status == 200) {
    o.type = outcome::kind::rewrite;
    o.location = render(rule, caps, false);
  } else {
    o.type = outcome::kind::redirect;
    o.location = render(rule, caps, true);
    append_query(o.location, raw_query);
  }
  return o;
}

bool last_segment_has_dot(std::string_view path) noexcept {
  size_t slash = path.rfind('/');
  return path.find('.', slash == std::string_view::npos ? 0 : slash) != std::string_view::npos;
}

}  // namespace

void append_query(std::string& location, std::string_view raw_query) {
  if (raw_query.empty()) {
    return;
  }
  size_t hash = location.find('#');
  size_t end = hash == std::string::npos ? location.size() : hash;
  std::string q;
  size_t question = location.find('?');
  q += (question != std::string::npos && question < end) ? (end == question + 1 ? "" : "&") : "?";
  q += raw_query;
  location.insert(end, q);
}

outcome match(const rule_set& r, std::string_view path, std::string_view raw_query,
              bool file_exists) {
  if (r.trailing_slash == trailing_slash_mode::add && !path.ends_with('/') &&
      !last_segment_has_dot(path)) {
    outcome o{outcome::kind::redirect, 308, {}, nullptr};
    detail::append_encoded(o.location, path);
    o.location += '/';
    append_query(o.location, raw_query);
    return o;
  }
  if (r.trailing_slash == trailing_slash_mode::remove && path.size() > 1 && path.ends_with('/')) {
    outcome o{outcome::kind::redirect, 308, {}, nullptr};
    detail::append_encoded(o.location, path.substr(0, path.size() - 1));
    append_query(o.location, raw_query);
    return o;
  }
  std::array<std::string_view, capture_slots> caps{};
  if (auto it = r.static_redirect_index.find(path); it != r.static_redirect_index.end()) {
    for (uint32_t i : it->second) {
      const redirect_rule& rule = r.static_redirects[i];
      if (rule.over_files || !file_exists) {
        return apply(rule, caps.data(), raw_query);
      }
    }
  }
  for (const auto& rule : r.dynamic_redirects) {
    if ((rule.over_files || !file_exists) && match_pattern(rule.source, path, caps.data())) {
      return apply(rule, caps.data(), raw_query);
    }
  }
  return {};
}

void headers_for(const rule_set& r, std::string_view path, std::vector<header_field>& out,
                 std::vector<std::string_view>* removed) {
  out.clear();
  if (removed) {
    removed->clear();
  }
  if (r.header_rules.empty()) {
    return;
  }
  static const std::vector<uint32_t> none;
  auto it = r.static_header_index.find(path);
  const std::vector<uint32_t>& statics = it == r.static_header_index.end() ? none : it->second;
  std::array<std::string_view, capture_slots> caps{};

  std::string value;
  auto apply_rule = [&](const header_rule& rule) {
    for (const auto& name : rule.remove) {
      std::erase_if(out, [&](const header_field& f) { return detail::iequals(f.name, name); });
      if (removed) {
        removed->push_back(name);
      }
    }
    for (const auto& e : rule.set) {
      value.clear();
      for (const auto& part : e.parts) {
        if (part.capture < 0) {
          value += part.text;
        } else if (!caps[part.capture].empty()) {
          value += part.text;
          value += caps[part.capture];
        }
      }
      const std::string& v = e.parts.empty() ? e.value : value;
      if (removed) {
        std::erase_if(*removed, [&](std::string_view n) { return detail::iequals(n, e.name); });
      }
      bool found = false;
      for (auto& f : out) {
        if (detail::iequals(f.name, e.name)) {
          if (rule.merge == header_merge::join) {
            f.value += ", ";
            f.value += v;
          } else {
            f.value = v;
          }
          found = true;
          break;
        }
      }
      if (!found) {
        out.push_back(header_field{e.name, v});
      }
    }
  };

  // The static rules for this path and the dynamic ones, merged in file order.
  size_t si = 0;
  size_t di = 0;
  const auto& dyn = r.dynamic_header_rules;
  while (si < statics.size() || di < dyn.size()) {
    if (di == dyn.size() || (si < statics.size() && statics[si] < dyn[di])) {
      apply_rule(r.header_rules[statics[si++]]);
      continue;
    }
    const header_rule& rule = r.header_rules[dyn[di++]];
    if (match_pattern(rule.source, path, caps.data())) {
      apply_rule(rule);
    }
  }
}

const protection_rule* protection_for(const rule_set& r, std::string_view path) {
  std::array<std::string_view, capture_slots> caps{};
  for (const auto& p : r.protections) {
    if (match_pattern(p.source, path, caps.data())) {
      return &p;
    }
  }
  return nullptr;
}

}  // namespace dp::siteconfig
