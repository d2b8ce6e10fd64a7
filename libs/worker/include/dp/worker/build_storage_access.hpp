// Storage access of one container build (docker, ECS): the worker assumes a build role through
// STS with an inline session policy that names exactly what the deployment may touch, and hands
// the container those temporary keys instead of its own (which reach every project). A session
// policy can only narrow the role: the keys hold the intersection of both.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "dp/aws/container_credentials.hpp"
#include "dp/aws/sts.hpp"
#include "dp/core/error.hpp"
#include "dp/proto/types.hpp"

namespace dp::http_client {
class client;
}

namespace dp::worker {

// BUILD_STORAGE_ROLE_ARN and where to assume it.
struct build_storage_role {
  std::string role_arn;
  std::string sts_endpoint;      // https://sts.<region>.amazonaws.com, or MinIO's URL
  std::string region;            // the signature's (MinIO: us-east-1 unless configured)
  aws::credentials credentials;  // the worker's own keys, or none and:
  std::optional<aws::container_endpoint> credentials_endpoint;  // the worker's task role
  std::string bucket;                                           // STORAGE_URL's
  std::string key_prefix;  // STORAGE_URL's prefix inside the bucket: empty or ending in '/'
};

// The session policy (IAM JSON) of one build: PutObject (and AbortMultipartUpload) on
// `__outputs/<id>/*`, GetObject on `__sources/<id>.tar.gz`, GetObject, PutObject, DeleteObject
// (and AbortMultipartUpload) on `__cache/<project>/*`, and ListBucket of the bucket only for the
// prefix `__cache/<project>/` (the cache's eviction lists it); each key under `key_prefix`.
std::string build_storage_policy(std::string_view bucket, std::string_view key_prefix,
                                 std::string_view deployment_id, std::string_view project);

// Assumes the role for one job: session "dp-build-<id>", the policy above, for the job's time
// limit (at least STS's minimum, 900 s).
class build_storage_access {
 public:
  build_storage_access(http_client::client& http, build_storage_role role);

  boost::asio::awaitable<dp::result<aws::temporary_credentials>> open(const proto::job& job);

 private:
  http_client::client& http_;
  build_storage_role role_;
  aws::credential_source signer_;
};

}  // namespace dp::worker
