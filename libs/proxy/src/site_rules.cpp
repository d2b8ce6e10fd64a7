#include "dp/proxy/site_rules.hpp"

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>

namespace dp::proxy {
namespace {

// ASCII only (header names are tokens), without the locale lookups of std::tolower.
bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x != y) {
      char lx = static_cast<char>(x | 0x20);
      if (lx != static_cast<char>(y | 0x20) || lx < 'a' || lx > 'z') {
        return false;
      }
    }
  }
  return true;
}

}  // namespace

std::string rule_path(const clean_path& p) {
  std::string out;
  out.reserve(p.rel.size() + 2);
  out.push_back('/');
  out.append(p.rel);
  if (p.dir && !p.rel.empty()) {
    out.push_back('/');
  }
  return out;
}

bool file_exists(const site& s, const clean_path& p) {
  if (p.rel.empty()) {
    return s.find("index.html") != nullptr;
  }
  if (p.dir) {
    return s.find(p.rel + "/index.html") != nullptr;
  }
  return s.find(p.rel) != nullptr || s.find(p.rel + ".html") != nullptr ||
         s.find(p.rel + "/index.html") != nullptr;
}

std::optional<clean_path> rewrite_path(std::string_view decoded) {
  clean_path out;
  out.dir = decoded.empty() || decoded.back() == '/';
  size_t pos = 0;
  while (pos <= decoded.size()) {
    size_t end = decoded.find('/', pos);
    if (end == std::string_view::npos) {
      end = decoded.size();
    }
    std::string_view seg = decoded.substr(pos, end - pos);
    pos = end + 1;
    if (seg.empty() || seg == ".") {
      continue;
    }
    if (seg == ".." || std::any_of(seg.begin(), seg.end(), [](char c) {
          return std::iscntrl(static_cast<unsigned char>(c)) || c == '\\';
        })) {
      return std::nullopt;
    }
    if (!out.rel.empty()) {
      out.rel.push_back('/');
    }
    out.rel.append(seg);
  }
  return out;
}

resolution resolve_rewrite(const site& s, const clean_path& p) {
  auto r = resolve(s, p);
  if (r.type == resolution::kind::redirect) {
    if (auto target = rewrite_path(r.location)) {
      r = resolve(s, *target);
    }
  }
  if (r.type == resolution::kind::redirect) {
    return resolution{};
  }
  return r;
}

header_edits header_edits_for(const siteconfig::rule_set& r, std::string_view path) {
  std::vector<siteconfig::header_field> fields;
  header_edits out;
  siteconfig::headers_for(r, path, fields, &out.drop);
  if (!fields.empty()) {
    auto set = std::make_shared<header_edits::fields>();
    set->reserve(fields.size());
    for (auto& f : fields) {
      set->emplace_back(std::string(f.name), std::move(f.value));
      out.drop.push_back(f.name);
    }
    out.set = std::move(set);
  }
  for (auto name : out.drop) {
    out.name_sizes |= uint64_t{1} << (name.size() % 64);
  }
  return out;
}

void apply_header_edits(const header_edits& e, http::response& res) {
  if (!e.drop.empty()) {
    std::erase_if(res.headers, [&](const auto& h) {
      return ((e.name_sizes >> (h.first.size() % 64)) & 1) &&
             std::any_of(e.drop.begin(), e.drop.end(),
                         [&](std::string_view name) { return iequals(h.first, name); });
    });
  }
  res.shared_headers = e.set;
}

size_t path_rules::memory() const {
  size_t n =
      sizeof(path_rules) + location.capacity() + headers.drop.capacity() * sizeof(std::string_view);
  if (headers.set) {
    n += sizeof(header_edits::fields) + 32;  // and the shared_ptr's control block
    for (const auto& [name, value] : *headers.set) {
      n += sizeof(std::pair<std::string, std::string>) + name.capacity() + value.capacity();
    }
  }
  return n;
}

path_rules rules_for(const site& s, const clean_path& p, std::string_view matched) {
  const siteconfig::rule_set& r = *s.rules;
  path_rules out;
  out.guard = siteconfig::protection_for(r, matched);
  auto o = siteconfig::match(r, matched, "", file_exists(s, p));
  out.type = o.type;
  out.status = o.status;
  out.location = std::move(o.location);
  out.headers = header_edits_for(r, matched);
  return out;
}

std::shared_ptr<const path_rules> remembered_rules_for(const site& s, const clean_path& p,
                                                       const std::string& matched) {
  if (auto known = s.rule_memo->get(matched)) {
    return known;
  }
  auto made = std::make_shared<const path_rules>(rules_for(s, p, matched));
  // The key twice (the map and the order list) and their nodes.
  s.rule_memo->put(matched, made, made->memory() + 2 * matched.size() + 128);
  return made;
}

}  // namespace dp::proxy
