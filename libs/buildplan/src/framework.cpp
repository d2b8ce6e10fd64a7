#include "dp/buildplan/framework.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <regex>

namespace dp::buildplan {

namespace {

// Vercel's order (packages/frameworks/src/frameworks.ts), the entries a static host can serve.
const std::vector<framework> table = {
    {"nextjs", "Next.js", {"next"}, "build", "next build", {"out"}, {".next/cache"}},
    {"gatsby", "Gatsby", {"gatsby"}, "build", "gatsby build", {"public"}, {".cache", "public"}},
    {"astro", "Astro", {"astro"}, "build", "astro build", {"dist"}, {"node_modules/.astro"}},
    {"eleventy", "Eleventy", {"@11ty/eleventy"}, "build", "eleventy", {"_site"}, {".cache"}},
    {"docusaurus-2",
     "Docusaurus",
     {"@docusaurus/core"},
     "build",
     "docusaurus build",
     {"build"},
     {".docusaurus", "node_modules/.cache"}},
    {"vue", "Vue CLI", {"@vue/cli-service"}, "build", "vue-cli-service build", {"dist"}, {}},
    {"angular", "Angular", {"@angular/cli"}, "build", "ng build", {"dist"}, {}},
    {"sveltekit-1", "SvelteKit", {"@sveltejs/kit"}, "build", "vite build", {"build"}, {}},
    {"create-react-app",
     "Create React App",
     {"react-scripts", "react-dev-utils"},
     "build",
     "react-scripts build",
     {"build"},
     {}},
    // `nuxt build` makes a server; `nuxt generate` the static site.
    {"nuxtjs",
     "Nuxt",
     {"nuxt", "nuxt3", "nuxt-edge", "nuxt-nightly"},
     "generate",
     "nuxt generate",
     {".output/public", "dist"},
     {"node_modules/.cache/nuxt"}},
    {"vite", "Vite", {"vite"}, "build", "vite build", {"dist"}, {}},
};

bool depends_on(const boost::json::object& pkg, std::string_view name, std::string& field) {
  for (const char* f : {"dependencies", "devDependencies"}) {
    const auto* deps = pkg.if_contains(f);
    if (deps && deps->is_object() && deps->as_object().contains(name)) {
      field = f;
      return true;
    }
  }
  return false;
}

// The first of `names` that can be read, with its name.
std::optional<std::pair<std::string, std::string>> first_file(
    const file_reader& read, std::initializer_list<std::string_view> names) {
  for (auto name : names) {
    if (auto text = read(name)) {
      return std::pair{std::string(name), std::move(*text)};
    }
  }
  return std::nullopt;
}

std::string_view string_at(const boost::json::value* v) {
  return v && v->is_string() ? std::string_view(v->as_string()) : std::string_view();
}

// Where `ng build` writes the browser files of the workspace's default (or first) project.
void angular_output(framework_match& m, const file_reader& read) {
  auto text = read("angular.json");
  boost::system::error_code ec;
  auto ws = text ? boost::json::parse(*text, ec) : boost::json::value();
  const auto* projects = !ec && ws.is_object() ? ws.as_object().if_contains("projects") : nullptr;
  if (!projects || !projects->is_object() || projects->as_object().empty()) {
    m.notes.push_back("framework: angular.json lists no project: output dist");
    return;
  }
  const auto& all = projects->as_object();
  auto name = string_at(ws.as_object().if_contains("defaultProject"));
  const auto* project = name.empty() ? nullptr : all.if_contains(name);
  if (!project) {
    name = all.begin()->key();
    project = &all.begin()->value();
  }
  const boost::json::value* build = nullptr;
  if (project->is_object()) {
    for (const char* targets : {"architect", "targets"}) {
      const auto* t = project->as_object().if_contains(targets);
      if (t && t->is_object() && t->as_object().contains("build")) {
        build = &t->as_object().at("build");
        break;
      }
    }
  }
  const auto* b = build && build->is_object() ? &build->as_object() : nullptr;
  auto builder = b ? string_at(b->if_contains("builder")) : std::string_view();
  const auto* options = b ? b->if_contains("options") : nullptr;
  const auto* path =
      options && options->is_object() ? options->as_object().if_contains("outputPath") : nullptr;
  std::string base = fmt::format("dist/{}", name);
  std::string browser = "browser";
  if (path && path->is_string()) {
    base = std::string(path->as_string());
  } else if (path && path->is_object()) {
    if (auto s = string_at(path->as_object().if_contains("base")); !s.empty()) {
      base = s;
    }
    if (const auto* br = path->as_object().if_contains("browser"); br && br->is_string()) {
      browser = std::string(br->as_string());
    }
  }
  while (base.size() > 1 && base.back() == '/') {
    base.pop_back();
  }
  // The application builder (Angular 17+) writes browser/ and server/ beneath outputPath; the
  // older browser builder writes the site into outputPath itself.
  bool application = builder.ends_with(":application") || builder.empty();
  std::string dir = application && !browser.empty() ? base + "/" + browser : base;
  m.output_dirs = {dir};
  m.notes.push_back(fmt::format("framework: angular.json project {}{}: output {}", name,
                                builder.empty() ? "" : fmt::format(" ({})", builder), dir));
}

}  // namespace

std::span<const framework> frameworks() {
  return table;
}

std::optional<framework_match> detect_framework(const boost::json::object& pkg,
                                                const file_reader& read) {
  for (const auto& fw : table) {
    std::string field;
    auto hit = std::find_if(fw.packages.begin(), fw.packages.end(),
                            [&](std::string_view p) { return depends_on(pkg, p, field); });
    if (hit == fw.packages.end()) {
      continue;
    }
    framework_match m;
    m.fw = &fw;
    m.why = fmt::format("{} {} in package.json",
                        field == "dependencies" ? "dependency" : "devDependency", *hit);
    m.output_dirs.assign(fw.output_dirs.begin(), fw.output_dirs.end());
    if (fw.slug == "angular") {
      angular_output(m, read);
    } else if (fw.slug == "nextjs") {
      auto config = first_file(
          read, {"next.config.js", "next.config.mjs", "next.config.ts", "next.config.cjs"});
      static const std::regex output_export(R"(output\s*:\s*['"`]export['"`])");
      bool exported = config && std::regex_search(config->second, output_export);
      m.notes.push_back(
          exported ? fmt::format("framework: {} sets output: 'export': the static export is out",
                                 config->first)
                   : "warning: Next.js is served as a static export only: `next build` writes "
                     "out/ when next.config sets output: 'export' (none found)");
    } else if (fw.slug == "sveltekit-1") {
      std::string ignored;
      if (!depends_on(pkg, "@sveltejs/adapter-static", ignored)) {
        m.notes.push_back(
            "warning: SvelteKit is served as a static site only: with @sveltejs/adapter-static, "
            "which writes build/ (not in package.json)");
      }
    }
    return m;
  }
  return std::nullopt;
}

}  // namespace dp::buildplan
