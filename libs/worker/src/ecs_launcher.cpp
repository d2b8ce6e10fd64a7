// The ecs launcher: RunTask on Fargate through the JSON 1.1 protocol, signed with SigV4 (service
// "ecs"), then DescribeTasks until the task is STOPPED; StopTask when the build must stop.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <algorithm>
#include <optional>

#include "dp/aws/crypto.hpp"
#include "dp/aws/sigv4.hpp"
#include "dp/core/log.hpp"
#include "dp/http_client/client.hpp"
#include "dp/worker/build_redis_users.hpp"
#include "dp/worker/launcher.hpp"

namespace dp::worker {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;

constexpr std::string_view target_prefix = "AmazonEC2ContainerServiceV20141113.";

class ecs_launcher final : public launcher {
 public:
  ecs_launcher(http_client::client& http, ecs_launcher_options o, build_redis_users* users)
      : http_(http),
        opts_(std::move(o)),
        users_(users),
        creds_(opts_.credentials, opts_.credentials_endpoint) {
    if (opts_.endpoint.empty()) {
      opts_.endpoint = fmt::format("https://ecs.{}.amazonaws.com", opts_.region);
    }
    if (opts_.storage_role) {
      storage_.emplace(http_, *opts_.storage_role);
    }
    auto u = boost::urls::parse_uri(opts_.endpoint);
    host_ = u ? std::string(u->encoded_host_and_port()) : std::string();
  }

  std::string_view name() const noexcept override { return "ecs"; }

  // Running tasks of the build task definition whose worker no longer holds their lease are
  // stopped: otherwise a re-queued job would build beside its orphan until BUILD_TIMEOUT_S.
  // ListTasks (by family, RUNNING, page by page), DescribeTasks for who started each and for
  // which deployment (its DEPLOYMENT_ID override), StopTask for the orphans.
  task<void> clean_up(const liveness_check& live) override {
    std::string next_token;
    do {
      json::object list{
          {"cluster", opts_.cluster}, {"family", family()}, {"desiredStatus", "RUNNING"}};
      if (!next_token.empty()) {
        list["nextToken"] = next_token;
      }
      auto listed = co_await call("ListTasks", std::move(list));
      if (!listed) {
        co_return listed.error();
      }
      next_token = string_at(*listed, "nextToken");
      const auto* arns = listed->as_object().if_contains("taskArns");
      if (!arns || !arns->is_array() || arns->as_array().empty()) {
        continue;
      }
      json::object d{{"cluster", opts_.cluster}, {"tasks", arns->as_array()}};
      auto described = co_await call("DescribeTasks", std::move(d));
      if (!described) {
        co_return described.error();
      }
      const auto* tasks = described->as_object().if_contains("tasks");
      if (!tasks || !tasks->is_array()) {
        continue;
      }
      for (const auto& t : tasks->as_array()) {
        auto deployment = deployment_of(t);
        auto owner = string_at(t, "startedBy");
        if (deployment.empty() || owner.empty() || co_await live(deployment, owner)) {
          continue;
        }
        auto arn = string_at(t, "taskArn");
        dp::log::info("stopping an orphaned build task",
                      {{"task", arn}, {"deployment", deployment}, {"worker", owner}});
        json::object s{{"cluster", opts_.cluster},
                       {"task", arn},
                       {"reason", "orphaned: the worker that started it is gone"}};
        if (auto r = co_await call("StopTask", std::move(s)); !r) {
          co_return r.error();
        }
      }
    } while (!next_token.empty());
    if (users_) {
      co_return co_await users_->sweep();
    }
    co_return dp::result<void>{};
  }

  task<build_end> run(const proto::job& job, stop_flag& stop) override {
    // The user's password goes into RunTask's overrides (DescribeTasks shows it), but it opens
    // this deployment's keys only, and only until the task has ended.
    co_return co_await run_container_build(users_, storage_ ? &*storage_ : nullptr, opts_.env, job,
                                           [this, &job, &stop](auto environment) {
                                             return launch(job, stop, std::move(environment));
                                           });
  }

