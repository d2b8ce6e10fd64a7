// deployctl's logic without a process: the command line, the SSE parser and what is printed.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <filesystem>
#include <sstream>

#include "dp/cli/args.hpp"
#include "dp/cli/render.hpp"
#include "dp/cli/sse.hpp"

namespace {

using dp::cli::command;
using dp::cli::flags;
using dp::cli::parse_command;
using dp::cli::sse_event;
using dp::cli::sse_parser;
using dp::cli::verb;

dp::result<command> parse(std::vector<std::string> words, flags f = {}, bool tty = false) {
  return parse_command(words, f, tty);
}

TEST(cli_args, deploy_git_url_with_flags) {
  auto c = parse({"deploy", "https://example.com/acme/shop.git"}, {.project = "shop", .ref = "v2"});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->what, verb::deploy);
  EXPECT_EQ(c->target, "https://example.com/acme/shop.git");
  EXPECT_FALSE(c->target_is_directory);
  EXPECT_EQ(c->project, "shop");
  EXPECT_EQ(c->ref, "v2");
  EXPECT_FALSE(c->follow);
}

TEST(cli_args, deploy_branch) {
  auto c = parse({"deploy", "https://x/y"}, {.branch = "feature/x"});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->ref, "feature/x");
  auto both = parse({"deploy", "https://x/y"}, {.ref = "a", .branch = "b"});
  ASSERT_FALSE(both);
  EXPECT_NE(both.error().message.find("--branch"), std::string::npos);
  auto dir = parse({"deploy", std::filesystem::temp_directory_path().string()}, {.branch = "b"});
  ASSERT_FALSE(dir);
  EXPECT_NE(dir.error().message.find("--branch applies to a git URL"), std::string::npos);
  auto ls = parse({"ls"}, {.branch = "b"});
  ASSERT_FALSE(ls);
  EXPECT_NE(ls.error().message.find("ls does not take --branch"), std::string::npos);
}

TEST(cli_args, protect) {
  auto show = parse({"protect", "shop"});
  ASSERT_TRUE(show);
  EXPECT_EQ(show->what, verb::protect);
  EXPECT_EQ(show->protection_scope, "");
  auto set = parse({"protect", "shop", "previews", "alice"});
  ASSERT_TRUE(set);
  EXPECT_EQ(set->protection_scope, "previews");
  EXPECT_EQ(set->protection_user, "alice");
  EXPECT_TRUE(parse({"protect", "shop", "off"}));
  EXPECT_FALSE(parse({"protect", "shop", "off", "alice"}));
  EXPECT_FALSE(parse({"protect", "shop", "everything"}));
  EXPECT_FALSE(parse({"protect"}));
}

TEST(cli_args, env) {
  auto list = parse({"env", "shop"});
  ASSERT_TRUE(list) << list.error().message;
  EXPECT_EQ(list->what, verb::env);
  EXPECT_EQ(list->target, "shop");
  EXPECT_EQ(list->env_field, "env");
  EXPECT_TRUE(list->env_changes.empty());
  auto set = parse({"env", "shop", "API=https://staging", "OLD="}, {.target = "preview"});
  ASSERT_TRUE(set) << set.error().message;
  EXPECT_EQ(set->env_field, "preview_env");
  ASSERT_EQ(set->env_changes.size(), 2u);
  EXPECT_EQ(set->env_changes[0].first, "API");
  EXPECT_EQ(set->env_changes[0].second, "https://staging");
  EXPECT_EQ(set->env_changes[1].first, "OLD");
  EXPECT_FALSE(set->env_changes[1].second);
  EXPECT_FALSE(parse({"env"}));
  EXPECT_FALSE(parse({"env", "shop", "=x"}));
  EXPECT_FALSE(parse({"env", "shop", "NOEQUALS"}));
  EXPECT_FALSE(parse({"env", "shop"}, {.target = "staging"}));
  EXPECT_FALSE(parse({"ls"}, {.target = "preview"}));
}

