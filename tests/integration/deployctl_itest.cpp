// deployctl against a real api-server binary and a real redis-server: the commands' output and
// exit codes (0 ok, 1 failed, 2 bad input, 3 API unreachable). No worker runs, so deployments
// stay queued; the tests move them on by writing the records as a worker would.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>

#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"

namespace {

using dp::test::run_result;

class deployctl : public ::testing::Test {
 protected:
  void SetUp() override { start_api(); }

  // The first start listens on port 0 and reads back the port; a restart takes the same port
  // again, since a running deployctl holds the URL.
  void start_api() {
    api_.emplace(
        dp::test::process_options{.argv = {API_SERVER_BIN},
                                  .env = {{"REDIS_URL", redis_.url()},
                                          {"API_LISTEN", "127.0.0.1:" + std::to_string(port_)},
                                          {"STORAGE_URL", "file://" + files_.path().string()},
                                          {"LOG_FORMAT", "json"},
                                          {"LOG_LEVEL", "info"}}});
    port_ = dp::test::reported_port(*api_);
  }

  // A log line as a worker writes it to the logbook.
  void log_line(const std::string& id, int seq, int ts, const std::string& line) {
    redis({"XADD", "dp:logbook:" + id, std::to_string(seq) + "-0", "e",
           "{\"deployment_id\":\"" + id + "\",\"seq\":" + std::to_string(seq) + ",\"ts_ms\":" +
               std::to_string(ts) + ",\"stream\":\"system\",\"line\":\"" + line + "\"}"});
  }

  run_result cli(std::vector<std::string> args, std::string api_url = {}) {
    args.insert(args.begin(), DEPLOYCTL_BIN);
    return dp::test::run(std::move(args),
                         {{"DEPLOYCTL_API_URL",
                           api_url.empty() ? "http://127.0.0.1:" + std::to_string(port_) : api_url},
                          {"NO_COLOR", "1"}},
                         {}, std::chrono::seconds(30));
  }

  // The id in "deployment <id> of ..." printed by deploy.
  static std::string id_in(const std::string& out) {
    std::smatch m;
    if (std::regex_search(out, m, std::regex("deployment ([0-9a-z]{26})"))) {
      return m[1];
    }
    ADD_FAILURE() << "no deployment id in: " << out;
    return {};
  }

  void redis(std::vector<std::string> argv) {
    auto r = dp::test::redis_command(redis_.port(), argv);
    ASSERT_TRUE(r) << argv[0] << ": " << r.error().message;
  }

  static size_t lines(const std::string& s) { return std::count(s.begin(), s.end(), '\n'); }

