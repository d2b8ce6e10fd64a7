#include "dp/buildplan/plan.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "dp/test/harness.hpp"

using namespace dp::buildplan;
namespace fs = std::filesystem;

namespace {

class Plan : public ::testing::Test {
 protected:
  void write(const fs::path& rel, const std::string& content = "") {
    auto p = repo_.path() / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << content;
  }
  const fs::path& repo() const { return repo_.path(); }

  dp::test::temp_dir repo_{"dp-plan"};
};

constexpr const char* with_build =
    R"({"scripts":{"build":"vite build"},"devDependencies":{"vite":"^5.0.0"}})";
constexpr const char* no_dependencies = R"({"name":"site","scripts":{"build":"node build.mjs"}})";

TEST_F(Plan, LockfileChoosesNpmCi) {
  write("package.json", with_build);
  write("package-lock.json", "{}");
  auto p = make_plan(repo(), {});
  ASSERT_TRUE(p) << p.error().message;
  ASSERT_TRUE(p->install);
  EXPECT_EQ(p->install->argv,
            (std::vector<std::string>{"npm", "ci", "--include=dev", "--no-audit", "--no-fund"}));
  ASSERT_TRUE(p->build);
  EXPECT_EQ(p->build->argv, (std::vector<std::string>{"npm", "run", "build"}));
  EXPECT_FALSE(p->static_site);
  EXPECT_EQ(p->project_dir, fs::canonical(repo()));
}

TEST_F(Plan, ShrinkwrapAlsoChoosesNpmCi) {
  write("package.json", with_build);
  write("npm-shrinkwrap.json", "{}");
  auto p = make_plan(repo(), {});
  ASSERT_TRUE(p && p->install);
  EXPECT_EQ(p->install->display, "npm ci");
}

TEST_F(Plan, NoLockfileChoosesNpmInstall) {
  write("package.json", with_build);
  auto p = make_plan(repo(), {});
  ASSERT_TRUE(p && p->install);
  EXPECT_EQ(p->install->display, "npm install");
}

TEST_F(Plan, OtherLockfilesNeedACustomInstall) {
  write("package.json", with_build);
  write("pnpm-lock.yaml");
  auto p = make_plan(repo(), {});
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message.find("pnpm-lock.yaml"), std::string::npos);
  EXPECT_NE(p.error().message.find("install_command"), std::string::npos);

  project_settings s;
  s.install_command = "corepack pnpm install";
  auto custom = make_plan(repo(), s);
  ASSERT_TRUE(custom && custom->install);
  EXPECT_EQ(custom->install->argv,
            (std::vector<std::string>{"/bin/sh", "-c", "corepack pnpm install"}));
}

TEST_F(Plan, YarnLockNamedInTheError) {
  write("package.json", with_build);
  write("yarn.lock");
  auto p = make_plan(repo(), {});
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message.find("yarn.lock"), std::string::npos);
}

TEST_F(Plan, StaticSiteWithoutPackageJson) {
  write("index.html", "<h1>hi</h1>");
  auto p = make_plan(repo(), {});
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->install);
  EXPECT_FALSE(p->build);
  EXPECT_TRUE(p->static_site);
  auto out = find_output_dir(*p);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->dir, p->project_dir);

  write("public/index.html");
  out = find_output_dir(*p);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->dir, p->project_dir / "public");
}

TEST_F(Plan, NothingToInstallSkipsTheInstall) {
  write("package.json", no_dependencies);
  write("package-lock.json",
        R"({"name":"site","lockfileVersion":3,"packages":{"":{"name":"site"}}})");
  auto p = make_plan(repo(), {});
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_FALSE(p->install);
  ASSERT_TRUE(p->build);
  EXPECT_EQ(p->build->display, "npm run build");
  EXPECT_NE(std::find(p->notes.begin(), p->notes.end(),
                      "install: skipped (package.json declares no dependencies and no install "
                      "scripts)"),
            p->notes.end());

  fs::remove(repo() / "package-lock.json");
  p = make_plan(repo(), {});
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->install);
  write("package.json", R"({"dependencies":{},"devDependencies":{},"scripts":{"build":"x"}})");
  p = make_plan(repo(), {});
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->install) << "empty dependency maps install nothing";
}