TEST(cli_args, env_of_fork_builds) {
  auto fork = parse({"env", "shop", "PUBLIC=1"}, {.target = "fork"});
  ASSERT_TRUE(fork) << fork.error().message;
  EXPECT_EQ(fork->env_field, "fork_env");
  auto bad = parse({"env", "shop"}, {.target = "forks"});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("production, preview or fork"), std::string::npos);
}

TEST(cli_args, deploy_exact_commit) {
  const std::string sha = "0123456789abcdef0123456789abcdef01234567";
  auto c = parse({"deploy", "https://x/y"}, {.branch = "main", .commit = sha});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->commit, sha);
  EXPECT_EQ(c->ref, "main");
  EXPECT_FALSE(parse({"deploy", "https://x/y"})->commit);
  EXPECT_TRUE(parse({"deploy", "https://x/y"}, {.commit = std::string(64, 'f')}));
  for (const std::string& wrong :
       std::vector<std::string>{"abc123", "0123456789ABCDEF0123456789ABCDEF01234567", sha + "0"}) {
    auto refused = parse({"deploy", "https://x/y"}, {.commit = wrong});
    ASSERT_FALSE(refused) << wrong;
    EXPECT_NE(refused.error().message.find("--commit must be a full commit sha"),
              std::string::npos);
  }
  auto dir = parse({"deploy", std::filesystem::temp_directory_path().string()}, {.commit = sha});
  ASSERT_FALSE(dir);
  EXPECT_NE(dir.error().message.find("--commit applies to a git URL"), std::string::npos);
  auto ls = parse({"ls"}, {.commit = sha});
  ASSERT_FALSE(ls);
  EXPECT_NE(ls.error().message.find("ls does not take --commit"), std::string::npos);
}

TEST(cli_args, forks_and_shadowing) {
  auto show = parse({"forks", "shop"});
  ASSERT_TRUE(show) << show.error().message;
  EXPECT_EQ(show->what, verb::forks);
  EXPECT_EQ(show->target, "shop");
  EXPECT_EQ(show->setting, "");
  auto on = parse({"forks", "shop", "on"});
  ASSERT_TRUE(on);
  EXPECT_EQ(on->setting, "on");
  EXPECT_TRUE(parse({"forks", "shop", "off"}));
  EXPECT_FALSE(parse({"forks", "shop", "true"}));
  EXPECT_FALSE(parse({"forks"}));
  EXPECT_FALSE(parse({"forks", "shop", "on", "more"}));
  EXPECT_FALSE(parse({"forks", "shop", "on"}, {.project = "shop"}));

  auto rules = parse({"shadowing", "shop", "rules"});
  ASSERT_TRUE(rules) << rules.error().message;
  EXPECT_EQ(rules->what, verb::shadowing);
  EXPECT_EQ(rules->setting, "rules");
  EXPECT_EQ(parse({"shadowing", "shop"})->setting, "");
  EXPECT_TRUE(parse({"shadowing", "shop", "files"}));
  auto wrong = parse({"shadowing", "shop", "on"});
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message.find("shadowing <project> [files | rules]"), std::string::npos);
}

TEST(cli_args, deploy_follows_by_default_on_a_terminal_only) {
  EXPECT_TRUE(parse({"deploy", "https://x/y"}, {}, true)->follow);
  EXPECT_FALSE(parse({"deploy", "https://x/y"}, {}, false)->follow);
  EXPECT_FALSE(parse({"deploy", "https://x/y"}, {.follow = false}, true)->follow);
  EXPECT_TRUE(parse({"deploy", "https://x/y"}, {.follow = true}, false)->follow);
  EXPECT_TRUE(parse({"deploy", "https://x/y", "-f"})->follow);
}

