// What every container launcher (docker, ECS) puts in a build container's environment.
#include "dp/worker/launcher.hpp"

namespace dp::worker {

std::vector<std::pair<std::string, std::string>> container_environment(
    const config::environment& env, const proto::job& job,
    const std::optional<std::string>& build_redis_url, const aws::credentials* storage) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [k, v] : env) {
    bool credential = k.starts_with("AWS_") && k != "AWS_REGION" && k != "AWS_DEFAULT_REGION";
    if (k != "BUILD_TIMEOUT_S" &&
        !(build_redis_url && (k == "REDIS_URL" || k == "BUILD_GO_LIVE")) &&
        !(storage && credential)) {
      out.emplace_back(k, v);
    }
  }
  if (storage) {
    out.emplace_back("AWS_ACCESS_KEY_ID", storage->access_key);
    out.emplace_back("AWS_SECRET_ACCESS_KEY", storage->secret_key);
    out.emplace_back("AWS_SESSION_TOKEN", storage->session_token);
  }
  out.emplace_back("DEPLOYMENT_ID", job.deployment_id);
  out.emplace_back("BUILD_TIMEOUT_S", std::to_string(job.timeout_s));
  if (build_redis_url) {
    out.emplace_back("REDIS_URL", *build_redis_url);
    out.emplace_back("BUILD_GO_LIVE", "worker");
  }
  return out;
}

}  // namespace dp::worker
