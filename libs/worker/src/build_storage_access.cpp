#include "dp/worker/build_storage_access.hpp"

#include <boost/json.hpp>

#include <algorithm>

namespace dp::worker {

namespace json = boost::json;

std::string build_storage_policy(std::string_view bucket, std::string_view key_prefix,
                                 std::string_view deployment_id, std::string_view project) {
  auto object = [&](std::string_view key) {
    return fmt::format("arn:aws:s3:::{}/{}{}", bucket, key_prefix, key);
  };
  auto outputs = fmt::format("__outputs/{}/", deployment_id);
  auto cache = fmt::format("__cache/{}/", project);
  auto statement = [](json::array actions, json::array resources) {
    return json::object{
        {"Effect", "Allow"}, {"Action", std::move(actions)}, {"Resource", std::move(resources)}};
  };
  auto list = statement({"s3:ListBucket"}, {fmt::format("arn:aws:s3:::{}", bucket)});
  list["Condition"] = json::object{
      {"StringLike",
       json::object{{"s3:prefix", json::array{fmt::format("{}{}*", key_prefix, cache)}}}}};
  json::object policy{
      {"Version", "2012-10-17"},
      {"Statement",
       json::array{
           statement({"s3:PutObject", "s3:AbortMultipartUpload"}, {object(outputs + "*")}),
           statement({"s3:GetObject"}, {object(fmt::format("__sources/{}.tar.gz", deployment_id))}),
           statement({"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"},
                     {object(cache + "*")}),
           std::move(list)}}};
  return json::serialize(policy);
}

build_storage_access::build_storage_access(http_client::client& http, build_storage_role role)
    : http_(http), role_(std::move(role)), signer_(role_.credentials, role_.credentials_endpoint) {}

boost::asio::awaitable<dp::result<aws::temporary_credentials>> build_storage_access::open(
    const proto::job& job) {
  auto signer = co_await signer_.get(http_);
  if (!signer) {
    co_return signer.error();
  }
  aws::assume_role_params params{
      .role_arn = role_.role_arn,
      .session_name = "dp-build-" + job.deployment_id,
      .policy =
          build_storage_policy(role_.bucket, role_.key_prefix, job.deployment_id, job.project),
      .duration = std::chrono::seconds(std::max<int64_t>(900, job.timeout_s))};
  auto creds = co_await aws::assume_role(http_, role_.sts_endpoint, role_.region, *signer, params);
  if (!creds) {
    co_return dp::error{creds.error().code,
                        fmt::format("cannot get the build's storage access (role {}): {}",
                                    role_.role_arn, creds.error().message)};
  }
  co_return creds;
}

}  // namespace dp::worker
