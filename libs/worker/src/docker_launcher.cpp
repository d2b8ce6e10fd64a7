// The docker launcher: Docker Engine API over the daemon's unix socket (the version pinned, or the
// engine's own). create → start → wait → remove; a stop is a forced remove (SIGKILL, then the
// container and its anonymous volumes go).
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <cstdint>

#include "dp/core/log.hpp"
#include "dp/http_client/client.hpp"
#include "dp/worker/build_redis_users.hpp"
#include "dp/worker/launcher.hpp"

namespace dp::worker {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;

class docker_launcher final : public launcher {
 public:
  docker_launcher(http_client::client& http, docker_launcher_options o, build_redis_users* users)
      : http_(http), opts_(std::move(o)), users_(users) {
    if (opts_.storage_role) {
      storage_.emplace(http_, *opts_.storage_role);
    }
  }

  std::string_view name() const noexcept override { return "docker"; }

  task<void> clean_up(const liveness_check& live) override {
    // Every build container carries dp.deployment; dp.worker says who launched it, dp.scope
    // which platform it belongs to.
    json::array wanted{"dp.deployment"};
    if (!opts_.scope.empty()) {
      wanted.emplace_back("dp.scope=" + opts_.scope);
    }
    json::object filters{{"label", std::move(wanted)}};
    auto r = co_await call(
        "GET", "/containers/json?all=true&filters=" + url_encode(json::serialize(filters)), {},
        std::chrono::seconds(30));
    if (!r) {
      co_return r.error();
    }
    if (r->status != 200) {
      co_return api_error("list containers", *r);
    }
    auto list = json::parse(r->body, ec_);
    if (ec_ || !list.is_array()) {
      co_return make_error(errc::protocol, "docker: list containers: not a JSON array");
    }
    for (const auto& c : list.as_array()) {
      const auto* labels = c.is_object() ? c.as_object().if_contains("Labels") : nullptr;
      const auto* id = c.is_object() ? c.as_object().if_contains("Id") : nullptr;
      if (!labels || !labels->is_object() || !id || !id->is_string()) {
        continue;
      }
      auto label = [&](std::string_view k) -> std::string {
        const auto* v = labels->as_object().if_contains(k);
        return v && v->is_string() ? std::string(v->as_string()) : std::string();
      };
      auto deployment = label("dp.deployment");
      auto owner = label("dp.worker");
      if (co_await live(deployment, owner)) {
        continue;
      }
      dp::log::info("removing an orphaned build container",
                    {{"container", std::string(id->as_string())},
                     {"deployment", deployment},
                     {"worker", owner}});
      if (auto ok = co_await remove(std::string(id->as_string())); !ok) {
        co_return ok.error();
      }
    }
    if (users_) {
      co_return co_await users_->sweep();
    }
    co_return dp::result<void>{};
  }

  task<build_end> run(const proto::job& job, stop_flag& stop) override {
    co_return co_await run_container_build(users_, storage_ ? &*storage_ : nullptr, opts_.env, job,
                                           [this, &job, &stop](auto environment) {
                                             return launch(job, stop, std::move(environment));
                                           });
  }

 private:
  task<build_end> launch(const proto::job& job, stop_flag& stop,
                         std::vector<std::pair<std::string, std::string>> environment) {
    json::array env;
    for (const auto& [k, v] : environment) {
      env.emplace_back(k + "=" + v);
    }
    // The build container runs user code: no setuid gains, bounded processes. Its runner (pid 1)
    // is root with only what it needs to hand install and build a uid of their own with nothing
    // (runner_capabilities); the image's own user would share its uid with the build.
    json::array caps;
    for (auto c : runner_capabilities) {
      caps.emplace_back(c);
    }
    json::object host{{"AutoRemove", false},
                      {"CapDrop", json::array{"ALL"}},
                      {"CapAdd", std::move(caps)},
                      {"SecurityOpt", json::array{"no-new-privileges"}}};
    if (opts_.pids_limit > 0) {
      host["PidsLimit"] = opts_.pids_limit;
    }
    if (opts_.memory_bytes > 0) {
      host["Memory"] = opts_.memory_bytes;
    }
    if (opts_.nano_cpus > 0) {
      host["NanoCpus"] = opts_.nano_cpus;
    }
    if (!opts_.network_mode.empty()) {
      host["NetworkMode"] = opts_.network_mode;
    }
    json::object labels{{"dp.deployment", job.deployment_id}, {"dp.worker", opts_.worker_id}};
    if (!opts_.scope.empty()) {
      labels["dp.scope"] = opts_.scope;
    }
    json::object body{{"Image", opts_.image},
                      {"User", "0:0"},
                      {"Cmd", json::array{"build", "--deployment", job.deployment_id}},
                      {"Env", std::move(env)},
                      {"Labels", std::move(labels)},
                      {"HostConfig", std::move(host)}};
    auto name = fmt::format("dp-build-{}-{}", job.deployment_id, job.attempt);
    auto created = co_await call("POST", "/containers/create?name=" + name, json::serialize(body),
                                 std::chrono::seconds(60));
    if (!created) {
      co_return created.error();
    }
    if (created->status != 201) {
      co_return api_error("create container", *created);
    }
    auto reply = json::parse(created->body, ec_);
    const auto* idv = !ec_ && reply.is_object() ? reply.as_object().if_contains("Id") : nullptr;
    if (!idv || !idv->is_string()) {
      co_return make_error(errc::protocol, "docker: create container: no Id in the answer");
    }
    std::string id(idv->as_string());
    auto result = co_await follow(id, job, stop);
    // Removed in every case: AutoRemove is off so the exit code is read first.
    if (auto ok = co_await remove(id); !ok) {
      dp::log::warn("cannot remove a build container", {{"container", id}, {"error", ok.error()}});
    }
    co_return result;
  }

