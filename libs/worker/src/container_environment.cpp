// What every container launcher (docker, ECS) puts in a build container's environment.
#include "dp/worker/launcher.hpp"

namespace dp::worker {

std::vector<std::pair<std::string, std::string>> container_environment(
    const config::environment& env, const proto::job& job) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [k, v] : env) {
    if (k != "BUILD_TIMEOUT_S") {
      out.emplace_back(k, v);
    }
  }
  out.emplace_back("DEPLOYMENT_ID", job.deployment_id);
  out.emplace_back("BUILD_TIMEOUT_S", std::to_string(job.timeout_s));
  return out;
}

}  // namespace dp::worker
