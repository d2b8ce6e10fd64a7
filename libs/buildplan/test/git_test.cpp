#include "dp/buildplan/git.hpp"

#include <gtest/gtest.h>

using namespace dp::buildplan;

namespace {
const std::vector<std::string> https_only = {"https"};
const std::vector<std::string> https_file = {"https", "file"};

std::string refusal(std::string_view url, const std::vector<std::string>& allowed) {
  auto r = check_git_url(url, allowed);
  return r ? std::string() : r.error().message;
}
}  // namespace

TEST(GitUrl, AcceptsAllowedProtocols) {
  EXPECT_EQ(check_git_url("https://github.com/acme/shop", https_only).value(), "https");
  EXPECT_EQ(check_git_url("HTTPS://github.com/acme/shop.git", https_only).value(), "https");
  EXPECT_EQ(check_git_url("https://user:tok@git.example.com:8443/a/b", https_only).value(),
            "https");
  EXPECT_EQ(check_git_url("file:///srv/repos/shop", https_file).value(), "file");
  EXPECT_EQ(check_git_url("http://127.0.0.1:3000/x.git", {"http"}).value(), "http");
}

TEST(GitUrl, RefusesWithClearReasons) {
  EXPECT_NE(refusal("", https_only), "");
  EXPECT_NE(refusal("ssh://git@github.com/acme/shop", {"https", "ssh"}).find("ssh"),
            std::string::npos);
  EXPECT_NE(refusal("git+ssh://github.com/acme/shop", https_only).find("ssh"), std::string::npos);
  EXPECT_NE(refusal("git@github.com:acme/shop.git", https_only).find("scp-like"),
            std::string::npos);
  EXPECT_NE(refusal("ext::sh -c touch% /tmp/pwned", https_only).find("whitespace"),
            std::string::npos);
  EXPECT_NE(refusal("ext::sh", https_only).find("transport helpers"), std::string::npos);
  EXPECT_NE(refusal("fd::17", https_only).find("transport helpers"), std::string::npos);
  EXPECT_NE(refusal("ext::https://github.com/x", https_only).find("scheme"), std::string::npos);
  EXPECT_NE(refusal("-uhttps://x", https_only).find("'-'"), std::string::npos);
  EXPECT_NE(refusal("--upload-pack=touch /tmp/x", https_only).find("'-'"), std::string::npos);
  EXPECT_NE(refusal("https://github.com/a\nb", https_only).find("control"), std::string::npos);
  EXPECT_NE(refusal("https://github.com/a b", https_only).find("whitespace"), std::string::npos);
  EXPECT_NE(refusal("file:///srv/repo", https_only).find("not allowed here"), std::string::npos);
  EXPECT_NE(refusal("/srv/repo", https_file).find("not a URL"), std::string::npos);
  EXPECT_NE(refusal("ftp://example.com/x", https_only).find("not supported"), std::string::npos);
  EXPECT_NE(refusal("https:///nohost", https_only).find("host"), std::string::npos);
  EXPECT_NE(refusal("https://-oProxyCommand=x/y", https_only).find("host"), std::string::npos);
  EXPECT_NE(refusal("file://remotehost/srv/repo", https_file).find("absolute path"),
            std::string::npos);
}

TEST(GitUrl, RefusalNeverShowsCredentials) {
  auto msg = refusal("http://user:s3cret@example.com/x", https_only);
  EXPECT_NE(msg, "");
  EXPECT_EQ(msg.find("s3cret"), std::string::npos) << msg;
}

TEST(GitRef, AcceptsUsualRefs) {
  for (const char* r : {"main", "feature/login", "v1.2.3", "release-2024.01", "a_b"}) {
    EXPECT_TRUE(check_git_ref(r)) << r;
  }
}

TEST(GitRef, RefusesWhatGitWouldNot) {
  for (const char* r :
       {"",     "-main", "--upload-pack=x", "a..b", "a b", "a~1", "a^", "a:b",    "a?",   "a*",
        "a[",   "a\\b",  "a@{1}",           "@",    "/a",  "a/",  "a.", "a.lock", "a/.b", "a//b",
        "a\x01"}) {
    EXPECT_FALSE(check_git_ref(r)) << r;
  }
}

TEST(Redact, UrlCredentials) {
  EXPECT_EQ(redact_url("https://user:token@host/x"), "https://***@host/x");
  EXPECT_EQ(redact_url("https://ghp_abc123@github.com/a/b.git"), "https://***@github.com/a/b.git");
  EXPECT_EQ(redact_url("https://host/x@y"), "https://host/x@y");  // '@' in the path is no secret
  EXPECT_EQ(redact_url("https://github.com/acme/shop"), "https://github.com/acme/shop");
  EXPECT_EQ(redact_url("https://a:b@c@host"), "https://***@host");
}

