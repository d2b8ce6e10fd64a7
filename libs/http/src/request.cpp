// The handler's view of a request: method, target, query, headers, body, route parameters.
#include <boost/beast/websocket/rfc6455.hpp>

#include "detail.hpp"
#include "dp/http/message.hpp"

namespace dp::http {

std::string_view request::method_name() const noexcept {
  auto s = msg_->req.method_string();
  return {s.data(), s.size()};
}
std::string_view request::target() const noexcept {
  auto s = msg_->req.target();
  return {s.data(), s.size()};
}
const std::vector<std::pair<std::string, std::string>>& request::query_params() const {
  if (!query_params_) {
    query_params_ = parse_query(query_);
  }
  return *query_params_;
}
std::optional<std::string> request::query(std::string_view name) const {
  for (const auto& [k, v] : query_params()) {
    if (k == name) {
      return v;
    }
  }
  return std::nullopt;
}
std::optional<std::string_view> request::host() const {
  if (!authority_.empty()) {
    return authority_;
  }
  return header("Host");
}
std::optional<std::string_view> request::header(std::string_view name) const {
  auto it = msg_->req.find(boost::beast::string_view(name.data(), name.size()));
  if (it == msg_->req.end()) {
    return std::nullopt;
  }
  return std::string_view(it->value().data(), it->value().size());
}
std::vector<std::pair<std::string_view, std::string_view>> request::headers() const {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  for (const auto& f : msg_->req) {
    out.emplace_back(std::string_view(f.name_string().data(), f.name_string().size()),
                     std::string_view(f.value().data(), f.value().size()));
  }
  return out;
}
std::string& request::body() noexcept {
  return msg_->req.body();
}
const std::string& request::body() const noexcept {
  return msg_->req.body();
}
int request::version() const noexcept {
  return static_cast<int>(msg_->req.version());
}
bool request::keep_alive() const noexcept {
  return msg_->req.keep_alive();
}
bool request::wants_websocket() const noexcept {
  return boost::beast::websocket::is_upgrade(msg_->req);
}
std::string_view request::param(std::string_view name) const noexcept {
  for (const auto& [k, v] : params_) {
    if (k == name) {
      return v;
    }
  }
  return {};
}

}  // namespace dp::http