  task<build_end> launch(const proto::job& job, stop_flag& stop,
                         std::vector<std::pair<std::string, std::string>> environment) {
    using namespace asio::experimental::awaitable_operators;
    json::array env;
    for (const auto& [k, v] : environment) {
      env.push_back(json::object{{"name", k}, {"value", v}});
    }
    json::array subnets(opts_.subnets.begin(), opts_.subnets.end());
    json::array groups(opts_.security_groups.begin(), opts_.security_groups.end());
    json::object request{
        {"cluster", opts_.cluster},
        {"taskDefinition", opts_.task_definition},
        {"count", 1},
        {"launchType", "FARGATE"},
        {"networkConfiguration",
         json::object{
             {"awsvpcConfiguration",
              json::object{{"subnets", std::move(subnets)},
                           {"securityGroups", std::move(groups)},
                           {"assignPublicIp", opts_.assign_public_ip ? "ENABLED" : "DISABLED"}}}}},
        {"overrides", json::object{{"containerOverrides",
                                    json::array{json::object{{"name", opts_.container_name},
                                                             {"environment", std::move(env)}}}}}}};
    if (!opts_.started_by.empty()) {
      request["startedBy"] = opts_.started_by;
    }
    auto started = co_await call("RunTask", std::move(request));
    if (!started) {
      co_return started.error();
    }
    const auto* tasks = started->as_object().if_contains("tasks");
    if (!tasks || !tasks->is_array() || tasks->as_array().empty()) {
      std::string reason = "no task started";
      if (const auto* f = started->as_object().if_contains("failures");
          f && f->is_array() && !f->as_array().empty()) {
        reason = json::serialize(f->as_array().front());
      }
      co_return make_error(errc::unavailable, "ecs: RunTask: {}", reason);
    }
    std::string arn = string_at(tasks->as_array().front(), "taskArn");
    if (arn.empty()) {
      co_return make_error(errc::protocol, "ecs: RunTask: no taskArn in the answer");
    }
    dp::log::info("ecs task started", {{"deployment", job.deployment_id}, {"task", arn}});

    // Follow the task; a stop request sends StopTask once and keeps following until STOPPED.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(job.timeout_s) +
                    opts_.timeout_margin;
    asio::steady_timer pause(co_await asio::this_coro::executor);
    bool stop_sent = false;
    int failures = 0;
    std::optional<std::chrono::steady_clock::time_point> missing_since;
    for (;;) {
      if ((stop.requested() || std::chrono::steady_clock::now() >= deadline) && !stop_sent) {
        json::object s{{"cluster", opts_.cluster},
                       {"task", arn},
                       {"reason", stop.requested() ? "stopped by the worker" : "build timed out"}};
        if (auto r = co_await call("StopTask", std::move(s)); !r) {
          dp::log::warn("ecs StopTask failed", {{"task", arn}, {"error", r.error()}});
        } else {
          stop_sent = true;
        }
      }
      json::object d{{"cluster", opts_.cluster}, {"tasks", json::array{arn}}};
      auto described = co_await call("DescribeTasks", std::move(d));
      if (!described) {
        // Transient: keep following; the task runs on regardless of us.
        if (++failures % 10 == 1) {
          dp::log::warn("ecs DescribeTasks failed", {{"task", arn}, {"error", described.error()}});
        }
      } else if (auto end = stopped_end(*described, stop_sent && stop.requested())) {
        co_return std::move(*end);
      } else if (!is_missing(*described)) {
        missing_since.reset();
      } else if (!missing_since) {
        missing_since = std::chrono::steady_clock::now();
      } else if (std::chrono::steady_clock::now() - *missing_since >= opts_.missing_limit) {
        co_return make_error(errc::unavailable,
                             "ecs: task {} is MISSING in DescribeTasks: it ended beyond what "
                             "ECS still reports, so its result is unknown",
                             arn);
      }
      pause.expires_after(opts_.poll);
      if (stop.requested() && !stop_sent) {
        co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
      } else {
        co_await (pause.async_wait(asio::as_tuple(asio::use_awaitable)) || stop.wait());
      }
    }
  }

 private:
  // The build's end when DescribeTasks says STOPPED: containers[0].exitCode (by name when
  // possible), else the stop code and reason.
  std::optional<build_end> stopped_end(const json::value& v, bool stopped) const {
    const auto* tasks = v.as_object().if_contains("tasks");
    if (!tasks || !tasks->is_array() || tasks->as_array().empty()) {
      return std::nullopt;
    }
    const auto& t = tasks->as_array().front();
    if (string_at(t, "lastStatus") != "STOPPED") {
      return std::nullopt;
    }
    build_end end;
    end.stopped = stopped;
    auto stop_code = string_at(t, "stopCode");
    auto reason = string_at(t, "stoppedReason");
    std::string container_reason;
    if (const auto* cs = t.as_object().if_contains("containers"); cs && cs->is_array()) {
      const json::value* chosen = nullptr;
      for (const auto& c : cs->as_array()) {
        if (!chosen || string_at(c, "name") == opts_.container_name) {
          chosen = &c;
        }
      }
      if (chosen) {
        if (const auto* code = chosen->as_object().if_contains("exitCode");
            code && code->is_int64()) {
          end.exit_code = static_cast<int>(code->as_int64());
        }
        container_reason = string_at(*chosen, "reason");
      }
    }
    end.description = end.exit_code
                          ? fmt::format("task exited with code {}", *end.exit_code)
                          : fmt::format("task stopped without an exit code: {} ({})",
                                        stop_code.empty() ? "unknown" : stop_code, reason);
    // "OutOfMemoryError: Container killed due to memory usage" (the container's reason) or
    // "OutOfMemory..." as the task's stoppedReason: the task definition's memory limit.
    if (container_reason.starts_with("OutOfMemory") || reason.starts_with("OutOfMemory")) {
      end.description += fmt::format(": memory limit of the task reached ({})",
                                     container_reason.empty() ? reason : container_reason);
    }
    return end;
  }

