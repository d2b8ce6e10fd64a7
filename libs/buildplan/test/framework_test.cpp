// Each framework of the table: a package.json (and the config files it reads) → the plan.
#include "dp/buildplan/framework.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "dp/buildplan/plan.hpp"
#include "dp/test/harness.hpp"

using namespace dp::buildplan;
namespace fs = std::filesystem;

namespace {

class Framework : public ::testing::Test {
 protected:
  void write(const fs::path& rel, const std::string& content = "") {
    auto p = repo_.path() / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << content;
  }
  build_plan plan(const project_settings& s = {}) {
    auto p = make_plan(repo_.path(), s);
    EXPECT_TRUE(p) << p.error().message;
    return p ? std::move(*p) : build_plan{};
  }
  const fs::path& repo() const { return repo_.path(); }

  dp::test::temp_dir repo_{"dp-framework"};
};

struct expected {
  const char* package_json;
  const char* slug;
  const char* build;  // display of the build command
  std::vector<std::string> outputs;
  std::vector<std::string> caches;
  const char* why;
};

TEST_F(Framework, EachEntryOfTheTable) {
  const std::vector<expected> cases = {
      {R"({"scripts":{"build":"vite build"},"devDependencies":{"vite":"^5","react":"^18"}})",
       "vite",
       "npm run build",
       {"dist"},
       {},
       "devDependency vite in package.json"},
      {R"({"dependencies":{"react":"18","react-scripts":"5.0.1"},"scripts":{"build":"react-scripts build"}})",
       "create-react-app",
       "npm run build",
       {"build"},
       {},
       "dependency react-scripts"},
      {R"({"dependencies":{"next":"14","react":"18"},"scripts":{"build":"next build"}})",
       "nextjs",
       "npm run build",
       {"out"},
       {".next/cache"},
       "dependency next"},
      {R"({"dependencies":{"astro":"4"},"scripts":{"build":"astro build"}})",
       "astro",
       "npm run build",
       {"dist"},
       {"node_modules/.astro"},
       "dependency astro"},
      // No build script: the framework's command, through the package manager.
      {R"({"devDependencies":{"@11ty/eleventy":"2"}})",
       "eleventy",
       "npm exec --no -- eleventy",
       {"_site"},
       {".cache"},
       "devDependency @11ty/eleventy"},
      {R"({"dependencies":{"@docusaurus/core":"3","react":"18"},"scripts":{"build":"docusaurus build"}})",
       "docusaurus-2",
       "npm run build",
       {"build"},
       {".docusaurus", "node_modules/.cache"},
       "dependency @docusaurus/core"},
      {R"({"dependencies":{"gatsby":"5","react":"18"},"scripts":{"build":"gatsby build"}})",
       "gatsby",
       "npm run build",
       {"public"},
       {".cache", "public"},
       "dependency gatsby"},
      {R"({"devDependencies":{"@sveltejs/kit":"2","@sveltejs/adapter-static":"3","vite":"5"},"scripts":{"build":"vite build"}})",
       "sveltekit-1",
       "npm run build",
       {"build"},
       {},
       "devDependency @sveltejs/kit"},
      // Nuxt's static site is `generate`, also when package.json only has `build` (a server).
      {R"({"devDependencies":{"nuxt":"3"},"scripts":{"build":"nuxt build"}})",
       "nuxtjs",
       "npm exec --no -- nuxt generate",
       {".output/public", "dist"},
       {"node_modules/.cache/nuxt"},
       "devDependency nuxt"},
      {R"({"devDependencies":{"nuxt":"3"},"scripts":{"build":"nuxt build","generate":"nuxt generate"}})",
       "nuxtjs",
       "npm run generate",
       {".output/public", "dist"},
       {"node_modules/.cache/nuxt"},
       "devDependency nuxt"},
      {R"({"devDependencies":{"@angular/cli":"17"},"scripts":{"build":"ng build"}})",
       "angular",
       "npm run build",
       {"dist"},
       {},
       "devDependency @angular/cli"},
      {R"({"devDependencies":{"@vue/cli-service":"5"},"dependencies":{"vue":"3"},"scripts":{"build":"vue-cli-service build"}})",
       "vue",
       "npm run build",
       {"dist"},
       {},
       "devDependency @vue/cli-service"},
  };
  for (const auto& c : cases) {
    write("package.json", c.package_json);
    auto p = plan();
    EXPECT_EQ(p.framework, c.slug) << c.package_json;
    ASSERT_TRUE(p.build) << c.package_json;
    EXPECT_EQ(p.build->display, c.build) << c.package_json;
    EXPECT_EQ(p.output_candidates, c.outputs) << c.package_json;
    EXPECT_EQ(p.cache_dirs, c.caches) << c.package_json;
    ASSERT_FALSE(p.notes.empty());
    EXPECT_TRUE(p.notes.front().starts_with("framework: ")) << p.notes.front();
    EXPECT_NE(p.notes.front().find(c.why), std::string::npos) << p.notes.front();
  }
}

TEST_F(Framework, LogLineSaysWhatAndWhy) {
  write("package.json", R"({"dependencies":{"astro":"4"},"scripts":{"build":"astro build"}})");
  EXPECT_EQ(plan().notes.front(),
            "framework: Astro (dependency astro in package.json): build `npm run build`, output "
            "dist, cache node_modules/.astro");
}

TEST_F(Framework, MoreSpecificFirst) {
  // Docusaurus and Next.js use React; Astro, SvelteKit and Nuxt use Vite.
  for (auto [pkg, slug] : std::initializer_list<std::pair<const char*, const char*>>{
           {R"({"dependencies":{"@docusaurus/core":"3","react":"18","react-scripts":"5"}})",
            "docusaurus-2"},
           {R"({"dependencies":{"next":"14","react-scripts":"5"}})", "nextjs"},
           {R"({"dependencies":{"astro":"4","vite":"5"}})", "astro"},
           {R"({"devDependencies":{"@sveltejs/kit":"2","vite":"5"}})", "sveltekit-1"},
           {R"({"devDependencies":{"nuxt":"3","vite":"5"}})", "nuxtjs"},
           {R"({"dependencies":{"react-scripts":"5","vite":"5"}})", "create-react-app"},
       }) {
    write("package.json", pkg);
    EXPECT_EQ(plan().framework, slug) << pkg;
  }
}

TEST_F(Framework, NoneForPlainSites) {
  write("index.html", "<h1>hi</h1>");
  auto p = plan();
  EXPECT_EQ(p.framework, "");
  EXPECT_TRUE(p.static_site);
  EXPECT_TRUE(p.cache_dirs.empty());
  EXPECT_EQ(p.notes.front(), "framework: none (no package.json)");

  write("package.json", R"({"scripts":{"build":"node build.mjs"},"dependencies":{"marked":"12"}})");
  p = plan();
  EXPECT_EQ(p.framework, "");
  EXPECT_EQ(p.output_candidates, (std::vector<std::string>{"dist", "build", "out", "public"}));
  EXPECT_EQ(p.notes.front(), "framework: none detected in package.json");
}

TEST_F(Framework, SettingsOverrideEachPart) {
  write("package.json", R"({"devDependencies":{"@11ty/eleventy":"2"}})");
  project_settings s;
  s.build_command = "eleventy --input=src";
  s.output_dir = "public";
  auto p = plan(s);
  EXPECT_EQ(p.framework, "eleventy");
  ASSERT_TRUE(p.build);
  EXPECT_EQ(p.build->display, "eleventy --input=src");
  EXPECT_EQ(p.cache_dirs, (std::vector<std::string>{".cache"}));
  EXPECT_EQ(p.notes.front(),
            "framework: Eleventy (devDependency @11ty/eleventy in package.json): build by "
            "build_command, output public (output_dir), cache .cache");
  write("public/index.html");
  write("_site/index.html");
  auto out = find_output_dir(p);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->rel, "public");
}

