// Temporary credentials from the ECS container credentials endpoint: what a task with a task
// role (or EKS pod identity) uses instead of keys in its environment. ECS sets
// AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (served at http://169.254.170.2); others set
// AWS_CONTAINER_CREDENTIALS_FULL_URI with AWS_CONTAINER_AUTHORIZATION_TOKEN.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <optional>
#include <string>

#include "dp/aws/sigv4.hpp"
#include "dp/core/error.hpp"

namespace dp::http_client {
class client;
}

namespace dp::aws {

struct container_endpoint {
  std::string url;            // the whole URL to GET
  std::string authorization;  // the Authorization header's value, if any
};

// The endpoint the standard variables name, if any (RELATIVE_URI wins, as in the AWS SDKs).
// Inline: dp::settings uses it through dp::aws_headers, without linking libcurl.
inline std::optional<container_endpoint> container_endpoint_from(const std::string& relative_uri,
                                                                 const std::string& full_uri,
                                                                 const std::string& authorization) {
  if (!relative_uri.empty()) {
    return container_endpoint{"http://169.254.170.2" + relative_uri, authorization};
  }
  if (!full_uri.empty()) {
    return container_endpoint{full_uri, authorization};
  }
  return std::nullopt;
}

// Static keys, or keys fetched from a container endpoint and fetched again five minutes before
// they expire. Used on one executor; concurrent callers during a refresh may fetch twice, which
// is harmless.
class credential_source {
 public:
  // Keys in `fixed` win over the endpoint, as in the AWS SDKs' chain (environment first).
  credential_source(credentials fixed, std::optional<container_endpoint> endpoint)
      : current_(std::move(fixed)) {
    if (!current_.has_keys()) {
      endpoint_ = std::move(endpoint);
    }
  }

  bool fetches() const noexcept { return endpoint_.has_value(); }
  // The credentials to sign with now. Static ones never fail.
  boost::asio::awaitable<dp::result<credentials>> get(dp::http_client::client& http);

 private:
  credentials current_;
  std::optional<container_endpoint> endpoint_;
  std::chrono::system_clock::time_point expires_{};
};

// The endpoint's JSON answer: AccessKeyId, SecretAccessKey, Token, Expiration (ISO 8601, UTC).
// `region` is carried over. Exposed for the tests.
dp::result<std::pair<credentials, std::chrono::system_clock::time_point>>
parse_container_credentials(std::string_view body, std::string region);

}  // namespace dp::aws