  dp::test::redis_server redis_;
  dp::test::temp_dir files_{"dp-cli-files"};
  uint16_t port_ = 0;
  std::optional<dp::test::child_process> api_;
};

TEST_F(deployctl, deploy_of_a_git_url_is_queued_and_listed) {
  auto d = cli({"deploy", "https://example.com/acme/shop.git", "--follow=false"});
  ASSERT_EQ(d.exit_code, 0) << d.output;
  auto id = id_in(d.output);
  EXPECT_NE(d.output.find("of shop is queued"), std::string::npos) << d.output;

  auto ls = cli({"ls"});
  EXPECT_EQ(ls.exit_code, 0) << ls.output;
  EXPECT_NE(ls.output.find("shop"), std::string::npos) << ls.output;
  EXPECT_NE(ls.output.find("https://example.com/acme/shop.git"), std::string::npos);

  auto lsp = cli({"ls", "--project", "shop"});
  EXPECT_EQ(lsp.exit_code, 0) << lsp.output;
  EXPECT_NE(lsp.output.find(id + " queued"), std::string::npos) << lsp.output;
}

TEST_F(deployctl, branches_targets_and_env_per_target) {
  auto prod = cli({"deploy", "https://example.com/acme/shop.git", "--follow=false"});
  ASSERT_EQ(prod.exit_code, 0) << prod.output;
  auto preview = cli(
      {"deploy", "https://example.com/acme/shop.git", "--branch", "feature/x", "--follow=false"});
  ASSERT_EQ(preview.exit_code, 0) << preview.output;
  auto ls = cli({"ls", "--project", "shop"});
  EXPECT_EQ(ls.exit_code, 0) << ls.output;
  EXPECT_NE(ls.output.find(id_in(preview.output) + " queued     preview    feature/x"),
            std::string::npos)
      << ls.output;
  EXPECT_NE(ls.output.find(id_in(prod.output) + " queued     production"), std::string::npos)
      << ls.output;
  auto trigger = dp::test::redis_command(
      redis_.port(), {"HGET", "dp:deployment:" + id_in(preview.output), "trigger"});
  ASSERT_TRUE(trigger) << trigger.error().message;
  EXPECT_EQ(*trigger, "cli");

  auto set =
      cli({"env", "shop", "API=https://staging.example.com", "DEBUG=1", "--target", "preview"});
  EXPECT_EQ(set.exit_code, 0) << set.output;
  EXPECT_EQ(cli({"env", "shop", "DEBUG=", "--target", "preview"}).exit_code, 0);
  EXPECT_EQ(cli({"env", "shop", "API=https://api.example.com"}).exit_code, 0);
  auto preview_env = cli({"env", "shop", "--target", "preview"});
  EXPECT_EQ(preview_env.output, "API=https://staging.example.com\n");
  EXPECT_EQ(cli({"env", "shop"}).output, "API=https://api.example.com\n");
  EXPECT_EQ(cli({"env", "shop", "--target", "production"}).output, "");
  EXPECT_EQ(cli({"env", "shop", "--target", "staging"}).exit_code, 2);
  EXPECT_EQ(cli({"env", "nope"}).exit_code, 1);
}

// The exact commit travels to the deployment; the project's switches and fork env are set and
// shown through the real API.
TEST_F(deployctl, exact_commit_forks_shadowing_and_fork_env) {
  const std::string sha = "0123456789abcdef0123456789abcdef01234567";
  auto d = cli({"deploy", "https://example.com/acme/shop.git", "--commit", sha, "--follow=false"});
  ASSERT_EQ(d.exit_code, 0) << d.output;
  auto commit = dp::test::redis_command(redis_.port(),
                                        {"HGET", "dp:deployment:" + id_in(d.output), "commit"});
  ASSERT_TRUE(commit) << commit.error().message;
  EXPECT_EQ(*commit, sha);
  EXPECT_EQ(cli({"deploy", "https://example.com/acme/shop.git", "--commit", "abc"}).exit_code, 2);

  EXPECT_EQ(cli({"forks", "shop"}).output, "off\n");
  auto on = cli({"forks", "shop", "on"});
  EXPECT_EQ(on.exit_code, 0) << on.output;
  EXPECT_EQ(cli({"forks", "shop"}).output, "on\n");
  EXPECT_EQ(cli({"shadowing", "shop"}).output, "files\n");
  auto rules = cli({"shadowing", "shop", "rules"});
  EXPECT_EQ(rules.exit_code, 0) << rules.output;
  EXPECT_EQ(cli({"shadowing", "shop"}).output, "rules\n");
  EXPECT_EQ(cli({"shadowing", "nope", "rules"}).exit_code, 1);
  EXPECT_EQ(
      cli({"env", "shop", "PUBLIC_API=https://api.example.com", "--target", "fork"}).exit_code, 0);
  EXPECT_EQ(cli({"env", "shop", "--target", "fork"}).output,
            "PUBLIC_API=https://api.example.com\n");
  EXPECT_EQ(cli({"env", "shop"}).output, "");
}

TEST_F(deployctl, deploy_without_cache_and_cache_clear) {
  auto d = cli({"deploy", "https://example.com/acme/shop.git", "--no-cache", "--follow=false"});
  ASSERT_EQ(d.exit_code, 0) << d.output;
  auto id = id_in(d.output);
  // Recorded on the deployment (a container build reads it back from there).
  auto cache = dp::test::redis_command(redis_.port(), {"HGET", "dp:deployment:" + id, "cache"});
  ASSERT_TRUE(cache) << cache.error().message;
  EXPECT_EQ(*cache, "off");

  auto archive = files_.path() / "__cache" / "shop" / "modules-0123abcd.tar.zst";
  std::filesystem::create_directories(archive.parent_path());
  std::ofstream(archive) << "archive";
  auto clear = cli({"cache", "clear", "shop"});
  EXPECT_EQ(clear.exit_code, 0) << clear.output;
  EXPECT_EQ(clear.output, "build cache of shop emptied (1 objects removed)\n");
  EXPECT_FALSE(std::filesystem::exists(archive));
  auto unknown = cli({"cache", "clear", "nope"});
  EXPECT_EQ(unknown.exit_code, 1) << unknown.output;
}

TEST_F(deployctl, bad_input_exits_2_with_one_line) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"deploy"},
           {"nonsense"},
           {"deploy", "/no/such/directory-for-deployctl"},
           {"ls", "--no-such-flag"},
           {"deploy", "ssh://example.com/acme/shop.git", "--follow=false"},  // refused by the API
           {"deploy", "https://example.com/a/b.git", "--project", "Not A Name",
            "--follow=false"}}) {
    auto r = cli(args);
    EXPECT_EQ(r.exit_code, 2) << args[0] << ": " << r.output;
    EXPECT_EQ(lines(r.output), 1u) << r.output;
    EXPECT_EQ(r.output.rfind("deployctl: ", 0), 0u) << r.output;
  }
  auto bad_url = cli({"ls"}, "ftp://127.0.0.1:1");
  EXPECT_EQ(bad_url.exit_code, 2) << bad_url.output;
  EXPECT_EQ(lines(bad_url.output), 1u) << bad_url.output;
}