TEST_F(Framework, OutputIsTheFrameworksOnly) {
  // Eleventy's output is _site; its sources may well hold a public/ folder.
  write("package.json", R"({"devDependencies":{"@11ty/eleventy":"2"}})");
  write("public/logo.svg");
  auto p = plan();
  auto none = find_output_dir(p);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("none of _site exists"), std::string::npos);
  write("_site/index.html");
  auto out = find_output_dir(p);
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(out->rel, "_site");
  EXPECT_EQ(out->note, "output directory: _site (the framework's)");

  // Nuxt 3: .output/public; Nuxt 2: dist.
  write("package.json", R"({"devDependencies":{"nuxt":"2"}})");
  write("dist/index.html");
  p = plan();
  ASSERT_TRUE(find_output_dir(p));
  EXPECT_EQ(find_output_dir(p)->rel, "dist");
  write(".output/public/index.html");
  EXPECT_EQ(find_output_dir(p)->rel, ".output/public");
}

TEST_F(Framework, NextStaticExport) {
  write("package.json", R"({"dependencies":{"next":"14"},"scripts":{"build":"next build"}})");
  auto p = plan();
  EXPECT_NE(std::find_if(p.notes.begin(), p.notes.end(),
                         [](const std::string& n) {
                           return n.starts_with("warning: Next.js is served as a static export");
                         }),
            p.notes.end());
  write("public/favicon.ico");  // Next's sources: never the output
  auto none = find_output_dir(p);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("output: 'export'"), std::string::npos);

  write("next.config.mjs",
        "const nextConfig = {\n  output:  \"export\",\n};\nexport default "
        "nextConfig;\n");
  p = plan();
  EXPECT_EQ(p.notes.at(1),
            "framework: next.config.mjs sets output: 'export': the static export "
            "is out");
}

