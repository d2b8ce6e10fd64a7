#include "dp/proto/json.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

namespace json = boost::json;
namespace proto = dp::proto;

namespace {

std::filesystem::path proto_dir() {
  if (const char* dir = std::getenv("DP_SOURCE_DIR")) {
    return std::filesystem::path(dir) / "proto";
  }
  return DP_PROTO_DIR;
}

json::value read_example(const std::string& name) {
  std::ifstream in(proto_dir() / "examples" / (name + ".json"));
  std::stringstream text;
  text << in.rdbuf();
  return json::parse(text.str());
}

// Parses `v` as T and converts it back to a value; the text form must agree with the value form.
template <class T>
dp::result<json::value> round_trip(const json::value& v, dp::result<T> (*parse)(const json::value&),
                                   dp::result<T> (*parse_text)(std::string_view)) {
  auto x = parse(v);
  if (!x) {
    return x.error();
  }
  auto again = parse_text(proto::to_json(*x));
  EXPECT_TRUE(again && *again == *x);
  return json::value_from(*x);
}

using round_trip_fn = std::function<dp::result<json::value>(const json::value&)>;

// Every example, by name, through its parser and back.
const std::map<std::string, round_trip_fn>& round_trips() {
  static const std::map<std::string, round_trip_fn> table = {
      {"job", [](auto& v) { return round_trip(v, &proto::parse_job, &proto::parse_job); }},
      {"log_event",
       [](auto& v) { return round_trip(v, &proto::parse_log_event, &proto::parse_log_event); }},
      {"project",
       [](auto& v) { return round_trip(v, &proto::parse_project, &proto::parse_project); }},
      {"deployment",
       [](auto& v) { return round_trip(v, &proto::parse_deployment, &proto::parse_deployment); }},
      {"manifest",
       [](auto& v) { return round_trip(v, &proto::parse_manifest, &proto::parse_manifest); }},
      {"status_event",
       [](auto& v) {
         return round_trip(v, &proto::parse_status_event, &proto::parse_status_event);
       }},
      {"alias_event",
       [](auto& v) { return round_trip(v, &proto::parse_alias_event, &proto::parse_alias_event); }},
      {"route_event",
       [](auto& v) { return round_trip(v, &proto::parse_route_event, &proto::parse_route_event); }},
      {"cancel",
       [](auto& v) {
         return round_trip(v, &proto::parse_cancel_request, &proto::parse_cancel_request);
       }},
  };
  return table;
}

// Expects parse(v) to fail with invalid_argument and a message containing `message`.
template <class T>
void expect_refused(const dp::result<T>& r, std::string_view message) {
  ASSERT_FALSE(r) << "accepted, expected: " << message;
  EXPECT_TRUE(r.error().is(dp::errc::invalid_argument));
  EXPECT_NE(r.error().message.find(message), std::string::npos) << r.error().message;
}

}  // namespace

TEST(proto_examples, every_example_round_trips) {
  size_t seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator(proto_dir() / "examples")) {
    std::string name = entry.path().stem().string();
    auto it = round_trips().find(name);
    ASSERT_NE(it, round_trips().end()) << "no C++ type for example " << entry.path();
    json::value original = read_example(name);
    auto back = it->second(original);
    ASSERT_TRUE(back) << name << ": " << back.error().message;
    EXPECT_EQ(*back, original) << name;
    ++seen;
  }
  EXPECT_EQ(seen, round_trips().size());
}

TEST(proto_examples, every_schema_has_an_example) {
  for (const auto& entry : std::filesystem::directory_iterator(proto_dir() / "schemas")) {
    std::string name = entry.path().filename().string();
    name = name.substr(0, name.find('.'));
    if (name != "defs") {
      EXPECT_TRUE(std::filesystem::exists(proto_dir() / "examples" / (name + ".json"))) << name;
    }
  }
}

// A job carries the project's redirects_shadowing only when it is "rules": jobs of either
// version read the same.
TEST(proto_parse, job_redirects_shadowing) {
  auto job = proto::parse_job(read_example("job")).value();
  EXPECT_EQ(job.shadowing, proto::redirects_shadowing::files);
  EXPECT_EQ(proto::to_json(job).find("redirects_shadowing"), std::string::npos);
  job.shadowing = proto::redirects_shadowing::rules;
  auto text = proto::to_json(job);
  EXPECT_NE(text.find(R"("redirects_shadowing":"rules")"), std::string::npos) << text;
  EXPECT_EQ(proto::parse_job(text).value(), job);
  json::value v = read_example("job");
  v.as_object()["redirects_shadowing"] = "cloudflare";
  expect_refused(proto::parse_job(v), "field 'redirects_shadowing' must be one of files, rules");
}

TEST(proto_parse, refuses_missing_field) {
  json::value v = read_example("job");
  v.as_object().erase("project");
  expect_refused(proto::parse_job(v), "field 'project' is missing");
  v = read_example("deployment");
  v.as_object().erase("status");
  expect_refused(proto::parse_deployment(v), "field 'status' is missing");
  v = read_example("manifest");
  v.at("files").at("index.html").as_object().erase("size");
  expect_refused(proto::parse_manifest(v), "field 'files.index.html.size' is missing");
}

