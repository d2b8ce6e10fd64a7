// STS AssumeRole (Query API, Version 2011-06-15): temporary credentials of a role, narrowed by an
// inline session policy. The request and the XML answer are pure functions; `assume_role` sends
// one request, signed with SigV4 (service "sts"), through the one HTTP client. MinIO serves the
// same API at its S3 endpoint (for a built-in user that is not its root user; RoleArn ignored).
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <string>
#include <string_view>

#include "dp/aws/sigv4.hpp"
#include "dp/core/error.hpp"

namespace dp::http_client {
class client;
}

namespace dp::aws {

struct assume_role_params {
  std::string role_arn;
  std::string session_name;  // 2 to 64 of [A-Za-z0-9+=,.@_-]
  std::string policy;        // inline session policy (JSON); empty: none
  std::chrono::seconds duration{3600};
};

struct temporary_credentials {
  credentials keys;  // with session_token
  std::chrono::system_clock::time_point expires;
};

// The form body of the POST: Action=AssumeRole&Version=2011-06-15&RoleArn=...&RoleSessionName=
// ...&Policy=...&DurationSeconds=..., each value URI-encoded.
std::string assume_role_body(const assume_role_params& params);

// <AssumeRoleResponse><AssumeRoleResult><Credentials> AccessKeyId, SecretAccessKey, SessionToken,
// Expiration; or <ErrorResponse><Error> Code and Message, as an error naming them. `region` is
// carried over.
dp::result<temporary_credentials> parse_assume_role_response(std::string_view xml,
                                                             std::string region);

// POST <endpoint>/ with the body above, signed with `signer` for `region`. endpoint:
// https://sts.<region>.amazonaws.com, or MinIO's URL.
boost::asio::awaitable<dp::result<temporary_credentials>> assume_role(
    dp::http_client::client& http, std::string_view endpoint, std::string_view region,
    const credentials& signer, const assume_role_params& params);

}  // namespace dp::aws