TEST(cli_args, deploy_directory) {
  auto dir = std::filesystem::temp_directory_path();
  auto c = parse({"deploy", dir.string()});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->target_is_directory);
  auto with_ref = parse({"deploy", dir.string()}, {.ref = "main"});
  ASSERT_FALSE(with_ref);
  EXPECT_NE(with_ref.error().message.find("--ref"), std::string::npos);
  auto missing = parse({"deploy", "/no/such/dir-for-deployctl"});
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is(dp::errc::invalid_argument));
  EXPECT_NE(missing.error().message.find("neither a git URL nor a directory"), std::string::npos);
}

TEST(cli_args, no_cache_and_cache_clear) {
  auto cold = parse({"deploy", "https://x/y"}, {.no_cache = true});
  ASSERT_TRUE(cold) << cold.error().message;
  EXPECT_TRUE(cold->no_cache);
  EXPECT_FALSE(parse({"deploy", "https://x/y"})->no_cache);
  auto ls = parse({"ls"}, {.no_cache = true});
  ASSERT_FALSE(ls);
  EXPECT_NE(ls.error().message.find("--no-cache"), std::string::npos);

  auto clear = parse({"cache", "clear", "shop"});
  ASSERT_TRUE(clear) << clear.error().message;
  EXPECT_EQ(clear->what, verb::cache_clear);
  EXPECT_EQ(clear->target, "shop");
  EXPECT_FALSE(parse({"cache", "purge", "shop"}));
  EXPECT_FALSE(parse({"cache", "clear"}));
  EXPECT_FALSE(parse({"cache", "clear", "shop"}, {.project = "shop"}));
}

TEST(cli_args, git_url_detection) {
  EXPECT_TRUE(dp::cli::looks_like_git_url("https://github.com/a/b"));
  EXPECT_TRUE(dp::cli::looks_like_git_url("ssh://git@host/a/b"));
  EXPECT_TRUE(dp::cli::looks_like_git_url("git@github.com:a/b.git"));
  EXPECT_FALSE(dp::cli::looks_like_git_url("./site"));
  EXPECT_FALSE(dp::cli::looks_like_git_url("/srv/site"));
}

TEST(cli_args, other_verbs) {
  auto ls = parse({"ls"}, {.project = "shop"});
  ASSERT_TRUE(ls);
  EXPECT_EQ(ls->what, verb::ls);
  EXPECT_EQ(ls->project, "shop");
  auto logs = parse({"logs", "01jh5k7q3x9m2c8r4t6v0w1y3z", "-f"});
  ASSERT_TRUE(logs);
  EXPECT_EQ(logs->what, verb::logs);
  EXPECT_EQ(logs->target, "01jh5k7q3x9m2c8r4t6v0w1y3z");
  EXPECT_TRUE(logs->follow);
  EXPECT_FALSE(parse({"logs", "x"})->follow);
  auto promote = parse({"promote", "shop", "01jh5k7q3x9m2c8r4t6v0w1y3z"});
  ASSERT_TRUE(promote);
  EXPECT_EQ(promote->target, "shop");
  EXPECT_EQ(promote->deployment_id, "01jh5k7q3x9m2c8r4t6v0w1y3z");
  EXPECT_EQ(parse({"rollback", "shop"})->what, verb::rollback);
  EXPECT_EQ(parse({"cancel", "x"})->what, verb::cancel);
}

TEST(cli_args, domains) {
  auto add = parse({"domains", "add", "shop", "shop.example.com"});
  ASSERT_TRUE(add);
  EXPECT_EQ(add->what, verb::domains_add);
  EXPECT_EQ(add->target, "shop");
  EXPECT_EQ(add->domain, "shop.example.com");
  auto ls = parse({"domains", "ls", "shop"});
  ASSERT_TRUE(ls);
  EXPECT_EQ(ls->what, verb::domains_ls);
  EXPECT_EQ(ls->target, "shop");
  EXPECT_EQ(parse({"domains", "rm", "shop", "a.example.com"})->what, verb::domains_rm);
  EXPECT_EQ(parse({"domains", "verify", "shop", "a.example.com"})->what, verb::domains_verify);
  EXPECT_EQ(parse({"domains", "primary", "shop", "a.example.com"})->what, verb::domains_primary);
  auto for_branch = parse({"domains", "add", "shop", "a.example.com"}, {.branch = "staging"});
  ASSERT_TRUE(for_branch);
  EXPECT_EQ(for_branch->ref, std::optional<std::string>("staging"));
  auto serve = parse({"domains", "serve", "shop", "a.example.com"});
  ASSERT_TRUE(serve);
  EXPECT_EQ(serve->what, verb::domains_serve);
  EXPECT_EQ(serve->ref, std::nullopt);
  EXPECT_FALSE(parse({"domains", "verify", "shop", "a.example.com"}, {.branch = "staging"}));
}