TEST_F(Framework, SvelteKitNeedsTheStaticAdapter) {
  write("package.json",
        R"({"devDependencies":{"@sveltejs/kit":"2","@sveltejs/adapter-auto":"3"}})");
  auto p = plan();
  EXPECT_EQ(p.framework, "sveltekit-1");
  EXPECT_TRUE(p.notes.at(1).starts_with("warning: SvelteKit is served as a static site only"));
}

TEST_F(Framework, AngularOutputFromAngularJson) {
  write("package.json",
        R"({"devDependencies":{"@angular/cli":"17"},"scripts":{"build":"ng build"}})");
  // The application builder (17+): <outputPath>/browser; default outputPath dist/<project>.
  write("angular.json", R"({"projects":{"shop":{"architect":{"build":{
      "builder":"@angular-devkit/build-angular:application","options":{}}}}}})");
  EXPECT_EQ(plan().output_candidates, (std::vector<std::string>{"dist/shop/browser"}));
  write("angular.json", R"({"projects":{"shop":{"architect":{"build":{
      "builder":"@angular/build:application","options":{"outputPath":"dist/web/"}}}}}})");
  EXPECT_EQ(plan().output_candidates, (std::vector<std::string>{"dist/web/browser"}));
  write("angular.json", R"({"projects":{"shop":{"architect":{"build":{
      "builder":"@angular/build:application",
      "options":{"outputPath":{"base":"out","browser":""}}}}}}})");
  EXPECT_EQ(plan().output_candidates, (std::vector<std::string>{"out"}));
  // The older browser builder writes into outputPath; defaultProject picks among several.
  write("angular.json", R"({"defaultProject":"b","projects":{
      "a":{"architect":{"build":{"builder":"x:application"}}},
      "b":{"architect":{"build":{"builder":"@angular-devkit/build-angular:browser",
                                 "options":{"outputPath":"dist/b"}}}}}})");
  EXPECT_EQ(plan().output_candidates, (std::vector<std::string>{"dist/b"}));
  write("angular.json", "{not json");
  EXPECT_EQ(plan().output_candidates, (std::vector<std::string>{"dist"}));
}

TEST_F(Framework, PnpmRunsTheFrameworksCommand) {
  write("package.json", R"({"devDependencies":{"@11ty/eleventy":"2"}})");
  write("pnpm-lock.yaml", "lockfileVersion: '9.0'\n");
  auto p = plan();
  ASSERT_TRUE(p.build);
  EXPECT_EQ(p.build->display, "pnpm exec eleventy");
  write("package.json", R"({"devDependencies":{"vite":"5"},"scripts":{"build":"vite build"}})");
  fs::remove(repo() / "pnpm-lock.yaml");
  write("yarn.lock", "# yarn lockfile v1\n");
  p = plan();
  ASSERT_TRUE(p.build);
  EXPECT_EQ(p.build->display, "yarn run build");
}

}  // namespace
