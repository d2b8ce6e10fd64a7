#include "dp/buildplan/plan.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

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

TEST_F(Plan, BunNeedsACustomInstall) {
  write("package.json", with_build);
  write("bun.lockb");
  auto p = make_plan(repo(), {});
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message.find("bun.lockb"), std::string::npos);
  EXPECT_NE(p.error().message.find("no bun"), std::string::npos);

  project_settings s;
  s.install_command = "bun install";
  s.build_command = "bun run build";
  auto custom = make_plan(repo(), s);
  ASSERT_TRUE(custom && custom->install) << custom.error().message;
  EXPECT_EQ(custom->install->argv, (std::vector<std::string>{"/bin/sh", "-c", "bun install"}));

  fs::remove(repo() / "bun.lockb");
  write("package.json", R"({"packageManager":"bun@1.1.0","devDependencies":{"vite":"5"}})");
  p = make_plan(repo(), {});
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message.find("bun"), std::string::npos);
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
  // No framework: the generic list.
  write("package.json", R"({"scripts":{"build":"node build.mjs"},"dependencies":{"a":"1"}})");
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

// ---- package managers ----

std::string script_of(const command& c) {
  return c.argv.size() == 3 && c.argv[0] == "/bin/sh" ? c.argv[2] : std::string();
}

TEST_F(Plan, PnpmVersionFromTheLockfile) {
  write("package.json", with_build);
  for (auto [version, major] : std::initializer_list<std::pair<const char*, const char*>>{
           {"'6.0'", "pnpm@8"}, {"5.4", "pnpm@7"}, {"'9.0'", "pnpm@10"}, {"\"7.0\"", "pnpm@9"}}) {
    write("pnpm-lock.yaml", fmt::format("lockfileVersion: {}\n\nsettings:\n", version));
    auto p = make_plan(repo(), {});
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->package_manager, "pnpm");
    ASSERT_TRUE(p->install);
    EXPECT_EQ(p->install->display, fmt::format("corepack install -g {} && pnpm install "
                                               "--frozen-lockfile --prod=false",
                                               major));
    EXPECT_NE(script_of(*p->install)
                  .find("corepack enable --install-directory "
                        "\"$COREPACK_HOME/bin\" pnpm && pnpm install"),
              std::string::npos)
        << script_of(*p->install);
    ASSERT_TRUE(p->build);
    EXPECT_EQ(p->build->display, "pnpm run build");
    EXPECT_NE(script_of(*p->build).find("&& pnpm run build"), std::string::npos);
  }
  write("pnpm-lock.yaml", "lockfileVersion: '42.0'\n");
  auto unknown = make_plan(repo(), {});
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("42.0"), std::string::npos);
  EXPECT_NE(unknown.error().message.find("packageManager"), std::string::npos);
}

TEST_F(Plan, PackageManagerFieldWins) {
  write("package.json",
        R"({"packageManager":"pnpm@9.15.0","scripts":{"build":"x"},"dependencies":{"a":"1"}})");
  write("pnpm-lock.yaml", "lockfileVersion: '6.0'\n");
  auto p = make_plan(repo(), {});
  ASSERT_TRUE(p && p->install) << p.error().message;
  EXPECT_EQ(p->install->display, "corepack install && pnpm install --frozen-lockfile --prod=false");
  EXPECT_NE(std::find_if(p->notes.begin(), p->notes.end(),
                         [](const std::string& n) {
                           return n.find("packageManager pnpm@9.15.0") != std::string::npos;
                         }),
            p->notes.end());

  // It names the manager even beside another's lockfile, which is then not frozen.
  write("package.json",
        R"({"packageManager":"yarn@4.5.0","scripts":{"build":"x"},"dependencies":{"a":"1"}})");
  p = make_plan(repo(), {});
  ASSERT_TRUE(p && p->install);
  EXPECT_EQ(p->install->display, "corepack install && yarn install --no-immutable");
  EXPECT_EQ(p->install->env.at("YARN_NODE_LINKER"), "node-modules");

  // npm named beside its own lockfile (as `ng new` writes it) installs with npm ci, even when
  // another manager's lockfile comes first in the usual order.
  write("package.json",
        R"({"packageManager":"npm@11.19.1","scripts":{"build":"x"},"dependencies":{"a":"1"}})");
  write("package-lock.json", "{}");
  p = make_plan(repo(), {});
  ASSERT_TRUE(p && p->install) << p.error().message;
  EXPECT_EQ(p->install->display, "npm ci");
  EXPECT_EQ(p->package_manager, "npm");

  for (const char* bad :
       {R"("pnpm")", R"("pnpm@")", R"("deno@1.0")", R"("pnpm@8; rm -rf /")", "8"}) {
    write("package.json",
          fmt::format(R"({{"packageManager":{},"dependencies":{{"a":"1"}}}})", bad));
    EXPECT_FALSE(make_plan(repo(), {})) << bad;
  }
}

