// POST /v1/deployments with a tar.gz body (deployctl deploy <directory>): stored under
// __sources/<id>.tar.gz, the job carries source_archive, the project is created without a git
// URL; 400 for a body that is not gzip or no project, 413 over the limit, and JSON keeps 1 MiB.
#include "api_itest_support.hpp"
#include "dp/proto/storage_layout.hpp"

namespace {

using namespace dp::api::test;

// The smallest valid gzip stream (of an empty input) followed by arbitrary bytes: the API checks
// the gzip magic only; the build reads the rest.
std::string gzip_body(size_t extra) {
  std::string s("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00",
                20);
  s.append(extra, 'z');
  return s;
}

class archive_upload : public ::testing::Test {
 protected:
  dp::test::http_response upload(const std::string& target, const std::string& body,
                                 const std::string& type = "application/gzip") {
    return s_.request("POST", target, body, {{"content-type", type}});
  }
  std::string job_text() {
    auto r = s_.on_io([&]() -> asio::awaitable<dp::result<dp::redis::reply>> {
      std::vector<std::string> cmd{"LINDEX", s_.records().keys().queue(), "0"};
      co_return co_await s_.redis().exec(std::move(cmd));
    });
    return r && r->is_string() ? std::string(r->as_string()) : std::string();
  }
  std::string stored(const std::string& key) {
    return s_.on_io([&]() -> asio::awaitable<std::string> {
      auto g = co_await s_.storage().get(key);
      if (!g) {
        co_return "<missing>";
      }
      auto body = co_await g->read_all();
      co_return body ? *body : "<unreadable>";
    });
  }

  // A small SOURCE_MAX_MB keeps the 413 case cheap.
  api_server s_{server_setup{.source_max_bytes = 2 * 1024 * 1024}};
};

TEST_F(archive_upload, stored_and_queued_with_source_archive) {
  auto body = gzip_body(1536 * 1024);  // over the JSON limit, under SOURCE_MAX_MB
  auto r = upload("/v1/deployments?project=site", body);
  ASSERT_EQ(r.status, 202) << r.body;
  auto d = body_of(r);
  std::string id(d.at("id").as_string());
  EXPECT_EQ(d.at("project").as_string(), "site");
  EXPECT_EQ(d.at("git_url").as_string(), "");
  EXPECT_EQ(d.at("status").as_string(), "queued");
  EXPECT_EQ(stored(dp::proto::source_archive_key(id)), body);

  auto job = dp::proto::parse_job(std::string_view(job_text()));
  ASSERT_TRUE(job) << job.error().message;
  EXPECT_EQ(job->deployment_id, id);
  EXPECT_EQ(job->source_archive, dp::proto::source_archive_key(id));
  EXPECT_EQ(job->git_url, "");

  // The project exists, without a git URL; a JSON deploy of it is refused until it has one.
  auto p = s_.request("GET", "/v1/projects/site");
  ASSERT_EQ(p.status, 200) << p.body;
  EXPECT_EQ(body_of(p).at("git_url").as_string(), "");
  auto json_deploy = s_.request("POST", "/v1/deployments", R"({"project":"site"})");
  EXPECT_EQ(json_deploy.status, 409) << json_deploy.body;
  EXPECT_NE(json_deploy.body.find("no git URL"), std::string::npos) << json_deploy.body;

  // A second upload reuses the project; deleting a deployment removes its archive.
  auto again = upload("/v1/deployments?project=site", gzip_body(10));
  ASSERT_EQ(again.status, 202) << again.body;
  std::string second(body_of(again).at("id").as_string());
  EXPECT_EQ(s_.request("POST", "/v1/deployments/" + second + "/cancel").status, 202);
  EXPECT_EQ(s_.request("DELETE", "/v1/deployments/" + second).status, 204);
  EXPECT_EQ(stored(dp::proto::source_archive_key(second)), "<missing>");
}

TEST_F(archive_upload, bad_uploads) {
  auto not_gzip = upload("/v1/deployments?project=site", std::string(100, 'x'));
  EXPECT_EQ(not_gzip.status, 400) << not_gzip.body;
  EXPECT_EQ(error_code_of(not_gzip), "invalid_argument");
  EXPECT_NE(not_gzip.body.find("not a gzip archive"), std::string::npos) << not_gzip.body;

  auto no_project = upload("/v1/deployments", gzip_body(10));
  EXPECT_EQ(no_project.status, 400) << no_project.body;
  auto bad_name = upload("/v1/deployments?project=Not_A_Name", gzip_body(10));
  EXPECT_EQ(bad_name.status, 400) << bad_name.body;

  auto too_big = upload("/v1/deployments?project=site", gzip_body(3 * 1024 * 1024));
  EXPECT_EQ(too_big.status, 413) << too_big.body.substr(0, 200);

  // JSON bodies keep the 1 MiB limit on this route.
  std::string big_json = R"({"project":"site","ref":")" + std::string(1024 * 1024, 'a') + "\"}";
  auto json_big = s_.request("POST", "/v1/deployments", big_json);
  EXPECT_EQ(json_big.status, 413);
  EXPECT_EQ(error_code_of(json_big), "too_large");

  // Nothing was created by the refused uploads.
  EXPECT_EQ(s_.request("GET", "/v1/projects/site").status, 404);
}

}  // namespace