TEST_F(deployctl, unreachable_api_exits_3) {
  auto port = dp::test::free_port();
  auto r = cli({"ls"}, "http://127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_EQ(lines(r.output), 1u) << r.output;
  EXPECT_NE(r.output.find("cannot reach the API"), std::string::npos) << r.output;
}

TEST_F(deployctl, cancel_then_logs_follow_to_the_final_status) {
  auto id = id_in(cli({"deploy", "https://example.com/acme/shop.git", "--follow=false"}).output);
  // Two lines in the logbook, as a worker writes them.
  log_line(id, 1, 1000, "cloning https://x (ref main)");
  log_line(id, 2, 2500, "cloned commit abc in 1.5 s");

  auto c = cli({"cancel", id});
  EXPECT_EQ(c.exit_code, 0) << c.output;
  EXPECT_NE(c.output.find(id + " is canceled"), std::string::npos) << c.output;

  auto again = cli({"cancel", id});
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_EQ(again.output, "deployctl: deployment " + id + " is already canceled\n");

  auto logs = cli({"logs", id});
  EXPECT_EQ(logs.exit_code, 0) << logs.output;
  EXPECT_EQ(logs.output, "-- cloning https://x (ref main)\n-- cloned commit abc in 1.5 s\n");

  auto follow = cli({"logs", id, "-f"});
  EXPECT_EQ(follow.exit_code, 1) << follow.output;
  EXPECT_NE(follow.output.find("-- cloned commit abc in 1.5 s\n==> cloning    1.5 s\n"),
            std::string::npos)
      << follow.output;
  EXPECT_NE(follow.output.find("==> canceled"), std::string::npos) << follow.output;

  auto missing = cli({"logs", "01jh5k7q3x9m2c8r4t6v0w1y3z"});
  EXPECT_EQ(missing.exit_code, 1) << missing.output;
  EXPECT_EQ(lines(missing.output), 1u) << missing.output;
}

TEST_F(deployctl, promote_and_rollback) {
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto d = cli({"deploy", "https://example.com/acme/shop.git", "--follow=false"});
    ASSERT_EQ(d.exit_code, 0) << d.output;
    ids.push_back(id_in(d.output));
  }
  auto refused = cli({"promote", "shop", ids[0]});
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_NE(refused.output.find("only a ready deployment can be promoted"), std::string::npos)
      << refused.output;

  auto nothing = cli({"rollback", "shop"});
  EXPECT_EQ(nothing.exit_code, 1) << nothing.output;
  EXPECT_NE(nothing.output.find("nothing in production"), std::string::npos) << nothing.output;

  // ids[0] and ids[2] ready, ids[1] failed: a rollback from ids[2] skips ids[1].
  redis({"HSET", "dp:deployment:" + ids[0], "status", "ready"});
  redis({"HSET", "dp:deployment:" + ids[1], "status", "failed"});
  redis({"HSET", "dp:deployment:" + ids[2], "status", "ready"});
  auto p = cli({"promote", "shop", ids[2]});
  EXPECT_EQ(p.exit_code, 0) << p.output;
  EXPECT_NE(p.output.find(ids[2] + " is now in production for shop"), std::string::npos)
      << p.output;

  auto r = cli({"rollback", "shop"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("rolled back shop from " + ids[2] + " to " + ids[0]), std::string::npos)
      << r.output;
  auto ls = cli({"ls", "--project", "shop"});
  EXPECT_NE(ls.output.find("* " + ids[0]), std::string::npos) << ls.output;

  auto none = cli({"rollback", "shop"});
  EXPECT_EQ(none.exit_code, 1) << none.output;
  EXPECT_NE(none.output.find("no ready deployment older than"), std::string::npos) << none.output;
}

TEST_F(deployctl, follow_resumes_after_the_api_restarts) {
  auto id = id_in(cli({"deploy", "https://example.com/acme/shop.git", "--follow=false"}).output);
  log_line(id, 1, 1000, "first line");
  dp::test::child_process follow(
      {.argv = {DEPLOYCTL_BIN, "logs", id, "-f"},
       .env = {{"DEPLOYCTL_API_URL", "http://127.0.0.1:" + std::to_string(port_)}}});
  ASSERT_TRUE(dp::test::eventually([&] {
    return follow.log_text().find("first line") != std::string::npos;
  })) << follow.log_text();

  // The stream drops; while the API is away the build goes on and ends.
  api_.reset();
  log_line(id, 2, 2000, "second line");
  redis({"HSET", "dp:deployment:" + id, "status", "failed", "error", "it broke"});
  start_api();
  EXPECT_EQ(follow.wait(), 1) << follow.log_text();
  auto out = follow.log_text();
  EXPECT_EQ(out.find("first line"), out.rfind("first line")) << "repeated after resume: " << out;
  EXPECT_NE(out.find("-- second line\n==> failed: it broke"), std::string::npos) << out;
}

}  // namespace

