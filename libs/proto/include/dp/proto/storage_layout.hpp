// Where deployments live in the object store: the one spelling of every storage key that
// crosses a process boundary (the runner writes them, the proxy reads them, the api-server stores
// and deletes them). See proto/README.md, "Go live" and "Uploaded sources".
#pragma once

#include <string>
#include <string_view>

namespace dp::proto {

// The manifest's file name inside a deployment's outputs; a user file of that name is refused.
inline constexpr std::string_view manifest_name = ".deployment.json";

// The compiled site rules' file name beside the manifest (manifest.rules names it); a user file
// of that name is refused too.
inline constexpr std::string_view rules_name = ".site-rules.json";

// "__outputs/<id>/": the prefix of every file of a deployment (to list or remove them all).
inline std::string output_prefix(std::string_view deployment_id) {
  std::string out("__outputs/");
  out.append(deployment_id).push_back('/');
  return out;
}

// "__outputs/<id>/<path>": one published file; `path` is relative (manifest rules).
inline std::string output_key(std::string_view deployment_id, std::string_view path) {
  return output_prefix(deployment_id).append(path);
}

// "__outputs/<id>/.deployment.json": the manifest, written last (the commit marker).
inline std::string manifest_key(std::string_view deployment_id) {
  return output_key(deployment_id, manifest_name);
}

// "__sources/<id>.tar.gz": a directory uploaded through the API, built instead of a clone.
inline std::string source_archive_key(std::string_view deployment_id) {
  std::string out("__sources/");
  out.append(deployment_id).append(".tar.gz");
  return out;
}

// "__cache/<project>/": the project's build cache (its index and its archives), removed as one.
inline std::string cache_prefix(std::string_view project) {
  std::string out("__cache/");
  out.append(project).push_back('/');
  return out;
}

// "__cache/<project>/index.json": what the cache holds, written by the runner after each build.
inline std::string cache_index_key(std::string_view project) {
  return cache_prefix(project).append("index.json");
}

// "__cache/<project>/<name>": one archive (an immutable object; names are random).
inline std::string cache_object_key(std::string_view project, std::string_view name) {
  return cache_prefix(project).append(name);
}

}  // namespace dp::proto