TEST(proto_parse, refuses_wrong_type) {
  json::value v = read_example("job");
  v.at("env").as_object()["FOO"] = 1;
  expect_refused(proto::parse_job(v), "field 'env.FOO' must be a string");
  v = read_example("job");
  v.as_object()["attempt"] = "1";
  expect_refused(proto::parse_job(v), "field 'attempt' must be an integer");
  v.as_object()["attempt"] = 1.0;
  expect_refused(proto::parse_job(v), "field 'attempt' must be an integer");
  v.as_object()["attempt"] = 0;
  expect_refused(proto::parse_job(v), "field 'attempt' must be an integer from 1");
  v = read_example("job");
  v.as_object()["install_command"] = json::array{};
  expect_refused(proto::parse_job(v), "field 'install_command' must be a string or null");
  v = read_example("log_event");
  v.as_object()["seq"] = -1;
  expect_refused(proto::parse_log_event(v), "field 'seq' must be an integer from 0");
  v = read_example("manifest");
  v.as_object()["files"] = json::array{};
  expect_refused(proto::parse_manifest(v), "field 'files' must be an object");
  v = read_example("manifest");
  v.at("files").as_object()["index.html"] = "x";
  expect_refused(proto::parse_manifest(v), "field 'files.index.html' must be an object");
  expect_refused(proto::parse_job(json::value(json::array{})), "message must be a JSON object");
}

TEST(proto_parse, refuses_unknown_version) {
  for (std::string name : {"job", "manifest", "status_event", "alias_event", "cancel"}) {
    json::value v = read_example(name);
    v.as_object()["v"] = 2;
    auto r = round_trips().at(name)(v);
    ASSERT_FALSE(r) << name;
    EXPECT_EQ(r.error().message, "field 'v' must be 1 (unknown version 2)") << name;
  }
  json::value v = read_example("job");
  v.as_object()["v"] = 2;
  expect_refused(proto::parse_job(v), "field 'v' must be 1 (unknown version 2)");
  v.as_object().erase("v");
  expect_refused(proto::parse_job(v), "field 'v' is missing");
  v = read_example("manifest");
  v.as_object()["v"] = "1";
  expect_refused(proto::parse_manifest(v), "field 'v' must be 1");
  v = read_example("cancel");
  v.as_object()["v"] = 3;
  expect_refused(proto::parse_cancel_request(v), "field 'v' must be 1");
  // Log events have no "v" in version 1; a later version adds one, and this reader refuses it.
  v = read_example("log_event");
  v.as_object()["v"] = 1;
  EXPECT_TRUE(proto::parse_log_event(v));
  v.as_object()["v"] = 2;
  expect_refused(proto::parse_log_event(v), "field 'v' must be 1");
}

TEST(proto_parse, refuses_bad_values) {
  json::value v = read_example("deployment");
  v.as_object()["status"] = "done";
  expect_refused(proto::parse_deployment(v), "field 'status' must be one of queued, cloning");
  v = read_example("status_event");
  v.as_object()["status"] = 3;
  expect_refused(proto::parse_status_event(v), "field 'status' must be one of");
  v = read_example("log_event");
  v.as_object()["stream"] = "stdin";
  expect_refused(proto::parse_log_event(v), "field 'stream' must be one of stdout, stderr, system");
  v = read_example("log_event");
  v.as_object()["phase"] = "deploy";
  expect_refused(proto::parse_log_event(v), "field 'phase' must be one of clone, restore_cache");
  v = read_example("manifest");
  v.as_object()["mode"] = "SPA";
  expect_refused(proto::parse_manifest(v), "field 'mode' must be one of spa, static");
  v = read_example("job");
  v.as_object()["project"] = "-shop";
  expect_refused(proto::parse_job(v), "field 'project' must be a project name");
  v = read_example("job");
  v.as_object()["project"] = std::string(55, 'a');  // its alias "<name>-<8>" would not be a label
  expect_refused(proto::parse_job(v), "field 'project' must be a project name");
  v = read_example("job");
  v.as_object()["serve_mode"] = "pages";
  expect_refused(proto::parse_job(v), "field 'serve_mode' must be one of spa, static, or null");
  v = read_example("job");
  v.as_object()["deployment_id"] = "01JH5K7Q3X9M2C8R4T6V0W1Y3Z";
  expect_refused(proto::parse_job(v), "field 'deployment_id' must be a deployment id");
  v = read_example("job");
  v.at("env").as_object()["NOT VALID"] = "x";
  expect_refused(proto::parse_job(v), "field 'env.NOT VALID' is not a valid environment variable");
  v = read_example("manifest");
  v.at("files").as_object()["../etc/passwd"] = v.at("files").at("index.html");
  expect_refused(proto::parse_manifest(v), "field 'files.../etc/passwd' is not a safe relative");
  v = read_example("manifest");
  v.at("files").at("index.html").as_object()["sha256"] = "ABC";
  expect_refused(proto::parse_manifest(v), "field 'files.index.html.sha256' must be 64 lowercase");
  v = read_example("status_event");
  v.as_object()["type"] = "alias";
  expect_refused(proto::parse_status_event(v), "field 'type' must be \"status\"");
}