TEST(cli_args, bad_input_is_one_line) {
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"frobnicate"},
      {"deploy"},
      {"deploy", "https://a/b", "https://c/d"},
      {"ls", "extra"},
      {"logs"},
      {"promote", "shop"},
      {"rollback"},
      {"cancel", "a", "b"},
      {"cancel", "-x", "a"},
      {"domains"},
      {"domains", "frob", "shop", "a.example.com"},
      {"domains", "add", "shop"},
      {"domains", "ls"},
      {"domains", "ls", "shop", "extra"},
  };
  for (const auto& words : bad) {
    auto c = parse(words);
    ASSERT_FALSE(c) << (words.empty() ? "" : words[0]);
    EXPECT_TRUE(c.error().is(dp::errc::invalid_argument));
    EXPECT_EQ(c.error().message.find('\n'), std::string::npos) << c.error().message;
  }
  EXPECT_FALSE(parse({"cancel", "x"}, {.project = "shop"}));
  EXPECT_FALSE(parse({"ls"}, {.follow = true}));
  EXPECT_FALSE(parse({"promote", "a", "b", "-f"}));
}

TEST(cli_sse, events_ids_and_comments) {
  sse_parser p;
  auto ev =
      p.feed(": keepalive\n\nevent: log\nid: 7\ndata: {\"seq\":7}\n\nevent: status\ndata: {}\n\n");
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0], (sse_event{.event = "log", .data = "{\"seq\":7}", .id = "7"}));
  EXPECT_EQ(ev[1].event, "status");
  EXPECT_EQ(ev[1].data, "{}");
  EXPECT_FALSE(ev[1].id);
  EXPECT_EQ(p.last_event_id(), "7");
}

TEST(cli_sse, multi_line_data_and_default_event) {
  sse_parser p;
  auto ev = p.feed("data: one\ndata:two\ndata\n\n");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].event, "message");
  EXPECT_EQ(ev[0].data, "one\ntwo\n");
}

TEST(cli_sse, every_split_gives_the_same_events) {
  const std::string text =
      "event: log\r\nid: 1\r\ndata: a\r\n\r\n:c\r\nevent: log\rid: 2\rdata: b\rdata: c\r\r"
      "event: log\nid: 3\ndata: d\n\n";
  sse_parser whole;
  auto expected = whole.feed(text);
  ASSERT_EQ(expected.size(), 3u);
  EXPECT_EQ(expected[1].data, "b\nc");
  for (size_t cut1 = 0; cut1 <= text.size(); ++cut1) {
    for (size_t cut2 = cut1; cut2 <= text.size(); cut2 += 7) {
      sse_parser p;
      auto got = p.feed(text.substr(0, cut1));
      for (auto& e : p.feed(text.substr(cut1, cut2 - cut1))) {
        got.push_back(std::move(e));
      }
      for (auto& e : p.feed(text.substr(cut2))) {
        got.push_back(std::move(e));
      }
      ASSERT_EQ(got, expected) << "cuts at " << cut1 << " and " << cut2;
      EXPECT_EQ(p.last_event_id(), "3");
    }
  }
}

TEST(cli_sse, one_byte_at_a_time_and_unfinished_event) {
  const std::string text = "event: log\ndata: x\n\nevent: log\ndata: never ended\n";
  sse_parser p;
  std::vector<sse_event> got;
  for (char c : text) {
    for (auto& e : p.feed(std::string_view(&c, 1))) {
      got.push_back(std::move(e));
    }
  }
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].data, "x");
}

