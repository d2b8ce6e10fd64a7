#include "archive.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>

#include "dp/process/process.hpp"

namespace dp::cli {

namespace fs = std::filesystem;

packed_archive::~packed_archive() {
  if (!path.empty()) {
    std::error_code ec;
    fs::remove(path, ec);
  }
}

std::string human_size(uint64_t bytes) {
  if (bytes < 1000) {
    return fmt::format("{} B", bytes);
  }
  if (bytes < 1000 * 1000) {
    return fmt::format("{:.0f} kB", static_cast<double>(bytes) / 1e3);
  }
  return fmt::format("{:.1f} MB", static_cast<double>(bytes) / 1e6);
}

std::string project_name_for_directory(const fs::path& dir) {
  std::error_code ec;
  auto abs = fs::weakly_canonical(fs::absolute(dir, ec), ec);
  std::string base = (ec ? dir : abs).filename().string();
  std::string out;
  for (char c : base) {
    bool keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (c >= 'A' && c <= 'Z') {
      out.push_back(static_cast<char>(c - 'A' + 'a'));
    } else if (keep) {
      out.push_back(c);
    } else if (!out.empty() && out.back() != '-') {
      out.push_back('-');
    }
  }
  while (!out.empty() && out.back() == '-') {
    out.pop_back();
  }
  if (out.size() > 54) {
    out.resize(54);
    while (!out.empty() && out.back() == '-') {
      out.pop_back();
    }
  }
  return out;
}

boost::asio::awaitable<dp::result<packed_archive>> pack_directory(fs::path dir,
                                                                  uint64_t max_bytes) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = fmt::format("{}/deployctl-XXXXXX.tar.gz", tmp && *tmp ? tmp : "/tmp");
  int fd = ::mkstemps(pattern.data(), 7);
  if (fd < 0) {
    co_return dp::make_error(errc::io, "cannot create a temporary file in {}",
                             tmp && *tmp ? tmp : "/tmp");
  }
  ::close(fd);
  packed_archive archive{fs::path(pattern)};

  process::options o;
  // Owner and group names stay on this machine; the build unpacks as its own user anyway.
  o.argv = {
      "tar",       "--create",  "--gzip",          "--file",         pattern,
      "--owner=0", "--group=0", "--numeric-owner", "--exclude=.git", "--exclude=node_modules"};
  std::error_code ec;
  if (fs::is_regular_file(dir / ".deployignore", ec)) {
    o.argv.push_back("--exclude-from=" + (dir / ".deployignore").string());
  }
  o.argv.insert(o.argv.end(), {"--directory", dir.string(), "."});
  o.env = {{"PATH", "/usr/local/bin:/usr/bin:/bin"}, {"LC_ALL", "C"}};
  std::string errors;
  auto st = co_await process::run(std::move(o), [&](process::stream s, std::string_view line) {
    if (s == process::stream::err && errors.size() < 4096) {
      errors.append(errors.empty() ? "" : "; ").append(line);
    }
  });
  if (!st) {
    co_return dp::make_error(errc::io, "cannot run tar: {}", st.error().message);
  }
  if (!st->success()) {
    co_return dp::make_error(errc::invalid_argument, "cannot pack {}: tar {}: {}", dir.string(),
                             st->describe(), errors);
  }
  archive.size = fs::file_size(archive.path, ec);
  if (ec) {
    co_return dp::make_error(errc::io, "cannot read the archive: {}", ec.message());
  }
  if (archive.size > max_bytes) {
    co_return dp::make_error(errc::too_large,
                             "{} packs to {}, over the {} limit: list what the build does not "
                             "need in .deployignore",
                             dir.string(), human_size(archive.size), human_size(max_bytes));
  }
  co_return std::move(archive);
}

}  // namespace dp::cli
