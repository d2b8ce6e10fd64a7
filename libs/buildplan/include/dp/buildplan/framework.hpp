// The frameworks a build recognises, as data (after Vercel's packages/frameworks): each is known
// by a package in package.json's dependencies or devDependencies and gives the script or command
// that builds it, where its output is and which folders it keeps between builds.
//
// Decisions:
// - The first entry that matches wins, and the table lists the more specific first, in Vercel's
//   order: Docusaurus and Next.js use React, Astro, SvelteKit and Nuxt use Vite.
// - Cache folders are those Cloudflare Pages and Vercel keep for the framework (relative to the
//   project directory); Docusaurus's `build` (Cloudflare keeps it) is left out: it is the output,
//   which Docusaurus rewrites whole.
// - A framework's output directories replace the generic list (dist, build, out, public): most
//   frameworks keep their sources in `public`, so falling back to it would publish sources.
// - Next.js is served only as a static export (`output: 'export'` writes `out`), SvelteKit only
//   with @sveltejs/adapter-static (`build`), Nuxt by `nuxt generate` (`.output/public`; Nuxt 2:
//   `dist`); Angular's directory comes from angular.json (`dist/<project>/browser` for the
//   application builder).
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

namespace dp::buildplan {

struct framework {
  std::string_view slug;                   // Vercel's slug ("create-react-app")
  std::string_view name;                   // for the log ("Create React App")
  std::vector<std::string_view> packages;  // any of these as a dependency or devDependency
  // The package.json script that builds the site, and the command run through the package
  // manager (`npm exec -- vite build`) when package.json has no such script.
  std::string_view script;
  std::string_view command;
  std::vector<std::string_view> output_dirs;  // the first that exists after the build
  std::vector<std::string_view> cache_dirs;
};

// The table, in the order it is matched.
std::span<const framework> frameworks();

struct framework_match {
  const framework* fw = nullptr;
  std::string why;                       // "dependency astro in package.json"
  std::vector<std::string> output_dirs;  // the table's, or angular.json's
  std::vector<std::string> notes;        // what the configuration means for a static site
};

// A file of the project directory by name, or nullopt when it cannot be read.
using file_reader = std::function<std::optional<std::string>(std::string_view name)>;

// The framework package.json names, or nullopt. `read` gives angular.json, next.config.* and
// svelte.config.* where the entry needs them.
std::optional<framework_match> detect_framework(const boost::json::object& package_json,
                                                const file_reader& read);

}  // namespace dp::buildplan