TEST(proto_parse, accepts_unknown_fields_and_absent_nulls) {
  json::value v = read_example("job");
  v.as_object()["priority"] = "high";  // a newer writer's field
  v.as_object().erase("build_command");
  v.as_object()["ref"] = nullptr;
  auto job = proto::parse_job(v);
  ASSERT_TRUE(job) << job.error().message;
  EXPECT_FALSE(job->build_command);
  EXPECT_FALSE(job->ref);
  EXPECT_EQ(job->env.at("VITE_API"), "https://api.example.com");
}

TEST(proto_parse, text) {
  expect_refused(proto::parse_job(std::string_view("{\"v\":1,")), "invalid JSON");
  expect_refused(proto::parse_job(std::string_view("\"\xff\"")), "invalid JSON");
  auto job = proto::parse_job(json::serialize(read_example("job")));
  ASSERT_TRUE(job);
  EXPECT_EQ(job->timeout_s, 900);
}

TEST(proto_parse, deployment_events) {
  auto status = proto::parse_deployment_event(read_example("status_event"));
  ASSERT_TRUE(status) << status.error().message;
  ASSERT_TRUE(std::holds_alternative<proto::status_event>(*status));
  EXPECT_EQ(std::get<proto::status_event>(*status).status, proto::deployment_status::failed);
  auto alias = proto::parse_deployment_event(json::serialize(read_example("alias_event")));
  ASSERT_TRUE(alias) << alias.error().message;
  ASSERT_TRUE(std::holds_alternative<proto::alias_event>(*alias));
  EXPECT_EQ(std::get<proto::alias_event>(*alias).alias, "shop");

  json::value v = read_example("alias_event");
  v.as_object()["type"] = "rename";
  expect_refused(proto::parse_deployment_event(v), "field 'type' must be one of status, alias");
  v.as_object()["v"] = 2;
  expect_refused(proto::parse_deployment_event(v), "field 'v' must be 1");
  v = read_example("alias_event");
  v.as_object().erase("alias");
  expect_refused(proto::parse_deployment_event(v), "field 'alias' is missing");
}

// Events written before phases existed have none, and stay readable.
TEST(proto_log_event, phase_is_optional) {
  json::value v = read_example("log_event");
  EXPECT_EQ(proto::parse_log_event(v)->phase, proto::log_phase::build);
  v.as_object().erase("phase");
  auto e = proto::parse_log_event(v);
  ASSERT_TRUE(e) << e.error().message;
  EXPECT_FALSE(e->phase);
  EXPECT_FALSE(json::value_from(*e).as_object().contains("phase"));
  for (auto p : {proto::log_phase::clone, proto::log_phase::go_live}) {
    EXPECT_EQ(proto::parse_log_phase(proto::to_string(p)), p);
  }
}

TEST(proto_log_event, fast_serializer_equals_boost_json) {
  proto::log_event e{"01jh5k7q3x9m2c8r4t6v0w1y3z", 0, 1764000001234, proto::log_stream::out, ""};
  const std::string lines[] = {
      "",
      "vite v5.4.0 building for production...",
      "tab\there \"quoted\" back\\slash\r\n\x01\x1f\x7f",
      "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x9a\x80",          // valid multi-byte UTF-8
      "bad \xff\xfe bytes \xc3 cut \xe2\x9c",               // invalid UTF-8
      "overlong \xc0\xaf surrogate \xed\xa0\x80 big \xf5",  // invalid too
      std::string("nul \0 inside", 12),
  };
  for (auto stream : {proto::log_stream::out, proto::log_stream::err, proto::log_stream::system}) {
    for (const auto& line : lines) {
      e.stream = stream;
      e.line = line;
      e.seq = std::numeric_limits<int64_t>::max();
      std::string fast = proto::to_json(e);
      boost::system::error_code ec;
      json::value parsed = json::parse(fast, ec);
      ASSERT_FALSE(ec) << fast;
      EXPECT_EQ(parsed, json::value_from(e)) << fast;
      // Byte-for-byte equal to Boost.JSON's serializer where escaping rules coincide.
      if (line.find('\x7f') == std::string::npos) {
        EXPECT_EQ(fast, json::serialize(json::value_from(e)));
      }
      auto back = proto::parse_log_event(fast);
      ASSERT_TRUE(back) << back.error().message;
      EXPECT_EQ(back->line, json::value_to<std::string>(parsed.at("line")));
    }
  }
  // The phase, when there is one, is the last field.
  e.phase = proto::log_phase::restore_cache;
  EXPECT_EQ(proto::to_json(e), json::serialize(json::value_from(e)));
  EXPECT_EQ(proto::parse_log_event(proto::to_json(e))->phase, proto::log_phase::restore_cache);
  // append_json appends: several events may share one buffer.
  std::string buffer = "x";
  proto::append_json(buffer, e);
  EXPECT_EQ(buffer, "x" + proto::to_json(e));
}
