// Signatures against GitHub's published example and each forge's scheme; events against the
// forges' documented example payloads in tests/fixtures/webhooks (SOURCE.md says where each is
// from); commit status requests against the forges' documented REST shapes.
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "dp/forge/event.hpp"
#include "dp/forge/signature.hpp"
#include "dp/forge/status.hpp"

namespace {

using namespace dp::forge;

std::string fixture(const std::string& name) {
  const char* root = std::getenv("DP_SOURCE_DIR");
  std::ifstream in(std::string(root ? root : ".") + "/tests/fixtures/webhooks/" + name,
                   std::ios::binary);
  EXPECT_TRUE(in) << name;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

event parsed(provider p, std::string_view name, const std::string& body) {
  auto e = parse_event(p, name, body);
  EXPECT_TRUE(e) << (e ? "" : e.error().message);
  return e ? *e : event{};
}

// docs.github.com, "Validating webhook deliveries", "Testing the webhook payload validation".
TEST(ForgeSignature, GitHubsPublishedExample) {
  EXPECT_EQ(hmac_sha256_hex("It's a Secret to Everybody", "Hello, World!"),
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
  EXPECT_TRUE(verify(provider::github, "It's a Secret to Everybody",
                     "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
                     "Hello, World!"));
}

TEST(ForgeSignature, GitHubRefusesAnythingElse) {
  const std::string secret = "It's a Secret to Everybody";
  const std::string good =
      "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
  // A changed body, a changed secret, no prefix, a truncated value, a missing header.
  for (auto [s, sig, body] :
       std::vector<std::tuple<std::string, std::optional<std::string>, std::string>>{
           {secret, good, "Hello, World?"},
           {"It's a secret to everybody", good, "Hello, World!"},
           {secret, good.substr(7), "Hello, World!"},
           {secret, good.substr(0, good.size() - 1), "Hello, World!"},
           {secret, std::nullopt, "Hello, World!"}}) {
    auto r = verify(provider::github, s, sig, body);
    ASSERT_FALSE(r) << body;
    EXPECT_TRUE(r.error().is(dp::errc::unauthorized));
  }
}

TEST(ForgeSignature, GiteaSignsTheBodyInHex) {
  auto body = fixture("gitea-push.json");
  auto sig = hmac_sha256_hex("s3cret", body);
  EXPECT_TRUE(verify(provider::gitea, "s3cret", sig, body));
  EXPECT_FALSE(verify(provider::gitea, "s3cret", "sha256=" + sig, body));
  EXPECT_FALSE(verify(provider::gitea, "s3cret", sig, body + " "));
  EXPECT_FALSE(verify(provider::gitea, "s3cret", std::nullopt, body));
}

TEST(ForgeSignature, GitLabSendsTheSecretItself) {
  EXPECT_TRUE(verify(provider::gitlab, "tok3n", "tok3n", "{}"));
  EXPECT_FALSE(verify(provider::gitlab, "tok3n", "tok3", "{}"));
  EXPECT_FALSE(verify(provider::gitlab, "tok3n", "tok3n ", "{}"));
  EXPECT_FALSE(verify(provider::gitlab, "tok3n", std::nullopt, "{}"));
}

TEST(ForgeSignature, ConstantTimeEqualNeedsTheSameLength) {
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
  EXPECT_TRUE(constant_time_equal("", ""));
}

TEST(ForgeSignature, Providers) {
  EXPECT_EQ(parse_provider("github"), provider::github);
  EXPECT_EQ(parse_provider("gitlab"), provider::gitlab);
  EXPECT_EQ(parse_provider("gitea"), provider::gitea);
  EXPECT_FALSE(parse_provider("GitHub"));
  EXPECT_FALSE(parse_provider("bitbucket"));
  EXPECT_EQ(headers_of(provider::gitlab).delivery, "x-gitlab-event-uuid");
}

TEST(ForgeEvent, GitHubPushOfANewBranch) {
  auto e = parsed(provider::github, "push", fixture("github-push-with-new-branch.json"));
  EXPECT_EQ(e.kind, event_kind::push);
  EXPECT_EQ(e.branch, "master");
  EXPECT_EQ(e.commit, "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
  EXPECT_EQ(e.commit_message, "Initial commit");
  EXPECT_EQ(e.commit_author, "Codertocat");
  EXPECT_EQ(e.repository, "Codertocat/Hello-World");
  EXPECT_EQ(e.default_branch, "master");
}

TEST(ForgeEvent, GitHubTagPushIsIgnored) {
  auto e = parsed(provider::github, "push", fixture("github-push-tag-deleted.json"));
  EXPECT_EQ(e.kind, event_kind::ignored);
  EXPECT_NE(e.ignored_because.find("refs/tags/simple-tag"), std::string::npos);
}

TEST(ForgeEvent, GitHubPushThatDeletesABranch) {
  // The documented deletion is of a tag; the same push naming a branch deletes the branch.
  auto body = fixture("github-push-tag-deleted.json");
  auto v = boost::json::parse(body);
  v.as_object()["ref"] = "refs/heads/feature/x";
  auto e = parsed(provider::github, "push", boost::json::serialize(v));
  EXPECT_EQ(e.kind, event_kind::branch_deleted);
  EXPECT_EQ(e.branch, "feature/x");
  EXPECT_EQ(e.commit, "");
}

TEST(ForgeEvent, GitHubDeleteEvent) {
  auto e = parsed(provider::github, "delete",
                  R"({"ref":"feature/x","ref_type":"branch","repository":{"full_name":"o/r"}})");
  EXPECT_EQ(e.kind, event_kind::branch_deleted);
  EXPECT_EQ(e.branch, "feature/x");
  EXPECT_EQ(parsed(provider::github, "delete", R"({"ref":"v1","ref_type":"tag"})").kind,
            event_kind::ignored);
}

TEST(ForgeEvent, GitHubPullRequestActions) {
  for (auto [file, kind] : std::vector<std::pair<std::string, event_kind>>{
           {"github-pull_request-opened.json", event_kind::pull_request_updated},
           {"github-pull_request-synchronize.json", event_kind::pull_request_updated},
           {"github-pull_request-reopened.json", event_kind::pull_request_updated},
           {"github-pull_request-closed.json", event_kind::pull_request_closed}}) {
    auto e = parsed(provider::github, "pull_request", fixture(file));
    EXPECT_EQ(e.kind, kind) << file;
    EXPECT_EQ(e.pull_request, 2) << file;
    EXPECT_EQ(e.branch, "changes") << file;
    EXPECT_EQ(e.commit, "ec26c3e57ca3a959ca5aad62de7213c562f8c821") << file;
    EXPECT_EQ(e.commit_message, "Update the README with new information.") << file;
    EXPECT_EQ(e.commit_author, "Codertocat") << file;
  }
  auto labeled = R"({"action":"labeled","number":2,"pull_request":{}})";
  EXPECT_EQ(parsed(provider::github, "pull_request", labeled).kind, event_kind::ignored);
}

TEST(ForgeEvent, GitHubPingAndOthers) {
  EXPECT_EQ(parsed(provider::github, "ping", fixture("github-ping.json")).kind, event_kind::ping);
  EXPECT_EQ(parsed(provider::github, "issues", "{}").kind, event_kind::ignored);
}

TEST(ForgeEvent, GitLabPush) {
  auto e = parsed(provider::gitlab, "Push Hook", fixture("gitlab-push.json"));
  EXPECT_EQ(e.kind, event_kind::push);
  EXPECT_EQ(e.branch, "master");
  EXPECT_EQ(e.commit, "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
  EXPECT_EQ(e.commit_message, "fixed readme");
  EXPECT_EQ(e.commit_author, "GitLab dev user");
  EXPECT_EQ(e.repository, "mike/diaspora");
  EXPECT_EQ(e.default_branch, "master");
}

TEST(ForgeEvent, GitLabPushThatDeletesABranch) {
  auto v = boost::json::parse(fixture("gitlab-push.json"));
  v.as_object()["after"] = "0000000000000000000000000000000000000000";
  v.as_object()["checkout_sha"] = nullptr;
  auto e = parsed(provider::gitlab, "Push Hook", boost::json::serialize(v));
  EXPECT_EQ(e.kind, event_kind::branch_deleted);
  EXPECT_EQ(e.branch, "master");
}

TEST(ForgeEvent, GitLabMergeRequestActions) {
  auto body = fixture("gitlab-merge_request-open.json");
  auto e = parsed(provider::gitlab, "Merge Request Hook", body);
  EXPECT_EQ(e.kind, event_kind::pull_request_updated);
  EXPECT_EQ(e.pull_request, 1);
  EXPECT_EQ(e.branch, "ms-viewport");
  EXPECT_EQ(e.commit, "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
  EXPECT_EQ(e.commit_message, "MS-Viewport");
  EXPECT_EQ(e.repository, "gitlabhq/gitlab-test");
  auto with = [&](std::string action, bool oldrev) {
    auto v = boost::json::parse(body);
    auto& attrs = v.as_object()["object_attributes"].as_object();
    attrs["action"] = action;
    if (oldrev) {
      attrs["oldrev"] = "95790bf891e76fee5e1747ab589903a6a1f80f22";
    }
    return parsed(provider::gitlab, "Merge Request Hook", boost::json::serialize(v)).kind;
  };
  EXPECT_EQ(with("reopen", false), event_kind::pull_request_updated);
  EXPECT_EQ(with("update", true), event_kind::pull_request_updated);
  // An update without new commits (a title, a label) builds nothing.
  EXPECT_EQ(with("update", false), event_kind::ignored);
  EXPECT_EQ(with("close", false), event_kind::pull_request_closed);
  EXPECT_EQ(with("merge", false), event_kind::pull_request_closed);
  EXPECT_EQ(with("approved", false), event_kind::ignored);
  EXPECT_EQ(parsed(provider::gitlab, "Tag Push Hook", "{}").kind, event_kind::ignored);
}

TEST(ForgeEvent, GiteaPushAndPullRequest) {
  auto push = parsed(provider::gitea, "push", fixture("gitea-push.json"));
  EXPECT_EQ(push.kind, event_kind::push);
  EXPECT_EQ(push.branch, "develop");
  EXPECT_EQ(push.commit, "bffeb74224043ba2feb48d137756c8a9331c449a");
  EXPECT_EQ(push.commit_message, "Webhooks Yay!");
  EXPECT_EQ(push.commit_author, "Gitea");
  EXPECT_EQ(push.repository, "gitea/webhooks");

  auto body = fixture("gitea-pull_request-opened.json");
  auto pr = parsed(provider::gitea, "pull_request", body);
  EXPECT_EQ(pr.kind, event_kind::pull_request_updated);
  EXPECT_EQ(pr.pull_request, 7);
  EXPECT_EQ(pr.branch, "feature/about");
  auto with = [&](std::string action) {
    auto v = boost::json::parse(body);
    v.as_object()["action"] = action;
    return parsed(provider::gitea, "pull_request", boost::json::serialize(v)).kind;
  };
  EXPECT_EQ(with("synchronized"), event_kind::pull_request_updated);
  EXPECT_EQ(with("reopened"), event_kind::pull_request_updated);
  EXPECT_EQ(with("closed"), event_kind::pull_request_closed);
  EXPECT_EQ(with("edited"), event_kind::ignored);
}

// A pull request's head in another repository: a fork, built (if at all) from the base
// repository's pull request ref. The same repository's pull requests are not.
TEST(ForgeEvent, PullRequestsFromForks) {
  struct fork_case {
    provider forge;
    std::string event, same, fork, ref;
  };
  for (const auto& c :
       {fork_case{provider::github, "pull_request", "github-pull_request-opened.json",
                  "github-pull_request-opened-from-fork.json", "refs/pull/2/head"},
        fork_case{provider::gitlab, "Merge Request Hook", "gitlab-merge_request-open.json",
                  "gitlab-merge_request-open-from-fork.json", "refs/merge-requests/1/head"},
        fork_case{provider::gitea, "pull_request", "gitea-pull_request-opened.json",
                  "gitea-pull_request-opened-from-fork.json", "refs/pull/7/head"}}) {
    auto same = parsed(c.forge, c.event, fixture(c.same));
    EXPECT_EQ(same.kind, event_kind::pull_request_updated) << c.same;
    EXPECT_FALSE(same.fork) << c.same;
    EXPECT_EQ(same.pull_ref, c.ref) << c.same;
    auto fork = parsed(c.forge, c.event, fixture(c.fork));
    EXPECT_EQ(fork.kind, event_kind::pull_request_updated) << c.fork;
    EXPECT_TRUE(fork.fork) << c.fork;
    EXPECT_EQ(fork.pull_ref, c.ref) << c.fork;
    EXPECT_EQ(fork.commit, same.commit) << c.fork;
  }
  // A deleted fork: head.repo is null.
  auto v = boost::json::parse(fixture("github-pull_request-opened.json"));
  v.as_object()["pull_request"].as_object()["head"].as_object()["repo"] = nullptr;
  EXPECT_TRUE(parsed(provider::github, "pull_request", boost::json::serialize(v)).fork);
}

// The commit a push or pull request names goes on git's command line: a full sha or nothing.
TEST(ForgeEvent, CommitsMustBeFullShas) {
  auto v = boost::json::parse(fixture("github-push-with-new-branch.json"));
  for (auto bad : {"6113728f", "--upload-pack=x", "6113728F27AE82C7B1A177C8D03F9E96E0ADF246"}) {
    v.as_object()["after"] = bad;
    auto e = parse_event(provider::github, "push", boost::json::serialize(v));
    ASSERT_FALSE(e) << bad;
    EXPECT_TRUE(e.error().is(dp::errc::invalid_argument));
  }
  auto pr = boost::json::parse(fixture("github-pull_request-opened.json"));
  pr.as_object()["pull_request"].as_object()["head"].as_object()["sha"] = "-x";
  EXPECT_FALSE(parse_event(provider::github, "pull_request", boost::json::serialize(pr)));
}

TEST(ForgeEvent, MalformedBodiesAreInvalidArguments) {
  for (auto body : {"", "[]", "not json", R"({"ref":"refs/heads/main"})"}) {
    auto e = parse_event(provider::github, "push", body);
    ASSERT_FALSE(e) << body;
    EXPECT_TRUE(e.error().is(dp::errc::invalid_argument));
  }
  EXPECT_FALSE(parse_event(provider::github, "pull_request", R"({"action":"opened"})"));
  EXPECT_FALSE(parse_event(provider::gitlab, "Merge Request Hook", R"({"object_kind":"x"})"));
}

TEST(ForgeStatus, GitHubRequest) {
  auto r = commit_status_request({provider::github, "http://127.0.0.1:9/", "o/r", "tok"}, "abc",
                                 commit_state::failure, "https://x.example", "build failed");
  EXPECT_EQ(r.url, "http://127.0.0.1:9/repos/o/r/statuses/abc");
  auto body = boost::json::parse(r.body).as_object();
  EXPECT_EQ(body["state"], "failure");
  EXPECT_EQ(body["target_url"], "https://x.example");
  EXPECT_EQ(body["context"], "deploy-platform");
  EXPECT_EQ(r.headers[0], (std::pair<std::string, std::string>{"authorization", "Bearer tok"}));
}

TEST(ForgeStatus, GitLabRequest) {
  auto r = commit_status_request({provider::gitlab, "http://h/api/v4", "group/project", "tok"},
                                 "abc", commit_state::failure, "https://x.example", "failed");
  EXPECT_EQ(r.url, "http://h/api/v4/projects/group%2Fproject/statuses/abc");
  auto body = boost::json::parse(r.body).as_object();
  EXPECT_EQ(body["state"], "failed");
  EXPECT_EQ(body["name"], "deploy-platform");
  EXPECT_EQ(r.headers[0], (std::pair<std::string, std::string>{"private-token", "tok"}));
}

TEST(ForgeStatus, GiteaRequest) {
  auto r = commit_status_request({provider::gitea, "http://h/api/v1", "o/r", "tok"}, "abc",
                                 commit_state::pending, "https://x.example", "building");
  EXPECT_EQ(r.url, "http://h/api/v1/repos/o/r/statuses/abc");
  EXPECT_EQ(boost::json::parse(r.body).as_object()["state"], "pending");
  EXPECT_EQ(r.headers[0], (std::pair<std::string, std::string>{"authorization", "token tok"}));
}

// A canceled or superseded build: GitLab's own state; GitHub and Gitea have none, so `error`.
TEST(ForgeStatus, CanceledIsErrorExceptOnGitLab) {
  auto state_of = [](provider p) {
    auto r = commit_status_request({p, "http://h", "o/r", "tok"}, "abc", commit_state::canceled,
                                   "https://x.example", "canceled: superseded");
    return std::string(boost::json::parse(r.body).as_object()["state"].as_string());
  };
  EXPECT_EQ(state_of(provider::github), "error");
  EXPECT_EQ(state_of(provider::gitlab), "canceled");
  EXPECT_EQ(state_of(provider::gitea), "error");
}

// GitHub refuses a description over 140 characters: cut, never inside a UTF-8 character.
TEST(ForgeStatus, DescriptionIsCutAt140Bytes) {
  std::string long_text = std::string(139, 'x') + "\xc3\xa9tail";
  auto r = commit_status_request({provider::github, "http://h", "o/r", "tok"}, "abc",
                                 commit_state::failure, "https://x.example", long_text);
  auto d = boost::json::parse(r.body).as_object()["description"].as_string();
  EXPECT_EQ(std::string(d), std::string(139, 'x'));
}

}  // namespace