  task<build_end> follow(const std::string& id, const proto::job& job, stop_flag& stop) {
    using namespace asio::experimental::awaitable_operators;
    auto started =
        co_await call("POST", "/containers/" + id + "/start", {}, std::chrono::seconds(60));
    if (!started) {
      co_return started.error();
    }
    if (started->status != 204 && started->status != 304) {
      co_return api_error("start container", *started);
    }
    auto limit = std::chrono::seconds(job.timeout_s) + opts_.timeout_margin;
    auto waited =
        co_await (call("POST", "/containers/" + id + "/wait?condition=not-running", {}, limit) ||
                  stop.wait());
    if (waited.index() == 1) {
      co_return build_end::stopped_by_worker();
    }
    build_end end;
    auto& w = std::get<0>(waited);
    if (!w && w.error().is(errc::timeout)) {
      // The build's own clock (BUILD_TIMEOUT_S, in the container) did not end it: this one did.
      end.description = fmt::format(
          "timed out: the launcher's time limit of {} s (BUILD_TIMEOUT_S {} s and a margin of {} "
          "s) passed",
          limit.count(), job.timeout_s, opts_.timeout_margin.count());
      co_return end;
    }
    if (!w) {
      co_return w.error();
    }
    if (w->status != 200) {
      co_return api_error("wait for container", *w);
    }
    auto v = json::parse(w->body, ec_);
    const auto* code = !ec_ && v.is_object() ? v.as_object().if_contains("StatusCode") : nullptr;
    if (!code || !code->is_int64()) {
      co_return make_error(errc::protocol, "docker: wait: no StatusCode in the answer");
    }
    end.exit_code = static_cast<int>(code->as_int64());
    end.description = fmt::format("container exited with code {}", *end.exit_code);
    if (const auto* err = v.as_object().if_contains("Error"); err && err->is_object()) {
      if (const auto* m = err->as_object().if_contains("Message");
          m && m->is_string() && !m->as_string().empty()) {
        end.description += fmt::format(" ({})", std::string_view(m->as_string()));
      }
    }
    // A failure names its cause: a limit of the container it hit, or the build's last word on
    // stderr (the container is still there).
    if (*end.exit_code != 0) {
      if (co_await oom_killed(id)) {
        end.description += fmt::format(": memory limit of {} MiB (the container's) reached",
                                       opts_.memory_bytes >> 20);
      } else if (auto line = co_await last_stderr_line(id); !line.empty()) {
        end.description += fmt::format(": {}", line);
      }
    }
    co_return end;
  }

  // Whether the kernel killed a process of the container at its memory limit (State.OOMKilled).
  asio::awaitable<bool> oom_killed(const std::string& id) {
    auto r = co_await call("GET", "/containers/" + id + "/json", {}, std::chrono::seconds(10));
    if (!r || r->status != 200) {
      co_return false;
    }
    boost::system::error_code ec;
    auto v = json::parse(r->body, ec);
    const auto* state = !ec && v.is_object() ? v.as_object().if_contains("State") : nullptr;
    const auto* oom =
        state && state->is_object() ? state->as_object().if_contains("OOMKilled") : nullptr;
    co_return oom && oom->is_bool() && oom->as_bool();
  }