TEST(Redact, InsideText) {
  EXPECT_EQ(redact_text("fatal: unable to access 'https://u:p4ss@git.example.com/r.git/': 403"),
            "fatal: unable to access 'https://***@git.example.com/r.git/': 403");
  EXPECT_EQ(redact_text("from https://a:1@x and http://b:2@y."),
            "from https://***@x and http://***@y.");
  EXPECT_EQ(redact_text("Password for 'https://user@host':"), "Password for 'https://***@host':");
  EXPECT_EQ(redact_text("no urls here: a@b"), "no urls here: a@b");
  EXPECT_EQ(redact_text("ends with https://u:p@h"), "ends with https://***@h");
}

TEST(GitArgv, CloneHasNoHooksAndOnlyAllowedProtocols) {
  auto argv = git_clone_argv({"https://github.com/acme/shop", "main", "/w/repo", https_file});
  std::vector<std::string> expected = {"git",
                                       "-c",
                                       "core.hooksPath=/dev/null",
                                       "-c",
                                       "core.fsmonitor=false",
                                       "-c",
                                       "advice.detachedHead=false",
                                       "-c",
                                       "protocol.allow=never",
                                       "-c",
                                       "protocol.https.allow=always",
                                       "-c",
                                       "protocol.file.allow=always",
                                       "clone",
                                       "--depth",
                                       "1",
                                       "--single-branch",
                                       "--no-tags",
                                       "--branch",
                                       "main",
                                       "--",
                                       "https://github.com/acme/shop",
                                       "/w/repo"};
  EXPECT_EQ(argv, expected);
  auto no_ref = git_clone_argv({"https://h/x", "", "/w/repo", {"https", "ssh"}});
  EXPECT_EQ(std::count(no_ref.begin(), no_ref.end(), "--branch"), 0);
  EXPECT_EQ(std::count(no_ref.begin(), no_ref.end(), "protocol.ssh.allow=always"), 0);
}

// A named commit or a pull request's ref: the same protections as the clone, the url and what
// to fetch after "--", and a checkout that cannot read the commit as a path.
TEST(GitArgv, FetchAndCheckoutOfACommit) {
  const std::string sha(40, 'a');
  auto by_id = git_fetch_argv({"https://h/x", sha, "/w/repo", 1, 0, https_file});
  std::vector<std::string> tail(by_id.end() - 9, by_id.end());
  EXPECT_EQ(tail, (std::vector<std::string>{"-C", "/w/repo", "fetch", "--no-tags", "--depth", "1",
                                            "--", "https://h/x", sha}));
  EXPECT_EQ(std::count(by_id.begin(), by_id.end(), "core.hooksPath=/dev/null"), 1);
  EXPECT_EQ(std::count(by_id.begin(), by_id.end(), "protocol.allow=never"), 1);
  auto since =
      git_fetch_argv({"https://h/x", "refs/heads/main", "/w/repo", 0, 1764000000, https_file});
  EXPECT_EQ(std::count(since.begin(), since.end(), "--shallow-since=@1764000000"), 1);
  EXPECT_EQ(std::count(since.begin(), since.end(), "--depth"), 0);
  EXPECT_EQ(since.back(), "refs/heads/main");
  EXPECT_EQ(
      git_checkout_argv("/w/repo", sha),
      (std::vector<std::string>{"git", "-C", "/w/repo", "checkout", "-q", "--detach", sha, "--"}));
  EXPECT_EQ(git_is_ancestor_argv("/w/repo", sha),
            (std::vector<std::string>{"git", "-C", "/w/repo", "merge-base", "--is-ancestor", sha,
                                      "FETCH_HEAD"}));
  EXPECT_EQ(git_init_argv("/w/repo"),
            (std::vector<std::string>{"git", "init", "-q", "--", "/w/repo"}));
}

TEST(GitEnv, NoPromptsNoConfig) {
  auto env = git_env("/w/home");
  EXPECT_EQ(env.at("HOME"), "/w/home");
  EXPECT_EQ(env.at("GIT_TERMINAL_PROMPT"), "0");
  EXPECT_EQ(env.at("GIT_CONFIG_NOSYSTEM"), "1");
  EXPECT_EQ(env.at("GIT_CONFIG_GLOBAL"), "/dev/null");
}
