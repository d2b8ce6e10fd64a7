#include "dp/buildplan/archive.hpp"

#include <fmt/format.h>

namespace dp::buildplan {

namespace fs = std::filesystem;

namespace {

dp::error refused(std::string_view name, std::string_view why) {
  return dp::make_error(errc::invalid_argument, "archive member '{}' refused: {}", name, why);
}

std::string_view special_kind(fs::file_type t) {
  switch (t) {
    case fs::file_type::fifo:
      return "FIFO";
    case fs::file_type::socket:
      return "socket";
    case fs::file_type::block:
    case fs::file_type::character:
      return "device file";
    default:
      return "not a file, directory or symlink";
  }
}

}  // namespace

std::vector<std::string> source_unpack_argv(const std::string& archive, const std::string& dir) {
  // --no-overwrite-dir: the archive's "./" does not change the mode of `dir` itself.
  return {"tar",
          "--gzip",
          "--extract",
          "--no-same-owner",
          "--no-same-permissions",
          "--no-overwrite-dir",
          "--file",
          archive,
          "--directory",
          dir};
}

dp::result<archive_report> check_unpacked_tree(const fs::path& dir, const archive_limits& limits) {
  std::error_code ec;
  // The tree's own directory is the runner's: a symlink in its place is not followed.
  if (!fs::is_directory(fs::symlink_status(dir, ec))) {
    return dp::make_error(errc::io, "{} is not a directory", dir.string());
  }
  auto root = fs::canonical(dir, ec);
  if (ec) {
    return dp::make_error(errc::io, "cannot resolve {}: {}", dir.string(), ec.message());
  }
  archive_report report;
  uint64_t members = 0;
  // Does not follow directory symlinks: every path it yields is made of real directories.
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const auto& path = it->path();
    auto name = path.lexically_relative(root).string();
    if (++members > limits.max_members) {
      return dp::make_error(errc::too_large, "the archive has more than {} members",
                            limits.max_members);
    }
    auto st = fs::symlink_status(path, ec);
    if (ec) {
      break;
    }
    if (fs::is_directory(st)) {
      continue;
    }
    if (fs::is_regular_file(st)) {
      auto size = fs::file_size(path, ec);
      if (ec) {
        break;
      }
      report.files++;
      report.bytes += size;
      if (report.bytes > limits.max_bytes) {
        return dp::make_error(errc::too_large, "the archive unpacks to more than {} bytes",
                              limits.max_bytes);
      }
      continue;
    }
    if (!fs::is_symlink(st)) {
      return refused(name, special_kind(st.type()));
    }
    // Resolved on disk, so that a chain ("a -> .", "b -> a/../x") is judged by where it leads;
    // from the link's own directory, so that a dangling target is checked too.
    auto target = fs::read_symlink(path, ec);
    auto real = ec ? fs::path() : fs::weakly_canonical(path.parent_path() / target, ec);
    auto rel = real.lexically_relative(root);
    if (ec || rel.empty() || *rel.begin() == "..") {
      return refused(name, "symlink to '" + target.string() + "' leaves the tree");
    }
  }
  if (ec) {
    return dp::make_error(errc::io, "cannot walk the unpacked source: {}", ec.message());
  }
  return report;
}

}  // namespace dp::buildplan
