// Local git repositories made from a set of files, for the clone and build tests.
#include "dp/test/harness.hpp"

#include <fstream>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace dp::test {

namespace fs = std::filesystem;

std::map<std::string, std::string> git_repo::git_env() {
  // No global or system config: the user's hooks, signing or default branch must not leak in.
  return {{"GIT_CONFIG_GLOBAL", "/dev/null"}, {"GIT_CONFIG_NOSYSTEM", "1"},
          {"GIT_AUTHOR_NAME", "dp test"},     {"GIT_AUTHOR_EMAIL", "test@example.invalid"},
          {"GIT_COMMITTER_NAME", "dp test"},  {"GIT_COMMITTER_EMAIL", "test@example.invalid"},
          {"GIT_TERMINAL_PROMPT", "0"}};
}

git_repo::git_repo(const std::map<std::string, git_file>& files, const std::string& message)
    : dir_("dp-git") {
  git({"init", "-q", "-b", "main"});
  commit(files, message);
}

std::string git_repo::git(std::vector<std::string> args) const {
  args.insert(args.begin(), {"git", "-C", path().string()});
  auto r = run(args, git_env());
  if (r.exit_code != 0) {
    throw std::runtime_error(
        fmt::format("git {} failed ({}):\n{}", fmt::join(args, " "), r.exit_code, r.output));
  }
  return r.output;
}

std::string git_repo::commit(const std::map<std::string, git_file>& files,
                             const std::string& message) {
  for (const auto& [name, file] : files) {
    fs::path rel(name);
    if (rel.empty() || rel.is_absolute() || rel.lexically_normal().string().starts_with("..")) {
      throw std::invalid_argument(fmt::format("git_repo: path '{}' leaves the repository", name));
    }
    fs::path target = path() / rel;
    fs::create_directories(target.parent_path());
    std::ofstream(target, std::ios::binary | std::ios::trunc) << file.content;
    // git records only whether a file is executable (755) or not (644).
    fs::permissions(target, file.executable ? fs::perms(0755) : fs::perms(0644));
  }
  git({"add", "-A"});
  git({"commit", "-q", "--allow-empty", "-m", message});
  return head();
}

std::string git_repo::head() const {
  std::string sha = git({"rev-parse", "HEAD"});
  return sha.substr(0, sha.find_first_of("\r\n"));
}

std::string git_repo::url() const {
  return "file://" + path().string();
}

}  // namespace dp::test