  // The container's last non-empty line on stderr, or "" when there is none or it cannot be read.
  asio::awaitable<std::string> last_stderr_line(const std::string& id) {
    auto r = co_await call("GET", "/containers/" + id + "/logs?stderr=true&tail=20", {},
                           std::chrono::seconds(10));
    if (!r || r->status != 200) {
      co_return std::string();
    }
    // Without a TTY the log is multiplexed: frames of an 8-byte header (stream, 0, 0, 0, and a
    // big-endian length) and their payload.
    std::string text;
    std::string_view rest = r->body;
    while (rest.size() >= 8) {
      auto size = (std::uint32_t(std::uint8_t(rest[4])) << 24) |
                  (std::uint32_t(std::uint8_t(rest[5])) << 16) |
                  (std::uint32_t(std::uint8_t(rest[6])) << 8) |
                  std::uint32_t(std::uint8_t(rest[7]));
      rest.remove_prefix(8);
      auto n = std::min<std::size_t>(size, rest.size());
      text.append(rest.substr(0, n));
      rest.remove_prefix(n);
    }
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
      text.pop_back();
    }
    auto nl = text.find_last_of('\n');
    auto line = nl == std::string::npos ? text : text.substr(nl + 1);
    if (line.size() > 300) {
      line = line.substr(0, 300) + "...";
    }
    co_return line;
  }

  task<void> remove(const std::string& id) {
    auto r = co_await call("DELETE", "/containers/" + id + "?force=true&v=true", {},
                           std::chrono::seconds(60));
    if (!r) {
      co_return r.error();
    }
    if (r->status != 204 && r->status != 404) {
      co_return api_error("remove container", *r);
    }
    co_return dp::result<void>{};
  }

  task<http_client::response> call(std::string method, const std::string& path, std::string body,
                                   std::chrono::milliseconds timeout) {
    if (opts_.api_version.empty()) {
      if (auto ok = co_await negotiate(); !ok) {
        co_return ok.error();
      }
    }
    http_client::request req;
    req.method = std::move(method);
    req.url = opts_.base_url + "/" + opts_.api_version + path;
    req.unix_socket = opts_.socket;
    req.timeout = timeout;
    if (!body.empty() || req.method == "POST") {
      req.headers.emplace_back("Content-Type", "application/json");
      req.body = std::move(body);
    }
    co_return co_await http_.send(std::move(req));
  }

  // GET /version (the one unversioned call) for the engine's API version; kept for later calls.
  task<void> negotiate() {
    http_client::request req;
    req.method = "GET";
    req.url = opts_.base_url + "/version";
    req.unix_socket = opts_.socket;
    req.timeout = std::chrono::seconds(30);
    auto r = co_await http_.send(std::move(req));
    if (!r) {
      co_return r.error();
    }
    if (r->status != 200) {
      co_return api_error("version", *r);
    }
    boost::system::error_code ec;
    auto v = json::parse(r->body, ec);
    const auto* ver = !ec && v.is_object() ? v.as_object().if_contains("ApiVersion") : nullptr;
    if (!ver || !ver->is_string() || ver->as_string().empty()) {
      co_return make_error(errc::protocol, "docker: version: no ApiVersion in the answer");
    }
    if (opts_.api_version.empty()) {
      opts_.api_version = "v" + std::string(ver->as_string());
    }
    co_return dp::result<void>{};
  }

  static dp::error api_error(std::string_view what, const http_client::response& r) {
    // The Engine API answers errors as {"message": "..."}.
    boost::system::error_code ec;
    auto v = json::parse(r.body, ec);
    std::string message = r.body.substr(0, 200);
    if (!ec && v.is_object()) {
      if (const auto* m = v.as_object().if_contains("message"); m && m->is_string()) {
        message = std::string(m->as_string());
      }
    }
    auto code = r.status == 404 ? errc::not_found : errc::unavailable;
    return make_error(code, "docker: {}: HTTP {}: {}", what, r.status, message);
  }

  static std::string url_encode(std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
        out += static_cast<char>(c);
      } else {
        out += fmt::format("%{:02X}", c);
      }
    }
    return out;
  }

  http_client::client& http_;
  docker_launcher_options opts_;
  build_redis_users* users_;
  std::optional<build_storage_access> storage_;
  boost::system::error_code ec_;
};

}  // namespace

std::unique_ptr<launcher> make_docker_launcher(http_client::client& http, docker_launcher_options o,
                                               build_redis_users* users) {
  return std::make_unique<docker_launcher>(http, std::move(o), users);
}

}  // namespace dp::worker
