#include "dp/runner/sweep.hpp"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <map>
#include <sstream>

#include "dp/core/error.hpp"
#include "dp/runner/cgroup.hpp"

namespace dp::runner {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view prefix = "dp-build-";

// State and start time of a process, from /proc/<pid>/stat (fields 3 and 22; the command name,
// field 2, may hold spaces and parentheses, so the fields are counted after its last ')').
std::optional<std::pair<char, uint64_t>> stat_of(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto paren = text.rfind(')');
  if (!in || paren == std::string::npos) {
    return std::nullopt;
  }
  std::istringstream fields(text.substr(paren + 1));
  std::string f;
  char state = 0;
  for (int i = 3; fields >> f; ++i) {
    if (i == 3) {
      state = f.empty() ? 0 : f[0];
    }
    if (i == 22) {
      uint64_t start = 0;
      auto [p, ec] = std::from_chars(f.data(), f.data() + f.size(), start);
      if (ec != std::errc{} || p != f.data() + f.size()) {
        return std::nullopt;
      }
      return std::pair{state, start};
    }
  }
  return std::nullopt;
}

std::optional<uint64_t> digits(std::string_view s) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || p != s.data() + s.size()) {
    return std::nullopt;
  }
  return v;
}

bool is_mount_point(const fs::path& dir, const struct stat& st) {
  struct stat parent {};
  return ::lstat(dir.parent_path().c_str(), &parent) == 0 && parent.st_dev != st.st_dev;
}

// A stale work directory: its filesystem (and one below, a runner's inside a launcher's
// directory) detached if it is still mounted in our namespace, then everything removed.
void remove_work_dir(const fs::path& dir, sweep_report& report) {
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) == 0 && S_ISDIR(st.st_mode) &&
        is_mount_point(it->path(), st)) {
      ::umount2(it->path().c_str(), MNT_DETACH);
    }
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) == 0 && is_mount_point(dir, st)) {
    ::umount2(dir.c_str(), MNT_DETACH);
  }
  fs::remove_all(dir, ec);
  if (ec) {
    report.errors.push_back(fmt::format("remove {}: {}", dir.string(), ec.message()));
  } else {
    report.removed.push_back("work directory " + dir.string());
  }
}

void sweep_work_root(const fs::path& root, int depth, sweep_report& report) {
  std::error_code ec;
  std::vector<fs::path> entries;
  for (auto it = fs::directory_iterator(root, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    entries.push_back(it->path());
  }
  for (const auto& p : entries) {
    auto name = p.filename().string();
    if (!name.starts_with(prefix)) {
      continue;
    }
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0 || st.st_uid != ::geteuid() ||
        !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode))) {
      continue;
    }
    auto owner = name_owner(name);
    if (!owner) {
      continue;
    }
    if (owner_alive(*owner)) {
      // A live launcher's directory may hold a dead runner's.
      if (depth == 0 && S_ISDIR(st.st_mode)) {
        sweep_work_root(p, depth + 1, report);
      }
      continue;
    }
    if (S_ISDIR(st.st_mode)) {
      remove_work_dir(p, report);
    } else if (::unlink(p.c_str()) == 0) {
      report.removed.push_back("image " + p.string());
    } else {
      report.errors.push_back(fmt::format("unlink {}: {}", p.string(), std::strerror(errno)));
    }
  }
}

}  // namespace

build_owner current_owner() {
  build_owner o{.pid = ::getpid()};
  if (auto st = stat_of(o.pid)) {
    o.start = st->second;
  }
  return o;
}

std::string owned_name(std::string_view base) {
  auto o = current_owner();
  if (o.start == 0) {
    return std::string(base);  // unknown: a name without an owner, never swept
  }
  return fmt::format("{}-p{}-{}", base, o.pid, o.start);
}

std::optional<build_owner> name_owner(std::string_view name) {
  if (!name.starts_with(prefix)) {
    return std::nullopt;
  }
  if (name.ends_with(".img")) {
    name.remove_suffix(4);
  }
  auto dash = name.rfind('-');
  if (dash == std::string_view::npos) {
    return std::nullopt;
  }
  auto start = digits(name.substr(dash + 1));
  auto rest = name.substr(0, dash);
  auto p = rest.rfind("-p");
  if (!start || p == std::string_view::npos) {
    return std::nullopt;
  }
  auto pid = digits(rest.substr(p + 2));
  if (!pid || *pid == 0 || *pid > 0x7fffffff) {
    return std::nullopt;
  }
  return build_owner{.pid = static_cast<pid_t>(*pid), .start = *start};
}

bool owner_alive(const build_owner& o) {
  auto st = stat_of(o.pid);
  return st && st->first != 'Z' && st->first != 'X' && st->second == o.start;
}

sweep_report sweep_stale_builds(const sweep_options& o) {
  sweep_report report;
  // The cgroups first: their processes may hold the work filesystems.
  std::map<std::string, std::vector<fs::path>> stale;
  for (const auto& parent : build_cgroup_parents()) {
    std::error_code ec;
    for (auto it = fs::directory_iterator(parent, ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      auto name = it->path().filename().string();
      auto owner = name_owner(name);
      if (owner && it->is_directory() && !owner_alive(*owner)) {
        stale[name].push_back(it->path());
      }
    }
  }
  for (const auto& [name, dirs] : stale) {
    if (auto r = remove_cgroup_dirs(dirs); !r) {
      report.errors.push_back(r.error().message);
    } else {
      report.removed.push_back("cgroup " + dirs[0].string());
    }
  }
  for (const auto& root : o.work_roots) {
    sweep_work_root(root, 0, report);
  }
  return report;
}

}  // namespace dp::runner
