#include "s3_xml.hpp"

#include <charconv>
#include <cstdlib>
#include <ctime>

#include <fmt/format.h>

namespace dp::storage {

std::string xml_unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out.push_back(s[i]);
      continue;
    }
    auto semi = s.find(';', i);
    if (semi == std::string_view::npos) {
      out.push_back('&');
      continue;
    }
    auto ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp") {
      out.push_back('&');
    } else if (ent == "lt") {
      out.push_back('<');
    } else if (ent == "gt") {
      out.push_back('>');
    } else if (ent == "quot") {
      out.push_back('"');
    } else if (ent == "apos") {
      out.push_back('\'');
    } else if (ent.starts_with("#")) {
      unsigned long cp = ent.starts_with("#x")
                             ? std::strtoul(std::string(ent.substr(2)).c_str(), nullptr, 16)
                             : std::strtoul(std::string(ent.substr(1)).c_str(), nullptr, 10);
      // UTF-8 encode the code point.
      if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
      } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
      } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
      } else {
        out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
      }
    } else {
      out.append(s.substr(i, semi - i + 1));
    }
    i = semi;
  }
  return out;
}

std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

// The text of the next <tag>...</tag> at or after pos; pos moves past it.
std::optional<std::string_view> xml_next(std::string_view doc, std::string_view tag, size_t& pos) {
  std::string open = "<" + std::string(tag) + ">";
  std::string close = "</" + std::string(tag) + ">";
  auto a = doc.find(open, pos);
  if (a == std::string_view::npos) {
    return std::nullopt;
  }
  a += open.size();
  auto b = doc.find(close, a);
  if (b == std::string_view::npos) {
    return std::nullopt;
  }
  pos = b + close.size();
  return doc.substr(a, b - a);
}

std::string xml_value(std::string_view doc, std::string_view tag) {
  size_t pos = 0;
  auto v = xml_next(doc, tag, pos);
  return v ? xml_unescape(*v) : std::string();
}

std::chrono::system_clock::time_point parse_time(std::string_view s, const char* fmt) {
  std::tm tm{};
  std::string str(s);
  if (!strptime(str.c_str(), fmt, &tm)) {
    return {};
  }
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

uint64_t to_u64(std::string_view s) {
  uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

dp::result<listing> parse_list_page(std::string_view doc, std::string_view store_prefix,
                                    std::string_view prefix) {
  listing page;
  size_t pos = 0;
  while (auto item = xml_next(doc, "Contents", pos)) {
    object_info o;
    o.key = xml_value(*item, "Key");
    if (!o.key.starts_with(store_prefix)) {
      continue;
    }
    o.key.erase(0, store_prefix.size());
    o.size = to_u64(xml_value(*item, "Size"));
    o.etag = xml_value(*item, "ETag");
    o.last_modified = parse_time(xml_value(*item, "LastModified"), "%Y-%m-%dT%H:%M:%S");
    page.objects.push_back(std::move(o));
  }
  if (xml_value(doc, "IsTruncated") == "true") {
    page.next_token = xml_value(doc, "NextContinuationToken");
    if (page.next_token.empty()) {
      return make_error(errc::protocol, "S3 LIST '{}': truncated without a token", prefix);
    }
  }
  return page;
}

std::string delete_objects_body(const std::vector<object_info>& objects,
                                std::string_view store_prefix) {
  std::string body = "<Delete><Quiet>true</Quiet>";
  for (const auto& o : objects) {
    body += "<Object><Key>" + xml_escape(std::string(store_prefix) + o.key) + "</Key></Object>";
  }
  body += "</Delete>";
  return body;
}

dp::error status_error(std::string_view what, std::string_view key, int status,
                       std::string_view body) {
  std::string code = xml_value(body, "Code");
  std::string detail =
      code.empty() ? fmt::format("HTTP {}", status) : fmt::format("HTTP {} {}", status, code);
  errc e = status == 404   ? errc::not_found
           : status == 403 ? errc::forbidden
           : status == 401 ? errc::unauthorized
           : status == 409 ? errc::conflict
           : status == 412 ? errc::conflict
           : status == 416 ? errc::invalid_argument
           : status == 400 ? errc::invalid_argument
           : status >= 500 ? errc::unavailable
                           : errc::protocol;
  return make_error(e, "S3 {} '{}': {}", what, key, detail);
}

}  // namespace dp::storage
