#include "dp/proxy/site_rules.hpp"

#include <algorithm>
#include <cctype>

namespace dp::proxy {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
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

void apply_rule_headers(const siteconfig::rule_set& r, std::string_view path,
                        std::vector<std::pair<std::string, std::string>>& headers) {
  // Reused across requests on this thread: no allocation once warm.
  thread_local std::vector<siteconfig::header_field> fields;
  thread_local std::vector<std::string_view> removed;
  removed.clear();
  siteconfig::headers_for(r, path, fields, &removed);
  auto drop = [&](std::string_view name) {
    std::erase_if(headers, [&](const auto& h) { return iequals(h.first, name); });
  };
  for (auto name : removed) {
    drop(name);
  }
  for (auto& f : fields) {
    drop(f.name);
    headers.emplace_back(std::string(f.name), std::move(f.value));
  }
}

}  // namespace dp::proxy
