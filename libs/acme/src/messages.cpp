#include "dp/acme/messages.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <charconv>
#include <ctime>

namespace dp::acme {

namespace {

constexpr std::string_view acme_error_prefix = "urn:ietf:params:acme:error:";

dp::result<boost::json::object> parse_object(std::string_view json, std::string_view what) {
  boost::system::error_code ec;
  auto value = boost::json::parse(json, ec);
  if (ec || !value.is_object()) {
    return dp::make_error(errc::protocol, "the ACME server's {} is not a JSON object", what);
  }
  return std::move(value.as_object());
}

std::string string_member(const boost::json::object& o, std::string_view name) {
  const auto* v = o.if_contains(name);
  const auto* s = v != nullptr ? v->if_string() : nullptr;
  return s != nullptr ? std::string(*s) : std::string();
}

std::optional<problem> problem_member(const boost::json::object& o) {
  const auto* v = o.if_contains("error");
  if (v == nullptr || !v->is_object()) {
    return std::nullopt;
  }
  return parse_problem(boost::json::serialize(*v));
}

}  // namespace

dp::result<directory> parse_directory(std::string_view json) {
  auto o = parse_object(json, "directory");
  if (!o) {
    return o.error();
  }
  directory d{string_member(*o, "newNonce"), string_member(*o, "newAccount"),
              string_member(*o, "newOrder")};
  if (d.new_nonce.empty() || d.new_account.empty() || d.new_order.empty()) {
    return dp::make_error(errc::protocol,
                          "the ACME directory lacks newNonce, newAccount or newOrder");
  }
  return d;
}

bool problem::is(std::string_view acme_type) const {
  return type.size() == acme_error_prefix.size() + acme_type.size() &&
         type.starts_with(acme_error_prefix) && type.ends_with(acme_type);
}

std::string problem::describe() const {
  return detail.empty() ? type : type + ": " + detail;
}

std::optional<problem> parse_problem(std::string_view json) {
  auto o = parse_object(json, "problem");
  if (!o) {
    return std::nullopt;
  }
  problem p{string_member(*o, "type"), string_member(*o, "detail")};
  if (p.type.empty()) {
    return std::nullopt;
  }
  if (const auto* status = o->if_contains("status"); status != nullptr && status->is_int64()) {
    p.status = static_cast<int>(status->as_int64());
  }
  return p;
}

const challenge* authorization::find(std::string_view type) const {
  for (const auto& c : challenges) {
    if (c.type == type) {
      return &c;
    }
  }
  return nullptr;
}

std::optional<problem> authorization::failure() const {
  for (const auto& c : challenges) {
    if (c.error) {
      return c.error;
    }
  }
  return std::nullopt;
}

dp::result<authorization> parse_authorization(std::string_view json) {
  auto o = parse_object(json, "authorization");
  if (!o) {
    return o.error();
  }
  authorization a;
  a.status = string_member(*o, "status");
  if (const auto* id = o->if_contains("identifier"); id != nullptr && id->is_object()) {
    a.identifier = string_member(id->as_object(), "value");
  }
  if (const auto* list = o->if_contains("challenges"); list != nullptr && list->is_array()) {
    for (const auto& item : list->as_array()) {
      if (!item.is_object()) {
        continue;
      }
      const auto& c = item.as_object();
      a.challenges.push_back({string_member(c, "type"), string_member(c, "url"),
                              string_member(c, "token"), string_member(c, "status"),
                              problem_member(c)});
    }
  }
  if (a.status.empty() || a.identifier.empty()) {
    return dp::make_error(errc::protocol, "the ACME authorization lacks status or identifier");
  }
  return a;
}

dp::result<order> parse_order(std::string_view json) {
  auto o = parse_object(json, "order");
  if (!o) {
    return o.error();
  }
  order r;
  r.status = string_member(*o, "status");
  r.finalize = string_member(*o, "finalize");
  r.certificate = string_member(*o, "certificate");
  r.error = problem_member(*o);
  if (const auto* list = o->if_contains("authorizations"); list != nullptr && list->is_array()) {
    for (const auto& item : list->as_array()) {
      if (const auto* s = item.if_string()) {
        r.authorizations.emplace_back(*s);
      }
    }
  }
  if (r.status.empty() || r.finalize.empty()) {
    return dp::make_error(errc::protocol, "the ACME order lacks status or finalize");
  }
  return r;
}

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now) {
  while (!value.empty() && value.front() == ' ') {
    value.remove_prefix(1);
  }
  while (!value.empty() && value.back() == ' ') {
    value.remove_suffix(1);
  }
  if (value.empty()) {
    return std::nullopt;
  }
  long long seconds = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (ec == std::errc() && end == value.data() + value.size()) {
    return std::chrono::seconds(std::max(0LL, seconds));
  }
  // IMF-fixdate, e.g. "Wed, 21 Oct 2015 07:28:00 GMT".
  std::tm tm{};
  std::string text(value);
  const char* rest = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (rest == nullptr || *rest != '\0') {
    return std::nullopt;
  }
  auto at = std::chrono::system_clock::from_time_t(timegm(&tm));
  return std::chrono::duration_cast<std::chrono::seconds>(std::max(at - now, now - now));
}

}  // namespace dp::acme