  // The task definition's family: "build-runner:3" or "arn:...:task-definition/build-runner:3".
  std::string family() const {
    std::string_view td = opts_.task_definition;
    if (auto slash = td.rfind('/'); slash != std::string_view::npos) {
      td.remove_prefix(slash + 1);
    }
    return std::string(td.substr(0, td.find(':')));
  }

  // The DEPLOYMENT_ID that run() put in the build container's environment override.
  std::string deployment_of(const json::value& t) const {
    const auto* o = t.is_object() ? t.as_object().if_contains("overrides") : nullptr;
    const auto* cs =
        o && o->is_object() ? o->as_object().if_contains("containerOverrides") : nullptr;
    if (!cs || !cs->is_array()) {
      return {};
    }
    for (const auto& c : cs->as_array()) {
      const auto* env = c.is_object() ? c.as_object().if_contains("environment") : nullptr;
      if (string_at(c, "name") != opts_.container_name || !env || !env->is_array()) {
        continue;
      }
      for (const auto& e : env->as_array()) {
        if (string_at(e, "name") == "DEPLOYMENT_ID") {
          return string_at(e, "value");
        }
      }
    }
    return {};
  }

  // DescribeTasks found no such task: no task in the answer and a MISSING failure.
  static bool is_missing(const json::value& v) {
    const auto* tasks = v.as_object().if_contains("tasks");
    if (tasks && tasks->is_array() && !tasks->as_array().empty()) {
      return false;
    }
    const auto* f = v.as_object().if_contains("failures");
    if (!f || !f->is_array()) {
      return false;
    }
    return std::any_of(f->as_array().begin(), f->as_array().end(),
                       [](const json::value& x) { return string_at(x, "reason") == "MISSING"; });
  }

  static std::string string_at(const json::value& v, std::string_view key) {
    if (!v.is_object()) {
      return {};
    }
    const auto* s = v.as_object().if_contains(key);
    return s && s->is_string() ? std::string(s->as_string()) : std::string();
  }

  // One JSON 1.1 call: POST / with X-Amz-Target, signed.
  task<json::value> call(std::string_view action, json::object body) {
    auto text = json::serialize(body);
    auto target = std::string(target_prefix) + std::string(action);
    aws::request sr;
    sr.method = "POST";
    sr.path = "/";
    sr.style = aws::uri_style::standard;
    sr.headers = {
        {"host", host_}, {"content-type", "application/x-amz-json-1.1"}, {"x-amz-target", target}};
    auto payload = aws::sha256_hex(text);
    sr.payload_hash = payload;
    auto creds = co_await creds_.get(http_);
    if (!creds) {
      co_return creds.error();
    }
    auto sig = aws::sign(sr, *creds, {opts_.region, "ecs", std::chrono::system_clock::now()});
    http_client::request req;
    req.method = "POST";
    req.url = opts_.endpoint + "/";
    req.headers = {{"Content-Type", "application/x-amz-json-1.1"}, {"X-Amz-Target", target}};
    for (auto& h : sig.headers_to_add) {
      req.headers.push_back(std::move(h));
    }
    req.body = std::move(text);
    req.timeout = std::chrono::seconds(30);
    auto r = co_await http_.send(std::move(req));
    if (!r) {
      co_return r.error();
    }
    boost::system::error_code ec;
    auto v = json::parse(r->body, ec);
    if (r->status != 200) {
      // {"__type": "...#ClientException", "message": "..."}
      std::string message = r->body.substr(0, 200);
      if (!ec && v.is_object()) {
        message =
            string_at(v, "__type") + ": " +
            (string_at(v, "message").empty() ? string_at(v, "Message") : string_at(v, "message"));
      }
      auto code = r->status >= 500                       ? errc::unavailable
                  : r->status == 403 || r->status == 401 ? errc::unauthorized
                                                         : errc::invalid_argument;
      co_return make_error(code, "ecs: {}: HTTP {}: {}", action, r->status, message);
    }
    if (ec || !v.is_object()) {
      co_return make_error(errc::protocol, "ecs: {}: the answer is not a JSON object", action);
    }
    co_return v;
  }

  http_client::client& http_;
  ecs_launcher_options opts_;
  build_redis_users* users_;
  std::optional<build_storage_access> storage_;
  aws::credential_source creds_;
  std::string host_;
};

}  // namespace

std::unique_ptr<launcher> make_ecs_launcher(http_client::client& http, ecs_launcher_options o,
                                            build_redis_users* users) {
  return std::make_unique<ecs_launcher>(http, std::move(o), users);
}

}  // namespace dp::worker