TEST_F(Plan, AnythingToInstallRunsTheInstall) {
  // Each of these makes npm do something: fetch, link, or run a script.
  for (const char* pkg : {
           R"({"dependencies":{"left-pad":"1.3.0"}})",
           R"({"devDependencies":{"vite":"^5"}})",
           R"({"optionalDependencies":{"fsevents":"*"}})",
           R"({"peerDependencies":{"react":"*"}})",
           R"({"bundleDependencies":true})",
           R"({"workspaces":["packages/*"]})",
           R"({"scripts":{"postinstall":"node setup.js"}})",
           R"({"scripts":{"prepare":"husky install"}})",
       }) {
    write("package.json", pkg);
    auto p = make_plan(repo(), {});
    ASSERT_TRUE(p) << pkg;
    ASSERT_TRUE(p->install) << pkg;
    EXPECT_EQ(p->install->display, "npm install") << pkg;
  }
  // A lockfile that lists more than the project is npm ci's to check (it fails out of step).
  write("package.json", no_dependencies);
  for (const char* lock : {
           R"({"lockfileVersion":3,"packages":{"":{},"node_modules/a":{"version":"1.0.0"}}})",
           R"({"lockfileVersion":1,"dependencies":{"a":{"version":"1.0.0"}}})",
           R"({"lockfileVersion":3,"packages":[]})",
           "{not json",
       }) {
    write("package-lock.json", lock);
    auto p = make_plan(repo(), {});
    ASSERT_TRUE(p) << lock;
    ASSERT_TRUE(p->install) << lock;
    EXPECT_EQ(p->install->display, "npm ci") << lock;
  }
}

TEST_F(Plan, PackageJsonWithoutBuildScriptIsStatic) {
  write("package.json", R"({"scripts":{"test":"x"},"dependencies":{"a":"1"}})");
  auto p = make_plan(repo(), {});
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->install);
  EXPECT_FALSE(p->build);
  EXPECT_TRUE(p->static_site);
}

TEST_F(Plan, InvalidPackageJson) {
  write("package.json", "{nope");
  auto p = make_plan(repo(), {});
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message.find("package.json"), std::string::npos);
}

TEST_F(Plan, CustomAndEmptyCommands) {
  write("package.json", with_build);
  project_settings s;
  s.install_command = "";
  s.build_command = "make site";
  auto p = make_plan(repo(), s);
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->install);
  ASSERT_TRUE(p->build);
  EXPECT_EQ(p->build->argv, (std::vector<std::string>{"/bin/sh", "-c", "make site"}));
  EXPECT_EQ(p->build->display, "make site");
}

TEST_F(Plan, RootDirMustStayInside) {
  write("apps/web/package.json", with_build);
  project_settings s;
  s.root_dir = "apps/web";
  auto p = make_plan(repo(), s);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->project_dir, fs::canonical(repo() / "apps/web"));

  for (const char* bad : {"../x", "apps/../../x", "/etc", "apps\\web", "missing"}) {
    s.root_dir = bad;
    EXPECT_FALSE(make_plan(repo(), s)) << bad;
  }
  // A symlink in the repository that points outside it.
  fs::create_directory_symlink("/etc", repo() / "escape");
  s.root_dir = "escape";
  auto escaped = make_plan(repo(), s);
  ASSERT_FALSE(escaped);
  EXPECT_NE(escaped.error().message.find("outside"), std::string::npos);
}

TEST_F(Plan, OutputDirIsFirstExistingCandidate) {
  write("package.json", with_build);
  auto p = make_plan(repo(), {});
  ASSERT_TRUE(p);
  auto none = find_output_dir(*p);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("dist, build, out, public"), std::string::npos);

  write("public/favicon.ico");
  write("build/index.html");
  auto out = find_output_dir(*p);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->dir.filename(), "build");
  EXPECT_NE(out->note.find("build"), std::string::npos);

  write("dist/index.html");
  EXPECT_EQ(find_output_dir(*p)->dir.filename(), "dist");
}

TEST_F(Plan, OutputDirOverride) {
  write("package.json", with_build);
  write("dist/index.html");
  project_settings s;
  s.output_dir = "site";
  auto p = make_plan(repo(), s);
  ASSERT_TRUE(p);
  auto missing = find_output_dir(*p);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("output_dir 'site'"), std::string::npos);
  write("site/index.html");
  ASSERT_TRUE(find_output_dir(*p));
  EXPECT_EQ(find_output_dir(*p)->dir.filename(), "site");

  fs::create_directory_symlink("/usr", repo() / "out-link");
  s.output_dir = "out-link";
  auto escaped = find_output_dir(*make_plan(repo(), s));
  EXPECT_FALSE(escaped);
}

}  // namespace
