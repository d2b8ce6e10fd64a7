// The build cache through the API: DELETE /v1/projects/{name}/cache removes everything under
// __cache/<project>/ and nothing of another project; no_cache reaches the job (JSON body and
// archive query); deleting a project removes its cache.
#include "api_itest_support.hpp"
#include "dp/proto/json.hpp"
#include "dp/proto/storage_layout.hpp"

namespace {

using namespace dp::api::test;

class build_cache : public ::testing::Test {
 protected:
  void put(const std::string& key) {
    auto r = s_.on_io([&]() -> asio::awaitable<bool> {
      // Named arguments: g++ 12 frees a temporary argument of a co_await twice.
      std::string k = key, body = "archive";
      dp::storage::put_options po;
      auto p = co_await s_.storage().put_buffer(std::move(k), std::move(body), std::move(po));
      co_return static_cast<bool>(p);
    });
    ASSERT_TRUE(r) << key;
  }
  bool exists(const std::string& key) {
    return s_.on_io([&]() -> asio::awaitable<bool> {
      auto h = co_await s_.storage().head(key);
      co_return static_cast<bool>(h);
    });
  }
  std::optional<dp::proto::job> queued_job() {
    auto r = s_.on_io([&]() -> asio::awaitable<dp::result<dp::redis::reply>> {
      std::vector<std::string> cmd{"LINDEX", s_.records().keys().queue(), "0"};
      co_return co_await s_.redis().exec(std::move(cmd));
    });
    if (!r || !r->is_string()) {
      return std::nullopt;
    }
    auto j = dp::proto::parse_job(std::string_view(r->as_string()));
    return j ? std::optional(*j) : std::nullopt;
  }

  api_server s_;
};

TEST_F(build_cache, delete_empties_the_projects_cache_only) {
  ASSERT_EQ(
      s_.request("POST", "/v1/projects", R"({"name":"site","git_url":"https://e.x/a.git"})").status,
      201);
  ASSERT_EQ(s_.request("POST", "/v1/projects", R"({"name":"site2","git_url":"https://e.x/b.git"})")
                .status,
            201);
  put(dp::proto::cache_index_key("site"));
  put(dp::proto::cache_object_key("site", "modules-0123456789abcdef.tar.zst"));
  put(dp::proto::cache_object_key("site2", "store-0123456789abcdef.tar.zst"));

  auto r = s_.request("DELETE", "/v1/projects/site/cache");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_of(r).at("removed").as_int64(), 2);
  EXPECT_FALSE(exists(dp::proto::cache_index_key("site")));
  EXPECT_FALSE(exists(dp::proto::cache_object_key("site", "modules-0123456789abcdef.tar.zst")));
  EXPECT_TRUE(exists(dp::proto::cache_object_key("site2", "store-0123456789abcdef.tar.zst")));
  // Empty already: nothing more to remove.
  EXPECT_EQ(body_of(s_.request("DELETE", "/v1/projects/site/cache")).at("removed").as_int64(), 0);
  EXPECT_EQ(s_.request("DELETE", "/v1/projects/nope/cache").status, 404);

  // Deleting the project takes its cache too.
  ASSERT_EQ(s_.request("DELETE", "/v1/projects/site2").status, 204);
  EXPECT_FALSE(exists(dp::proto::cache_object_key("site2", "store-0123456789abcdef.tar.zst")));
}

TEST_F(build_cache, no_cache_reaches_the_job) {
  ASSERT_EQ(s_.request("POST", "/v1/projects",
                       R"({"name":"site","git_url":"https://e.x/a.git","branch":"main"})")
                .status,
            201);
  auto plain = s_.request("POST", "/v1/deployments", R"({"project":"site"})");
  ASSERT_EQ(plain.status, 202) << plain.body;
  auto j = queued_job();
  ASSERT_TRUE(j);
  EXPECT_FALSE(j->no_cache);
  EXPECT_EQ(j->production_branch, "main");

  auto cold = s_.request("POST", "/v1/deployments", R"({"project":"site","no_cache":true})");
  ASSERT_EQ(cold.status, 202) << cold.body;
  j = queued_job();
  ASSERT_TRUE(j);
  EXPECT_TRUE(j->no_cache);
  // On the record too, where a container build (build-runner --deployment) reads it.
  EXPECT_EQ(body_of(cold).at("cache").as_string(), "off");
  EXPECT_FALSE(body_of(plain).as_object().contains("cache") &&
               body_of(plain).at("cache").is_string());

  auto bad = s_.request("POST", "/v1/deployments", R"({"project":"site","no_cache":"yes"})");
  EXPECT_EQ(bad.status, 400);
}

}  // namespace
