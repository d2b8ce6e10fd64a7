// The ecs launcher: RunTask on Fargate through the JSON 1.1 protocol, signed with SigV4 (service
// "ecs"), then DescribeTasks until the task is STOPPED; StopTask when the build must stop.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include "dp/aws/crypto.hpp"
#include "dp/aws/sigv4.hpp"
#include "dp/core/log.hpp"
#include "dp/http_client/client.hpp"
#include "dp/worker/launcher.hpp"

namespace dp::worker {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;

constexpr std::string_view target_prefix = "AmazonEC2ContainerServiceV20141113.";

class ecs_launcher final : public launcher {
 public:
  ecs_launcher(http_client::client& http, ecs_launcher_options o)
      : http_(http), opts_(std::move(o)), creds_(opts_.credentials, opts_.credentials_endpoint) {
    if (opts_.endpoint.empty()) {
      opts_.endpoint = fmt::format("https://ecs.{}.amazonaws.com", opts_.region);
    }
    auto u = boost::urls::parse_uri(opts_.endpoint);
    host_ = u ? std::string(u->encoded_host_and_port()) : std::string();
  }

  std::string_view name() const noexcept override { return "ecs"; }

  // Tasks run on AWS; a task whose worker died is stopped by its own BUILD_TIMEOUT_S.
  task<void> clean_up(const liveness_check&) override { co_return dp::result<void>{}; }

  task<build_end> run(const proto::job& job, stop_flag& stop) override {
    using namespace asio::experimental::awaitable_operators;
    json::array env;
    for (const auto& [k, v] : opts_.env) {
      env.push_back(json::object{{"name", k}, {"value", v}});
    }
    env.push_back(json::object{{"name", "DEPLOYMENT_ID"}, {"value", job.deployment_id}});
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
      request["startedBy"] = opts_.started_by.substr(0, 36);
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
      }
    }
    end.description = end.exit_code
                          ? fmt::format("task exited with code {}", *end.exit_code)
                          : fmt::format("task stopped without an exit code: {} ({})",
                                        stop_code.empty() ? "unknown" : stop_code, reason);
    return end;
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
  aws::credential_source creds_;
  std::string host_;
};

}  // namespace

std::unique_ptr<launcher> make_ecs_launcher(http_client::client& http, ecs_launcher_options o) {
  return std::make_unique<ecs_launcher>(http, std::move(o));
}

}  // namespace dp::worker
