// A Redis ACL user per container build (docker, ECS): the worker, which is trusted and outside
// the container, makes the user before it launches the build and deletes it when the build has
// ended, so that the container holds no credential of the platform's Redis, only one that reaches
// its own deployment's keys. What the runner in the container did with more than those (go-live
// sets aliases) the worker does after a successful exit (the container runs with
// BUILD_GO_LIVE=worker). Redis 7.0 ACLs (read-only key patterns, channel patterns).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <functional>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dp/core/config.hpp"
#include "dp/core/error.hpp"
#include "dp/proto/keys.hpp"
#include "dp/proto/types.hpp"
#include "dp/state/records.hpp"
#include "dp/worker/launcher.hpp"

namespace dp::redis {
class client;
}

namespace dp::worker {

class build_redis_users {
 public:
  // `admin` may ACL SETUSER, DELUSER and USERS (the worker's own connection); it is borrowed.
  // `container_url`: the Redis as the build container reaches it (host, port, db); its user and
  // password are replaced by each build's own.
  build_redis_users(redis::client& admin, proto::keys keys, config::redis_url container_url);

  // The ACL user of a deployment: <prefix>build:<id>.
  static std::string user_name(const proto::keys& keys, std::string_view deployment_id);
  // ACL SETUSER's rules after the user's name, its password left out: nothing but the commands
  // the runner sends (AUTH, SELECT, PING; EVAL of the status scripts, HGETALL, HGET, HSET, GET,
  // XADD, XRANGE, XREVRANGE, EXPIRE, PUBLISH, SUBSCRIBE), on its deployment's record and logbook,
  // its cancel key (read only), its project's record (read only: the job's settings) and the
  // channels of its log lines and its cancel requests. Not the status events channel: the status
  // scripts move its status without an event, and close() publishes the final one.
  static std::vector<std::string> acl_rules(const proto::keys& keys, std::string_view deployment_id,
                                            std::string_view project);

  // Makes the job's deployment a user with a new random password (a user left from an earlier
  // attempt goes first, and Redis closes its connections) and returns the REDIS_URL that logs in
  // as it.
  task<std::string> open(const proto::job& job);

  // After the build container has ended: a build that exited 0 has uploaded its output and left
  // the go-live fields on the record; it goes live now (records::go_live), and `end` says so. A
  // go-live that fails is an infrastructure end (exit 3, worth another attempt). Otherwise a
  // final status the build recorded (failed, canceled) is published on the events channel, which
  // the user may not publish on. The user is deleted in every case.
  task<build_end> close(const proto::job& job, dp::result<build_end> end);

  // The users of deployments that are final or gone (a worker that died before close): deleted.
  // At worker start and at every reaper sweep, with the launcher's clean_up.
  task<void> sweep();

 private:
  task<void> remove(std::string_view deployment_id);
  boost::asio::awaitable<void> publish_final_status(std::string_view deployment_id);

  redis::client& admin_;
  state::records records_;
  proto::keys keys_;
  config::redis_url container_url_;
};

// A container build (docker, ECS) from start to end: `launch` starts the container with the
// environment it is given (container_environment of `env` and the job) and returns its end. With
// `users` the container logs in as the deployment's own Redis user, made before and deleted after
// (close makes a successful build live); without (BUILD_REDIS_USER=shared) it gets the launcher's
// REDIS_URL. With `storage` it signs with temporary keys limited to the deployment's own objects
// (build_storage_access); without, with the launcher's AWS access.
using container_launch =
    std::function<task<build_end>(std::vector<std::pair<std::string, std::string>>)>;
task<build_end> run_container_build(build_redis_users* users, build_storage_access* storage,
                                    const config::environment& env, const proto::job& job,
                                    container_launch launch);

}  // namespace dp::worker