dp::proto::log_event line(int64_t seq, int64_t ts, dp::proto::log_stream s, std::string text) {
  return {.deployment_id = "d", .seq = seq, .ts_ms = ts, .stream = s, .line = std::move(text)};
}

TEST(cli_render, log_lines_with_and_without_colors) {
  using dp::proto::log_stream;
  EXPECT_EQ(dp::cli::render_log(line(1, 0, log_stream::out, "hello"), false), "hello\n");
  EXPECT_EQ(dp::cli::render_log(line(1, 0, log_stream::err, "oops"), false), "oops\n");
  EXPECT_EQ(dp::cli::render_log(line(1, 0, log_stream::system, "cloning x"), false),
            "-- cloning x\n");
  EXPECT_EQ(dp::cli::render_log(line(1, 0, log_stream::err, "oops"), true),
            "\x1b[31moops\x1b[0m\n");
  EXPECT_EQ(dp::cli::render_log(line(1, 0, log_stream::system, "s"), true), "\x1b[2m-- s\x1b[0m\n");
}

TEST(cli_render, durations) {
  using std::chrono::milliseconds;
  EXPECT_EQ(dp::cli::format_duration(milliseconds(340)), "340 ms");
  EXPECT_EQ(dp::cli::format_duration(milliseconds(1250)), "1.2 s");
  EXPECT_EQ(dp::cli::format_duration(milliseconds(125'000)), "2 min 05 s");
}

TEST(cli_render, one_progress_line_per_finished_phase) {
  using dp::proto::log_stream;
  dp::cli::phase_tracker t;
  std::vector<std::string> printed;
  const std::vector<dp::proto::log_event> events = {
      line(1, 1000, log_stream::system, "cloning https://x/y (ref main)"),
      line(2, 1100, log_stream::out, "cloned commit abc"),  // not a system line: ignored
      line(3, 2200, log_stream::system, "cloned commit abc in 1.2 s"),
      line(4, 2300, log_stream::system, "install: running `npm ci`"),
      line(5, 5300, log_stream::system, "install finished in 3.0 s"),
      line(6, 5400, log_stream::system, "build: running `npm run build`"),
      line(7, 5500, log_stream::err, "warning"),
      line(8, 9400, log_stream::system, "build finished in 4.0 s"),
      line(9, 9500, log_stream::system, "validated 3 files, 2 kB"),
      line(10, 9700, log_stream::system, "uploaded 3 files (2 kB) to __outputs/x/ in 0.2 s"),
  };
  for (const auto& e : events) {
    if (auto p = t.feed(e, false)) {
      printed.push_back(*p);
    }
  }
  ASSERT_EQ(printed.size(), 4u);
  EXPECT_EQ(printed[0], "==> cloning    1.2 s\n");
  EXPECT_EQ(printed[1], "==> installing 3.0 s\n");
  EXPECT_EQ(printed[2], "==> building   4.0 s\n");
  EXPECT_EQ(printed[3], "==> uploading  200 ms\n");

  dp::cli::phase_tracker upload;
  EXPECT_FALSE(
      upload.feed(line(1, 0, log_stream::system, "unpacking the uploaded source x"), false));
  EXPECT_EQ(upload.feed(line(2, 40, log_stream::system, "unpacked 3 files (1 kB) in 0.0 s"), false),
            "==> unpacking  40 ms\n");
}

TEST(cli_render, result_and_tables) {
  dp::cli::deployment_view v;
  v.d.id = "01jh5k7q3x9m2c8r4t6v0w1y3z";
  v.d.project = "shop";
  v.d.status = dp::proto::deployment_status::ready;
  v.d.created_at = 1'764'000'000'000;
  v.d.finished_at = 1'764'000'009'000;
  v.url = "http://shop-6v0w1y3z.localhost:8000";
  v.alias_url = "http://shop.localhost:8000";
  EXPECT_EQ(dp::cli::render_result(v, false),
            "==> ready in 9.0 s\n"
            "    url:        http://shop-6v0w1y3z.localhost:8000\n"
            "    production: http://shop.localhost:8000\n");
  v.d.status = dp::proto::deployment_status::failed;
  v.d.error = "build (`npm run build`) failed: exited with code 1";
  EXPECT_EQ(dp::cli::render_result(v, false),
            "==> failed in 9.0 s: build (`npm run build`) failed: exited with code 1\n");

  v.d.status = dp::proto::deployment_status::ready;
  v.d.target = dp::proto::deployment_target::preview;
  v.preview_urls = {"http://shop--feature-x.localhost:8000", "http://shop--pr-7.localhost:8000"};
  EXPECT_EQ(dp::cli::render_result(v, false),
            "==> ready in 9.0 s\n"
            "    url:        http://shop-6v0w1y3z.localhost:8000\n"
            "    preview:    http://shop--feature-x.localhost:8000\n"
            "    preview:    http://shop--pr-7.localhost:8000\n");
  v.d.branch = "feature/x";
  v.d.pull_request = 7;
  v.d.commit = "3f9c2a7d1e4b8c6a0f5d2e9b";
  auto preview_table = dp::cli::render_deployments({v}, std::nullopt);
  EXPECT_NE(preview_table.find("ready      preview    #7 feature/x"), std::string::npos)
      << preview_table;
  EXPECT_NE(preview_table.find("3f9c2a7d1e4b"), std::string::npos) << preview_table;
  v.d = {.id = v.d.id,
         .project = "shop",
         .status = dp::proto::deployment_status::failed,
         .created_at = 1'764'000'000'000,
         .finished_at = 1'764'000'009'000};

  auto table = dp::cli::render_deployments({v}, v.d.id);
  EXPECT_NE(table.find("* 01jh5k7q3x9m2c8r4t6v0w1y3z failed"), std::string::npos) << table;
  EXPECT_NE(table.find("2025-11-24 16:00:00"), std::string::npos) << table;
  v.d.pruned_at = 1764000000000;
  table = dp::cli::render_deployments({v}, std::nullopt);
  EXPECT_NE(table.find("01jh5k7q3x9m2c8r4t6v0w1y3z pruned"), std::string::npos) << table;
  dp::cli::project_view p{
      {.name = "shop", .git_url = "https://x/shop", .created_at = 0}, 2'500'000, 1'500'000};
  auto projects = dp::cli::render_projects({p});
  EXPECT_NE(projects.find("shop"), std::string::npos);
  EXPECT_NE(projects.find("https://x/shop"), std::string::npos);
  EXPECT_NE(projects.find("CACHE"), std::string::npos) << projects;
  EXPECT_NE(projects.find("2.5 MB    1.5 MB"), std::string::npos) << projects;
  EXPECT_EQ(dp::cli::render_projects({}).find("no projects"), 0u);
  p.p.git_url.clear();
  p.stored_bytes.reset();
  EXPECT_NE(dp::cli::render_projects({p}).find("(uploaded directories)"), std::string::npos);
}

}  // namespace

namespace {

TEST(cli_args, hooks_and_link) {
  auto ls = parse({"hooks", "ls"}, {.project = "shop"});
  ASSERT_TRUE(ls);
  EXPECT_EQ(ls->what, dp::cli::verb::hooks_ls);
  auto create = parse({"hooks", "create", "staging"}, {.project = "shop"});
  ASSERT_TRUE(create);
  EXPECT_EQ(create->what, dp::cli::verb::hooks_create);
  EXPECT_EQ(create->target, "staging");
  auto rm = parse({"hooks", "rm", "hook_0123"}, {.project = "shop"});
  ASSERT_TRUE(rm);
  EXPECT_EQ(rm->what, dp::cli::verb::hooks_rm);
  EXPECT_EQ(rm->target, "hook_0123");
  EXPECT_FALSE(parse({"hooks", "ls"}));                           // no --project
  EXPECT_FALSE(parse({"hooks", "create"}, {.project = "shop"}));  // no branch
  EXPECT_FALSE(parse({"hooks", "purge"}, {.project = "shop"}));   // no such subcommand
  EXPECT_FALSE(parse({"hooks", "ls"}, {.project = "shop", .branch = "x"}));

  auto link = parse({"link", "shop", "https://github.com/acme/shop.git"});
  ASSERT_TRUE(link);
  EXPECT_EQ(link->what, dp::cli::verb::link);
  EXPECT_EQ(link->target, "shop");
  EXPECT_EQ(link->git_url, "https://github.com/acme/shop.git");
  EXPECT_FALSE(parse({"link", "shop", "./dir"}));
  EXPECT_FALSE(parse({"link", "https://github.com/acme/shop.git"}));
}

TEST(cli_render, link_names_the_forge_of_the_repository) {
  auto github = dp::cli::render_link("shop", "https://github.com/acme/shop.git",
                                     "https://api.example/", "s3");
  EXPECT_NE(github.find("https://api.example/v1/webhooks/github/shop"), std::string::npos);
  EXPECT_NE(github.find("Secret:       s3"), std::string::npos);
  EXPECT_NE(github.find("application/json"), std::string::npos);
  EXPECT_EQ(github.find("/gitlab/"), std::string::npos);
  auto gitlab = dp::cli::render_link("shop", "git@gitlab.com:acme/shop.git", "http://a", "s3");
  EXPECT_NE(gitlab.find("http://a/v1/webhooks/gitlab/shop"), std::string::npos);
  EXPECT_EQ(gitlab.find("/github/"), std::string::npos);
  // A self-hosted forge: every form.
  auto other = dp::cli::render_link("shop", "https://git.example/acme/shop.git", "http://a", "s3");
  for (auto forge : {"github", "gitlab", "gitea"}) {
    EXPECT_NE(other.find(fmt::format("http://a/v1/webhooks/{}/shop", forge)), std::string::npos);
  }
}

TEST(cli_render, hooks_table) {
  EXPECT_EQ(dp::cli::render_hooks({}), "no deploy hooks\n");
  auto table = dp::cli::render_hooks({{"hook_1", "staging", 0}});
  EXPECT_NE(table.find("hook_1"), std::string::npos);
  EXPECT_NE(table.find("1970-01-01 00:00:00"), std::string::npos);
  EXPECT_NE(table.find("staging"), std::string::npos);
}

// The columns and the sentences under them, from the API's domain objects.
TEST(cli_render, domains_with_certificate_and_ocsp_state) {
  auto domains = boost::json::parse(R"([
    {"domain":"shop.example.com","state":"verified","branch":null,"primary":true,"hsts":true,
     "redirects_to":null,"verification":{"error":null},
     "certificate":{"status":"issued","issuer":"CN=R11,O=Let's Encrypt,C=US",
       "not_after":1800000000000,"stored_at":1797408000000,"error":null,
       "next_attempt":1797408000000,
       "ocsp":{"status":"stapled","responder":"http://ocsp.example","this_update":1799000000000,
         "next_update":1799500000000,"error":null,"failures":0,"next_refresh":1799250000000}}},
    {"domain":"www.shop.example.com","state":"verified","branch":"staging","primary":false,
     "hsts":false,"redirects_to":null,"verification":{"error":null},
     "certificate":{"status":"issued","issuer":"CN=Test CA","not_after":1800000000000,
       "stored_at":1797408000000,"error":"urn:ietf:params:acme:error:rateLimited: too many",
       "next_attempt":1799990000000,
       "ocsp":{"status":"failed","responder":"http://ocsp.example","this_update":null,
         "next_update":null,"error":"connection refused","failures":2,
         "next_refresh":1799990000000}}},
    {"domain":"le.example.com","state":"verified","branch":null,"primary":false,"hsts":false,
     "redirects_to":null,"verification":{"error":null},
     "certificate":{"status":"issued","issuer":"CN=R11,O=Let's Encrypt,C=US",
       "not_after":1800000000000,"stored_at":1797408000000,"error":null,"renewing":true,
       "next_attempt":1797408000000,
       "ocsp":{"status":"not_available","responder":null,"this_update":null,"next_update":null,
         "error":null,"failures":0,"next_refresh":null}}},
    {"domain":"new.example.com","state":"verified","branch":null,"primary":false,"hsts":false,
     "redirects_to":null,"verification":{"error":null},
     "certificate":{"status":"failed","issuer":null,"not_after":null,"stored_at":null,
       "error":"urn:ietf:params:acme:error:connection: refused","next_attempt":1799990000000,
       "ocsp":null}},
    {"domain":"pending.example.com","state":"pending","branch":null,"primary":false,
     "hsts":false,"redirects_to":null,"verification":{"error":"no TXT record"},
     "certificate":{"status":"none","issuer":null,"not_after":null,"stored_at":null,
       "error":null,"next_attempt":null,"ocsp":null}}
  ])")
                     .as_array();
  auto table = dp::cli::render_domains(domains);
  std::vector<std::string> lines;
  for (size_t at = 0; at < table.size();) {
    auto end = table.find('\n', at);
    lines.push_back(table.substr(at, end - at));
    at = end + 1;
  }
  ASSERT_EQ(lines.size(), 14u) << table;
  auto columns = [](const std::string& line) {
    std::vector<std::string> out;
    std::istringstream in(line);
    for (std::string w; in >> w;) {
      out.push_back(w);
    }
    return out;
  };
  using words = std::vector<std::string>;
  EXPECT_EQ(columns(lines[0]),
            (words{"DOMAIN", "STATE", "SERVES", "FLAGS", "CERTIFICATE", "OCSP"}));
  EXPECT_EQ(columns(lines[1]), (words{"shop.example.com", "verified", "production", "primary",
                                      "hsts", "issued", "stapled"}));
  EXPECT_EQ(lines[2],
            "  certificate: valid until 2027-01-15 08:00:00 UTC, issuer CN=R11,O=Let's "
            "Encrypt,C=US, renewed from 2026-12-16 08:00:00 UTC");
  EXPECT_EQ(lines[3], "  ocsp: response valid until 2027-01-09 13:06:40 UTC");
  EXPECT_EQ(columns(lines[4]), (words{"www.shop.example.com", "verified", "branch", "staging", "-",
                                      "issued", "failed"}));
  EXPECT_EQ(lines[5],
            "  certificate: valid until 2027-01-15 08:00:00 UTC, issuer CN=Test CA; renewal "
            "failed: urn:ietf:params:acme:error:rateLimited: too many; next try 2027-01-15 "
            "05:13:20 UTC");
  EXPECT_EQ(lines[6],
            "  ocsp: last fetch failed (2 in a row): connection refused; next try 2027-01-15 "
            "05:13:20 UTC");
  EXPECT_EQ(columns(lines[7]),
            (words{"le.example.com", "verified", "production", "-", "issued", "not_available"}));
  EXPECT_EQ(lines[8],
            "  certificate: valid until 2027-01-15 08:00:00 UTC, issuer CN=R11,O=Let's "
            "Encrypt,C=US, being renewed");
  EXPECT_EQ(lines[9], "  ocsp: the CA runs no OCSP responder: nothing to staple");
  EXPECT_EQ(columns(lines[10]),
            (words{"new.example.com", "verified", "production", "-", "failed", "-"}));
  EXPECT_EQ(lines[11],
            "  certificate: not issued: urn:ietf:params:acme:error:connection: refused; next try "
            "2027-01-15 05:13:20 UTC");
  EXPECT_EQ(columns(lines[12]),
            (words{"pending.example.com", "pending", "production", "-", "none", "-"}));
  // The last line: the check's reason, under the pending domain.
  EXPECT_TRUE(table.ends_with("  last check: no TXT record\n")) << table;
}

}  // namespace
