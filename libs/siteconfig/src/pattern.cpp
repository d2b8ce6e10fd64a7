// Source patterns (Cloudflare's `*` and `:name`; the subset of Vercel's path-to-regexp that is a
// segment match) and destinations, and the segment matcher: linear in the path, no regex, no
// allocation; only optional segments backtrack, at most max_optional of them.
#include <algorithm>

#include "detail.hpp"

namespace dp::siteconfig {

namespace {

constexpr size_t max_optional = 4;

bool ident_start(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool ident_char(char c) noexcept {
  return ident_start(c) || (c >= '0' && c <= '9') || c == '_';
}

// The first `:name` in a segment: its position, or npos.
size_t find_placeholder(std::string_view seg, size_t from = 0) noexcept {
  for (size_t i = from; i + 1 < seg.size(); ++i) {
    if (seg[i] == ':' && ident_start(seg[i + 1])) {
      return i;
    }
  }
  return std::string_view::npos;
}

size_t ident_end(std::string_view s, size_t start) noexcept {
  while (start < s.size() && ident_char(s[start])) {
    ++start;
  }
  return start;
}

// A literal part of a source: decoded; false (with `why`) when it could never match a path the
// proxy accepts.
bool decode_literal(std::string_view raw, std::string& out, std::string& why, bool whole = true) {
  auto d = detail::percent_decode(raw);
  if (!d) {
    why = "invalid percent-encoding in the source";
    return false;
  }
  if (d->find('/') != std::string::npos) {
    why = "an encoded '/' in the source never matches (the proxy refuses it)";
    return false;
  }
  if (whole && (*d == "." || *d == "..")) {
    why = "a '.' or '..' segment in the source never matches";
    return false;
  }
  if (!detail::is_printable(*d) || d->find('\t') != std::string::npos) {
    why = "a control character in the source never matches";
    return false;
  }
  out = std::move(*d);
  return true;
}

bool has_vercel_special(std::string_view s) noexcept {
  return s.find_first_of("()[]{}*+?\\|^$") != std::string_view::npos;
}

}  // namespace

bool pattern::is_static() const noexcept {
  if (tail != tail_kind::none) {
    return false;
  }
  return std::all_of(segments.begin(), segments.end(),
                     [](const segment& s) { return s.param.empty(); });
}

std::string pattern::static_path() const {
  std::string out;
  for (const auto& s : segments) {
    out += '/';
    out += s.prefix;
  }
  if (out.empty() || trailing_slash) {
    out += '/';
  }
  return out;
}

size_t pattern::capture_count() const noexcept {
  size_t n = tail == tail_kind::none ? 0 : 1;
  for (const auto& s : segments) {
    n += s.param.empty() ? 0 : 1;
  }
  return n;
}

namespace detail {

std::vector<std::string> capture_names(const pattern& p) {
  std::vector<std::string> names;
  for (const auto& s : p.segments) {
    if (!s.param.empty()) {
      names.push_back(s.param);
    }
  }
  if (p.tail != tail_kind::none) {
    names.push_back(p.tail_name);
  }
  return names;
}

std::optional<pattern> parse_pattern(std::string_view source, syntax syn, const limits& lim,
                                     std::string& why) {
  if (!source.starts_with('/')) {
    why = "the source must be a path starting with '/'";
    return std::nullopt;
  }
  pattern p;
  // Cloudflare's splat may sit anywhere ("/blog/*", "/*.jpg"): what follows it is a literal suffix.
  bool has_splat = false;
  std::string_view splat_suffix;
  if (syn == syntax::cloudflare) {
    size_t star = source.find('*');
    if (star != std::string_view::npos) {
      has_splat = true;
      splat_suffix = source.substr(star + 1);
      source = source.substr(0, star);
      if (splat_suffix.find('*') != std::string_view::npos) {
        why = "only one splat (*) is supported";
        return std::nullopt;
      }
      if (find_placeholder(splat_suffix) != std::string_view::npos) {
        why = "a placeholder after the splat is not supported";
        return std::nullopt;
      }
    }
  }
  std::vector<std::string_view> raw;
  std::string_view rest = source.substr(1);
  while (true) {
    size_t slash = rest.find('/');
    raw.push_back(rest.substr(0, slash));
    if (slash == std::string_view::npos) {
      break;
    }
    rest.remove_prefix(slash + 1);
  }
  std::string_view splat_prefix;
  bool trailing = false;
  if (has_splat) {
    splat_prefix = raw.back();
    raw.pop_back();
    if (find_placeholder(splat_prefix) != std::string_view::npos) {
      why = "a placeholder and a splat in one segment are not supported";
      return std::nullopt;
    }
  } else {
    trailing = raw.back().empty();
    if (trailing) {
      raw.pop_back();
    }
  }
  p.trailing_slash = trailing;
  size_t unnamed = 0;
  size_t optional = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    std::string_view seg = raw[i];
    if (seg.empty()) {
      continue;  // "//": the proxy drops empty segments
    }
    bool last = i + 1 == raw.size();
    if (p.tail != tail_kind::none) {
      why = "nothing may follow a splat";
      return std::nullopt;
    }

    if (syn == syntax::vercel) {
      // Vercel: "(.*)" or ":name(.*)" is a splat; ":name*", ":name+", ":name?" whole segments.
      std::string_view name;
      bool splat = false;
      if (seg == "(.*)") {
        splat = true;
      } else if (seg.starts_with(':') && seg.size() > 1 && ident_start(seg[1]) &&
                 seg.substr(ident_end(seg, 1)) == "(.*)") {
        name = seg.substr(1, ident_end(seg, 1) - 1);
        splat = true;
      }
      if (splat) {
        if (!last || trailing) {
          why = "(.*) is supported only at the end of the source";
          return std::nullopt;
        }
        p.tail = tail_kind::splat;
        p.tail_name = name.empty() ? "$" + std::to_string(++unnamed) : std::string(name);
        continue;
      }
      if (seg.starts_with(':') && seg.size() > 2 && ident_start(seg[1]) &&
          ident_end(seg, 1) + 1 == seg.size()) {
        char mod = seg.back();
        std::string name_s(seg.substr(1, seg.size() - 2));
        if (mod == '*' || mod == '+') {
          if (!last || trailing) {
            why = "a repeated parameter (:p* or :p+) is supported only at the end of the source";
            return std::nullopt;
          }
          p.tail = mod == '*' ? tail_kind::any_segs : tail_kind::some_segs;
          p.tail_name = std::move(name_s);
          continue;
        }
        if (mod == '?') {
          if (++optional > max_optional) {
            why = "more than 4 optional parameters";
            return std::nullopt;
          }
          p.segments.push_back(segment{"", std::move(name_s), "", true});
          continue;
        }
      }
      size_t ph = find_placeholder(seg);
      std::string_view outside = seg;
      std::string_view after;
      if (ph != std::string_view::npos) {
        outside = seg.substr(0, ph);
        after = seg.substr(ident_end(seg, ph + 1));
      }
      if (has_vercel_special(outside) || has_vercel_special(after)) {
        why =
            "this path-to-regexp form is not supported (custom patterns, groups and modifiers "
            "other than :p, :p?, :p*, :p+ and (.*))";
        return std::nullopt;
      }
    }

    segment s;
    size_t ph = find_placeholder(seg);
    if (ph == std::string_view::npos) {
      if (!decode_literal(seg, s.prefix, why)) {
        return std::nullopt;
      }
    } else {
      size_t end = ident_end(seg, ph + 1);
      if (find_placeholder(seg, end) != std::string_view::npos) {
        why = "two placeholders in one segment are not supported";
        return std::nullopt;
      }
      s.param = std::string(seg.substr(ph + 1, end - ph - 1));
      if ((ph > 0 && !decode_literal(seg.substr(0, ph), s.prefix, why, false)) ||
          (end < seg.size() && !decode_literal(seg.substr(end), s.suffix, why, false))) {
        return std::nullopt;
      }
    }
    p.segments.push_back(std::move(s));
  }
  if (has_splat) {
    auto prefix = percent_decode(splat_prefix);
    auto suffix = percent_decode(splat_suffix);
    if (!prefix || !suffix) {
      why = "invalid percent-encoding in the source";
      return std::nullopt;
    }
    if (prefix->find('/') != std::string::npos ||
        splat_suffix.find("%2F") != std::string_view::npos ||
        splat_suffix.find("%2f") != std::string_view::npos) {
      why = "an encoded '/' in the source never matches (the proxy refuses it)";
      return std::nullopt;
    }
    if (!is_printable(*prefix) || !is_printable(*suffix)) {
      why = "a control character in the source never matches";
      return std::nullopt;
    }
    p.tail = tail_kind::splat;
    p.tail_name = "splat";
    p.tail_prefix = std::move(*prefix);
    p.tail_suffix = std::move(*suffix);
  }
  if (p.tail != tail_kind::none) {
    p.trailing_slash = false;
  }
  auto names = capture_names(p);
  size_t max = std::min(lim.max_captures, max_capture_slots);
  if (names.size() > max) {
    why = "more than " + std::to_string(max) + " placeholders";
    return std::nullopt;
  }
  for (size_t i = 0; i < names.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (names[i] == names[j]) {
        why = "the placeholder :" + names[i] + " appears twice";
        return std::nullopt;
      }
    }
  }
  return p;
}

std::optional<std::vector<template_part>> parse_destination(std::string_view d,
                                                            const pattern& source, syntax syn,
                                                            bool decode, std::string& why) {
  auto names = capture_names(source);
  std::vector<template_part> parts;
  std::string text;
  auto flush = [&]() -> bool {
    if (text.empty()) {
      return true;
    }
    if (decode) {
      auto decoded = percent_decode(text);
      if (!decoded) {
        why = "invalid percent-encoding in the destination";
        return false;
      }
      text = std::move(*decoded);
    }
    parts.push_back(template_part{std::move(text), -1});
    text.clear();
    return true;
  };
  auto capture_of = [&](std::string_view name) -> int {
    auto it = std::find(names.begin(), names.end(), name);
    return it == names.end() ? -1 : static_cast<int>(it - names.begin());
  };
  for (size_t i = 0; i < d.size(); ++i) {
    char c = d[i];
    if (c == ':' && i + 1 < d.size() && ident_start(d[i + 1])) {
      size_t end = ident_end(d, i + 1);
      int idx = capture_of(d.substr(i + 1, end - i - 1));
      if (idx >= 0) {
        if (!flush()) {
          return std::nullopt;
        }
        std::string prefix;
        if (syn == syntax::vercel && end < d.size() &&
            (d[end] == '*' || d[end] == '+' || d[end] == '?')) {
          // An optional parameter takes its '/' with it when it is empty.
          if (d[end] != '+' && !parts.empty() && parts.back().capture < 0 &&
              parts.back().text.ends_with('/')) {
            parts.back().text.pop_back();
            prefix = "/";
            if (parts.back().text.empty()) {
              parts.pop_back();
            }
          }
          ++end;
        }
        parts.push_back(template_part{std::move(prefix), idx});
        i = end - 1;
        continue;
      }
    }
    if (syn == syntax::vercel && c == '$' && i + 1 < d.size() && d[i + 1] >= '1' &&
        d[i + 1] <= '9') {
      size_t end = i + 1;
      while (end < d.size() && d[end] >= '0' && d[end] <= '9') {
        ++end;
      }
      int idx = capture_of(d.substr(i, end - i));
      if (idx >= 0) {
        if (!flush()) {
          return std::nullopt;
        }
        parts.push_back(template_part{"", idx});
        i = end - 1;
        continue;
      }
    }
    text.push_back(c);
  }
  if (!flush()) {
    return std::nullopt;
  }
  if (decode) {
    // A rewrite stays among the deployment's paths: no ".." segment, whatever the captures hold
    // (checked with every capture empty and with every capture a plain word), no control character.
    for (std::string_view filler : {"", "x"}) {
      std::string path;
      for (const auto& part : parts) {
        path += part.capture < 0 ? std::string_view(part.text) : filler;
      }
      if (!is_printable(path)) {
        why = "a control character in the destination";
        return std::nullopt;
      }
      for (size_t start = 0; start <= path.size();) {
        size_t end = path.find('/', start);
        end = end == std::string::npos ? path.size() : end;
        if (std::string_view(path).substr(start, end - start) == "..") {
          why = "a rewrite may not name a '..' segment";
          return std::nullopt;
        }
        start = end + 1;
      }
    }
  }
  return parts;
}

}  // namespace detail