namespace {

// The secret after "Secret:" / the hook path after "curl -X POST <api>".
std::string match(const std::string& out, const std::string& pattern) {
  std::smatch m;
  if (std::regex_search(out, m, std::regex(pattern))) {
    return m[1];
  }
  ADD_FAILURE() << "no match for " << pattern << " in: " << out;
  return {};
}

TEST_F(deployctl, link_prints_the_webhook_url_and_a_secret_the_api_verifies_with) {
  auto r = cli({"link", "shop", "https://github.com/acme/shop.git"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto url = "http://127.0.0.1:" + std::to_string(port_) + "/v1/webhooks/github/shop";
  EXPECT_NE(r.output.find("Payload URL:  " + url), std::string::npos) << r.output;
  auto secret = match(r.output, "Secret: +([0-9a-f]{64})");
  auto stored =
      dp::test::redis_command(redis_.port(), {"HGET", "dp:project:shop:webhook", "secret"});
  ASSERT_TRUE(stored);
  EXPECT_EQ(*stored, secret);
  // Again: the same project, a new secret.
  auto again = cli({"link", "shop", "https://github.com/acme/shop.git"});
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(match(again.output, "Secret: +([0-9a-f]{64})"), secret);
  // Another repository under the same name is refused.
  auto other = cli({"link", "shop", "https://github.com/acme/other.git"});
  EXPECT_EQ(other.exit_code, 1) << other.output;
}

TEST_F(deployctl, hooks_create_ls_use_and_rm) {
  ASSERT_EQ(cli({"link", "shop", "https://example.com/acme/shop.git"}).exit_code, 0);
  auto made = cli({"hooks", "create", "staging", "--project", "shop"});
  ASSERT_EQ(made.exit_code, 0) << made.output;
  auto id = match(made.output, "hook (hook_[0-9a-f]+) deploys staging of shop");
  auto path = match(made.output, "curl -X POST http://127.0.0.1:[0-9]+(/v1/hooks/[0-9a-f]{64})");
  auto ls = cli({"hooks", "ls", "--project", "shop"});
  EXPECT_EQ(ls.exit_code, 0) << ls.output;
  EXPECT_NE(ls.output.find(id), std::string::npos) << ls.output;
  EXPECT_EQ(ls.output.find(path.substr(10)), std::string::npos) << "ls shows no secret";
  auto used = dp::test::http_request(port_, "POST", path);
  ASSERT_TRUE(used);
  EXPECT_EQ(used->status, 202) << used->body;
  auto rm = cli({"hooks", "rm", id, "--project", "shop"});
  EXPECT_EQ(rm.exit_code, 0) << rm.output;
  EXPECT_EQ(rm.output, "hook " + id + " of shop revoked\n");
  auto gone = dp::test::http_request(port_, "POST", path);
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->status, 404);
  EXPECT_EQ(cli({"hooks", "rm", id, "--project", "shop"}).exit_code, 1);
  EXPECT_EQ(cli({"hooks", "ls"}).exit_code, 2);
}

}  // namespace