TEST_F(Plan, YarnClassicAndBerry) {
  write("package.json", with_build);
  write("yarn.lock", "# THIS IS AN AUTOGENERATED FILE.\n# yarn lockfile v1\n\n");
  write("package-lock.json", "{}");  // yarn.lock comes first, as on Vercel
  auto p = make_plan(repo(), {});
  ASSERT_TRUE(p && p->install) << p.error().message;
  EXPECT_EQ(p->package_manager, "yarn");
  EXPECT_EQ(p->install->display,
            "corepack install -g yarn@1 && yarn install --frozen-lockfile --production=false "
            "--non-interactive");
  EXPECT_TRUE(p->install->env.empty());
  ASSERT_TRUE(p->build);
  EXPECT_EQ(p->build->display, "yarn run build");

  write("yarn.lock", "__metadata:\n  version: 8\n  cacheKey: 10c0\n\n\"vite@npm:5\":\n");
  p = make_plan(repo(), {});
  ASSERT_TRUE(p && p->install);
  EXPECT_EQ(p->install->display, "corepack install -g yarn@4 && yarn install --immutable");
  EXPECT_EQ(p->install->env.at("YARN_NODE_LINKER"), "node-modules");
  EXPECT_EQ(p->build->env.at("YARN_NODE_LINKER"), "node-modules");

  write("yarn.lock", "__metadata:\n  version: 6\n");
  write(".yarnrc.yml", "nodeLinker: pnp\n");  // the project's choice stands
  p = make_plan(repo(), {});
  ASSERT_TRUE(p && p->install);
  EXPECT_EQ(p->install->display, "corepack install -g yarn@3 && yarn install --immutable");
  EXPECT_TRUE(p->install->env.empty());
}

TEST_F(Plan, InstallScriptsOff) {
  write("package.json", with_build);
  write("package-lock.json", "{}");
  project_settings s;
  s.install_scripts = false;
  auto p = make_plan(repo(), s);
  ASSERT_TRUE(p && p->install);
  EXPECT_EQ(p->install->argv.back(), "--ignore-scripts");
  EXPECT_EQ(p->install->display, "npm ci --ignore-scripts");

  fs::remove(repo() / "package-lock.json");
  write("pnpm-lock.yaml", "lockfileVersion: '9.0'\n");
  p = make_plan(repo(), s);
  ASSERT_TRUE(p && p->install);
  EXPECT_TRUE(p->install->display.ends_with("--prod=false --ignore-scripts"));
  fs::remove(repo() / "pnpm-lock.yaml");
  write("yarn.lock", "# yarn lockfile v1\n");
  p = make_plan(repo(), s);
  ASSERT_TRUE(p && p->install);
  EXPECT_TRUE(p->install->display.ends_with("--ignore-scripts"));
  write("yarn.lock", "__metadata:\n  version: 8\n");
  p = make_plan(repo(), s);
  ASSERT_TRUE(p && p->install);
  EXPECT_EQ(p->install->display,
            "corepack install -g yarn@4 && yarn install --immutable --mode=skip-build");

  // A custom install command is the project's own: the setting does not rewrite it.
  s.install_command = "npm install";
  p = make_plan(repo(), s);
  ASSERT_TRUE(p && p->install);
  EXPECT_EQ(p->install->argv, (std::vector<std::string>{"/bin/sh", "-c", "npm install"}));
}

}  // namespace
