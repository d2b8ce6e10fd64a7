#include "dp/core/storage_url.hpp"

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include "dp/core/config.hpp"

namespace dp::config {
namespace {

// S3 bucket naming rules, minus the legacy ones: 3-63 of [a-z0-9.-], starting and ending alnum.
bool valid_bucket(std::string_view b) {
  if (b.size() < 3 || b.size() > 63) {
    return false;
  }
  for (char c : b) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-')) {
      return false;
    }
  }
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  return alnum(b.front()) && alnum(b.back()) && b.find("..") == std::string_view::npos;
}

result<storage_url> parse_file(const boost::urls::url_view& u) {
  if (!u.host().empty() && u.host() != "localhost") {
    return make_error(errc::invalid_argument,
                      "file:// URL must have an absolute path "
                      "(file:///dir), not a host");
  }
  if (u.has_query() || u.has_fragment()) {
    return make_error(errc::invalid_argument, "file:// URL takes no query or fragment");
  }
  std::string path = u.path();
  if (path.empty() || path.front() != '/') {
    return make_error(errc::invalid_argument, "file:// URL must have an absolute path");
  }
  if (path.find('\0') != std::string::npos) {
    return make_error(errc::invalid_argument, "file:// path must not contain NUL");
  }
  storage_url out;
  out.kind = storage_url::scheme::file;
  out.root = std::filesystem::path(path).lexically_normal();
  return out;
}

result<storage_url> parse_s3(const boost::urls::url_view& u) {
  storage_url out;
  out.kind = storage_url::scheme::s3;
  out.bucket = u.host();
  if (!valid_bucket(out.bucket)) {
    return make_error(errc::invalid_argument,
                      "s3:// bucket must be 3-63 characters of a-z, 0-9, '.' and '-'");
  }
  if (u.has_port() || u.has_userinfo() || u.has_fragment()) {
    return make_error(
        errc::invalid_argument,
        "s3://bucket takes no port, user or fragment (put the endpoint in ?endpoint=)");
  }
  std::string prefix = u.path();
  while (!prefix.empty() && prefix.front() == '/') {
    prefix.erase(0, 1);
  }
  if (!prefix.empty() && prefix.back() != '/') {
    prefix.push_back('/');
  }
  out.prefix = prefix;
  bool path_style_set = false;
  for (auto p : u.params()) {
    if (p.key == "endpoint") {
      auto e = boost::urls::parse_absolute_uri(p.value);
      if (!e || (e->scheme() != "http" && e->scheme() != "https") || e->host().empty() ||
          (!e->path().empty() && e->path() != "/") || e->has_query()) {
        return make_error(errc::invalid_argument,
                          "endpoint must be http(s)://host[:port], without a path");
      }
      out.endpoint = std::string(e->scheme()) + "://" + std::string(e->encoded_host_and_port());
    } else if (p.key == "region") {
      if (p.value.empty() ||
          p.value.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos) {
        return make_error(errc::invalid_argument, "region must be like us-east-1");
      }
      out.region = p.value;
    } else if (p.key == "path_style") {
      if (auto err = parse_bool(p.value, out.path_style)) {
        return make_error(errc::invalid_argument, "path_style: {}", *err);
      }
      path_style_set = true;
    } else {
      return make_error(errc::invalid_argument,
                        "unknown s3:// parameter '{}' (known: endpoint, region, path_style)",
                        std::string(p.key));
    }
  }
  if (!path_style_set) {
    out.path_style = !out.endpoint.empty();
  }
  return out;
}

}  // namespace

result<storage_url> parse_storage_url(std::string_view s) {
  auto u = boost::urls::parse_absolute_uri(s);
  if (!u) {
    return make_error(errc::invalid_argument, "not a URL (expected file:///dir or s3://bucket)");
  }
  if (u->scheme_id() == boost::urls::scheme::file) {
    return parse_file(*u);
  }
  if (u->scheme() == "s3") {
    return parse_s3(*u);
  }
  return make_error(errc::invalid_argument, "scheme must be file:// or s3://");
}

}  // namespace dp::config