namespace {

// One path segment at `pos` (which holds a '/'): [pos + 1, end).
std::string_view segment_at(std::string_view path, size_t pos) noexcept {
  size_t end = path.find('/', pos + 1);
  return path.substr(pos + 1, (end == std::string_view::npos ? path.size() : end) - pos - 1);
}

bool match_from(const pattern& p, size_t si, std::string_view path, size_t pos,
                std::string_view* caps, size_t ci) {
  for (; si < p.segments.size(); ++si) {
    const segment& s = p.segments[si];
    if (s.optional) {
      // Absent (with its '/') first, then present: either way the rest must match.
      caps[ci] = std::string_view();
      if (match_from(p, si + 1, path, pos, caps, ci + 1)) {
        return true;
      }
    }
    if (pos >= path.size() || path[pos] != '/') {
      return false;
    }
    std::string_view seg = segment_at(path, pos);
    if (s.param.empty()) {
      if (seg != s.prefix) {
        return false;
      }
    } else {
      if (seg.size() < s.prefix.size() + s.suffix.size() + 1 || !seg.starts_with(s.prefix) ||
          !seg.ends_with(s.suffix)) {
        return false;
      }
      caps[ci++] = seg.substr(s.prefix.size(), seg.size() - s.prefix.size() - s.suffix.size());
    }
    pos += 1 + seg.size();
  }
  std::string_view rest = path.substr(pos);
  switch (p.tail) {
    case tail_kind::none:
      return p.trailing_slash ? rest == "/" : rest.empty();
    case tail_kind::splat:
      if (!rest.starts_with('/')) {
        return false;
      }
      rest.remove_prefix(1);
      if (rest.size() < p.tail_prefix.size() + p.tail_suffix.size() ||
          !rest.starts_with(p.tail_prefix) || !rest.ends_with(p.tail_suffix)) {
        return false;
      }
      caps[ci] = rest.substr(p.tail_prefix.size(),
                             rest.size() - p.tail_prefix.size() - p.tail_suffix.size());
      return true;
    case tail_kind::any_segs:
      if (rest.empty()) {
        caps[ci] = rest;
        return true;
      }
      [[fallthrough]];
    case tail_kind::some_segs:
      if (rest.size() < 2 || rest[0] != '/') {
        return false;
      }
      caps[ci] = rest.substr(1);
      return true;
  }
  return false;
}

}  // namespace

bool match_pattern(const pattern& p, std::string_view path, std::string_view* captures) {
  return match_from(p, 0, path, 0, captures, 0);
}

}  // namespace dp::siteconfig
