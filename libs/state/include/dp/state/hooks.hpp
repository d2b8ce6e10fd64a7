// What starts a deployment from outside besides the API token: each project's webhook secret
// (and the forge to report commit statuses to), its deploy hooks, and the webhook deliveries
// already taken. The keys are in proto::keys and proto/README.md.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dp/core/error.hpp"
#include "dp/proto/keys.hpp"

namespace dp::redis {
class client;
}

namespace dp::state {

// A deploy hook: POST /v1/hooks/<secret> deploys `branch` of `project`.
struct deploy_hook {
  std::string id;
  std::string project;
  std::string branch;
  int64_t created_at = 0;
  bool operator==(const deploy_hook&) const = default;
};

// Where commit statuses go (libs/forge status_target, stored as text).
struct forge_settings {
  std::string forge;  // github, gitlab, gitea
  std::string api_url;
  std::string repository;
  std::string token;
  bool operator==(const forge_settings&) const = default;
};

class hooks {
 public:
  // The client is borrowed; it must outlive this object and live on the same executor.
  hooks(redis::client& redis, proto::keys keys);

  // The project's webhook secret, replacing the one before (which stops verifying at once).
  boost::asio::awaitable<dp::result<void>> set_webhook_secret(std::string_view project,
                                                              std::string_view secret);
  // nullopt: none was made yet.
  boost::asio::awaitable<dp::result<std::optional<std::string>>> webhook_secret(
      std::string_view project);

  boost::asio::awaitable<dp::result<void>> set_forge(std::string_view project,
                                                     const forge_settings& f);
  boost::asio::awaitable<dp::result<std::optional<forge_settings>>> forge(std::string_view project);

  // A deployment whose commit the forge gets statuses for: its sha and URL, kept `ttl` (longer
  // than a build can wait and run). nullopt: the deployment reports nothing.
  boost::asio::awaitable<dp::result<void>> set_commit_status_target(std::string_view deployment_id,
                                                                    std::string_view sha,
                                                                    std::string_view target_url,
                                                                    std::chrono::seconds ttl);
  struct commit_status_target {
    std::string sha;
    std::string target_url;
  };
  boost::asio::awaitable<dp::result<std::optional<commit_status_target>>> commit_status_target_of(
      std::string_view deployment_id);

  // True the first time a delivery id is seen (within `ttl`); false for a replay.
  boost::asio::awaitable<dp::result<bool>> take_delivery(std::string_view provider,
                                                         std::string_view id,
                                                         std::chrono::seconds ttl);
  // Forgets a delivery that could not be acted on, so the forge's redelivery is taken.
  boost::asio::awaitable<dp::result<void>> release_delivery(std::string_view provider,
                                                            std::string_view id);

  // Stores a hook found by the SHA-256 (hex) of its secret; the secret itself is not stored.
  boost::asio::awaitable<dp::result<void>> create_hook(const deploy_hook& h,
                                                       std::string_view secret_sha256);
  // The project's hooks, oldest first.
  boost::asio::awaitable<dp::result<std::vector<deploy_hook>>> list_hooks(std::string_view project);
  // False when the project has no hook of that id.
  boost::asio::awaitable<dp::result<bool>> delete_hook(std::string_view project,
                                                       std::string_view id);
  // errc::not_found when no hook has a secret of that hash.
  boost::asio::awaitable<dp::result<deploy_hook>> find_hook(std::string_view secret_sha256);

  // Everything above of a project being deleted (its deliveries expire on their own).
  boost::asio::awaitable<dp::result<void>> forget_project(std::string_view project);

 private:
  redis::client& redis_;
  proto::keys keys_;
};

}  // namespace dp::state
