#include "dp/runner/cgroup.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <charconv>
#include <fstream>
#include <optional>
#include <sstream>

namespace dp::runner {
namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

constexpr const char* cgroup_root = "/sys/fs/cgroup";
constexpr long cgroup2_magic = 0x63677270;  // CGROUP2_SUPER_MAGIC

std::optional<std::string> read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    return std::nullopt;
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

dp::error sys_error(int err, std::string_view what, const fs::path& p) {
  return make_error(boost::system::error_code(err, boost::system::system_category()),
                    fmt::format("{} {}", what, p.string()));
}

// One write(2), as the kernel's cgroup files expect; errno tells EBUSY from the rest.
result<void> write_text(const fs::path& p, std::string_view text) {
  int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    return sys_error(errno, "open", p);
  }
  auto n = ::write(fd, text.data(), text.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size())) {
    return sys_error(err, fmt::format("write '{}' to", text), p);
  }
  return {};
}

result<void> make_dir(const fs::path& p, bool exist_ok) {
  if (::mkdir(p.c_str(), 0755) != 0 && !(exist_ok && errno == EEXIST)) {
    return sys_error(errno, "mkdir", p);
  }
  return {};
}

// The number after `key ` in a flat keyed file (memory.events, pids.events, oom_control).
uint64_t keyed_value(const fs::path& p, std::string_view key) {
  auto text = read_text(p);
  if (!text) {
    return 0;
  }
  std::istringstream in(*text);
  std::string k;
  uint64_t v = 0;
  while (in >> k >> v) {
    if (k == key) {
      return v;
    }
  }
  return 0;
}

std::vector<pid_t> pids_in(const fs::path& dir) {
  std::vector<pid_t> pids;
  auto text = read_text(dir / "cgroup.procs");
  if (!text) {
    return pids;
  }
  std::istringstream in(*text);
  pid_t p = 0;
  while (in >> p) {
    pids.push_back(p);
  }
  return pids;
}

// Our own cgroup in the hierarchy whose controllers (field 2 of /proc/self/cgroup) include
// `controller`; "" names the v2 line ("0::/path").
std::optional<std::string> own_cgroup(std::string_view controller) {
  auto text = read_text("/proc/self/cgroup");
  if (!text) {
    return std::nullopt;
  }
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);) {
    auto a = line.find(':');
    auto b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) {
      continue;
    }
    std::string_view ctrls(line.data() + a + 1, b - a - 1);
    bool match = controller.empty() ? ctrls.empty() : false;
    for (std::string_view rest = ctrls; !controller.empty() && !rest.empty();) {
      auto comma = rest.find(',');
      if (rest.substr(0, comma) == controller) {
        match = true;
      }
      rest.remove_prefix(comma == std::string_view::npos ? rest.size() : comma + 1);
    }
    if (match) {
      return line.substr(b + 1);
    }
  }
  return std::nullopt;
}

// The directory of our own v1 cgroup of `controller`: its mount point (from mountinfo) plus our
// path in that hierarchy, less the mount's root (a container sees its own cgroup mounted).
std::optional<fs::path> v1_own_dir(std::string_view controller) {
  auto own = own_cgroup(controller);
  auto text = read_text("/proc/self/mountinfo");
  if (!own || !text) {
    return std::nullopt;
  }
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string id, parent, dev, root, point;
    f >> id >> parent >> dev >> root >> point;
    auto dash = line.find(" - ");
    if (dash == std::string::npos) {
      continue;
    }
    std::istringstream tail(line.substr(dash + 3));
    std::string type, source, super;
    tail >> type >> source >> super;
    if (type != "cgroup") {
      continue;
    }
    bool has = false;
    for (std::string_view rest = super; !rest.empty();) {
      auto comma = rest.find(',');
      has = has || rest.substr(0, comma) == controller;
      rest.remove_prefix(comma == std::string_view::npos ? rest.size() : comma + 1);
    }
    if (!has) {
      continue;
    }
    std::string rel = *own;
    if (root != "/" && rel.starts_with(root)) {
      rel = rel.substr(root.size());
    }
    return (fs::path(point) / fs::path(rel).relative_path()).lexically_normal();
  }
  return std::nullopt;
}

// Enables memory and pids for the children of `dir`; when `dir` holds processes (EBUSY), moves
// them into the leaf dir/dp-runner first.
result<void> enable_controllers(const fs::path& dir, bool evacuate) {
  auto r = write_text(dir / "cgroup.subtree_control", "+memory +pids");
  if (r || !evacuate || r.error().code.value() != EBUSY) {
    return r;
  }
  auto leaf = dir / "dp-runner";
  if (auto m = make_dir(leaf, true); !m) {
    return m;
  }
  for (pid_t p : pids_in(dir)) {
    // A process that has just exited is no error.
    if (auto w = write_text(leaf / "cgroup.procs", std::to_string(p));
        !w && w.error().code.value() != ESRCH) {
      return w;
    }
  }
  return write_text(dir / "cgroup.subtree_control", "+memory +pids");
}

// v2: the cgroup whose dp-builds a build of this process goes in (our own, less a dp-runner leaf).
std::optional<fs::path> v2_home() {
  auto own = own_cgroup("");
  if (!own) {
    return std::nullopt;
  }
  auto home = (fs::path(cgroup_root) / fs::path(*own).relative_path()).lexically_normal();
  if (home.filename() == "dp-runner") {
    home = home.parent_path();
  }
  return home;
}

}  // namespace

std::vector<fs::path> build_cgroup_parents() {
  std::vector<fs::path> parents;
  if (cgroup_version() == 2) {
    if (auto home = v2_home()) {
      parents.push_back(*home / "dp-builds");
    }
  } else {
    for (std::string_view controller : {"memory", "pids"}) {
      if (auto own = v1_own_dir(controller)) {
        parents.push_back(*own / "dp-builds");
      }
    }
  }
  std::erase_if(parents, [](const fs::path& p) { return !fs::is_directory(p); });
  return parents;
}

result<void> remove_cgroup_dirs(const std::vector<fs::path>& dirs) {
  // As kill_all and remove, without an executor: rounds of SIGKILL (cgroup.kill on v2) until
  // no process is left, then rmdir, EBUSY retried while the last ones are being reaped.
  for (int round = 0;; ++round) {
    bool empty = true;
    for (const auto& d : dirs) {
      if (fs::exists(d / "cgroup.kill")) {
        if (keyed_value(d / "cgroup.events", "populated") != 0) {
          empty = false;
          (void)write_text(d / "cgroup.kill", "1");
        }
        continue;
      }
      for (pid_t p : pids_in(d)) {
        empty = false;
        ::kill(p, SIGKILL);
      }
    }
    if (empty) {
      break;
    }
    if (round >= 1000) {
      return make_error(errc::internal, "processes are still left in {} after SIGKILL",
                        dirs.empty() ? std::string() : dirs[0].string());
    }
    ::usleep(round < 20 ? 1000 : 5000);
  }
  for (const auto& d : dirs) {
    int tries = 0;
    while (::rmdir(d.c_str()) != 0 && errno == EBUSY && ++tries < 100) {
      ::usleep(10000);
    }
    if (fs::exists(d)) {
      return sys_error(errno, "rmdir", d);
    }
  }
  return {};
}

int cgroup_version() {
  struct statfs st {};
  return ::statfs(cgroup_root, &st) == 0 && st.f_type == cgroup2_magic ? 2 : 1;
}

result<build_cgroup> build_cgroup::create(const std::string& name, const cgroup_limits& limits) {
  build_cgroup cg;
  cg.version_ = cgroup_version();
  auto limit_text = [](uint64_t v) { return v == 0 ? std::string("max") : std::to_string(v); };
  if (cg.version_ == 2) {
    auto found = v2_home();
    if (!found) {
      return make_error(errc::unavailable,
                        "cgroup v2: no entry for this process in /proc/self/cgroup");
    }
    const auto& home = *found;
    auto available = read_text(home / "cgroup.controllers").value_or("");
    for (std::string_view c : {"memory", "pids"}) {
      if (available.find(c) == std::string::npos) {
        return make_error(errc::unavailable,
                          "cgroup v2: the {} controller is not available in {} (not delegated)", c,
                          home.string());
      }
    }
    bool is_root = home == fs::path(cgroup_root);
    if (auto r = enable_controllers(home, !is_root); !r) {
      return make_error(errc::unavailable, "cgroup v2: {}", r.error().message);
    }
    auto builds = home / "dp-builds";
    if (auto r = make_dir(builds, true); !r) {
      return make_error(errc::unavailable, "cgroup v2: {}", r.error().message);
    }
    if (auto r = enable_controllers(builds, false); !r) {
      return make_error(errc::unavailable, "cgroup v2: {}", r.error().message);
    }
    auto dir = builds / name;
    if (auto r = make_dir(dir, false); !r) {
      return make_error(errc::unavailable, "cgroup v2: {}", r.error().message);
    }
    cg.dirs_.push_back(dir);
    // No swap: the limit is the memory the build gets. The whole build dies on an OOM kill, not
    // one process of it that a parent then waits for.
    for (auto [file, value, required] :
         {std::tuple{"memory.max", limit_text(limits.memory_bytes), true},
          std::tuple{"memory.swap.max", std::string("0"), false},
          std::tuple{"memory.oom.group", std::string("1"), false},
          std::tuple{"pids.max", limit_text(limits.pids), true}}) {
      if (!required && !fs::exists(dir / file)) {
        continue;
      }
      if (auto r = write_text(dir / file, value); !r) {
        return make_error(errc::unavailable, "cgroup v2: {}", r.error().message);
      }
    }
  } else {
    for (std::string_view controller : {"memory", "pids"}) {
      auto own = v1_own_dir(controller);
      if (!own) {
        return make_error(errc::unavailable, "cgroup v1: no {} hierarchy is mounted", controller);
      }
      auto builds = *own / "dp-builds";
      if (auto r = make_dir(builds, true); !r) {
        return make_error(errc::unavailable, "cgroup v1: {}", r.error().message);
      }
      auto dir = builds / name;
      if (auto r = make_dir(dir, false); !r) {
        return make_error(errc::unavailable, "cgroup v1: {}", r.error().message);
      }
      cg.dirs_.push_back(dir);
    }
    const auto& mem = cg.dirs_[0];
    auto bytes = limits.memory_bytes == 0 ? std::string("-1") : std::to_string(limits.memory_bytes);
    if (auto r = write_text(mem / "memory.limit_in_bytes", bytes); !r) {
      return make_error(errc::unavailable, "cgroup v1: {}", r.error().message);
    }
    // memory+swap at the same value: no swap (the file exists only with swap accounting).
    if (fs::exists(mem / "memory.memsw.limit_in_bytes")) {
      if (auto r = write_text(mem / "memory.memsw.limit_in_bytes", bytes); !r) {
        return make_error(errc::unavailable, "cgroup v1: {}", r.error().message);
      }
    }
    if (auto r = write_text(cg.dirs_[1] / "pids.max", limit_text(limits.pids)); !r) {
      return make_error(errc::unavailable, "cgroup v1: {}", r.error().message);
    }
  }
  for (const auto& d : cg.dirs_) {
    int fd = ::open((d / "cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      return make_error(errc::unavailable, "cgroup: {}",
                        sys_error(errno, "open", d / "cgroup.procs").message);
    }
    cg.procs_fds_.push_back(fd);
  }
  return cg;
}

build_cgroup::build_cgroup(build_cgroup&& o) noexcept
    : version_(o.version_),
      dirs_(std::move(o.dirs_)),
      procs_fds_(std::move(o.procs_fds_)),
      removed_(o.removed_) {
  o.dirs_.clear();
  o.procs_fds_.clear();
  o.removed_ = true;
}

build_cgroup::~build_cgroup() {
  close_fds();
  if (removed_ || dirs_.empty()) {
    return;
  }
  // Last resort (remove() was not awaited): one kill round, then rmdir what can go.
  kill_round();
  for (const auto& d : dirs_) {
    ::rmdir(d.c_str());
  }
}

void build_cgroup::close_fds() {
  for (int fd : procs_fds_) {
    ::close(fd);
  }
  procs_fds_.clear();
}

cgroup_counters build_cgroup::counters() const {
  cgroup_counters c;
  if (dirs_.empty()) {
    return c;
  }
  if (version_ == 2) {
    c.oom_kills = keyed_value(dirs_[0] / "memory.events", "oom_kill");
    c.pids_refused = keyed_value(dirs_[0] / "pids.events", "max");
  } else {
    c.oom_kills = keyed_value(dirs_[0] / "memory.oom_control", "oom_kill");
    c.pids_refused = keyed_value(dirs_.back() / "pids.events", "max");
  }
  return c;
}

bool build_cgroup::kill_round() const {
  if (version_ == 2 && !dirs_.empty() && fs::exists(dirs_[0] / "cgroup.kill")) {
    // The kernel kills every process in the cgroup at once, forks in flight included.
    if (keyed_value(dirs_[0] / "cgroup.events", "populated") == 0) {
      return true;
    }
    (void)write_text(dirs_[0] / "cgroup.kill", "1");
    return false;
  }
  bool empty = true;
  for (const auto& d : dirs_) {
    for (pid_t p : pids_in(d)) {
      empty = false;
      ::kill(p, SIGKILL);
    }
  }
  return empty;
}

asio::awaitable<result<void>> build_cgroup::kill_all() {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer t(ex);
  // A fork bomb may fork between the read of cgroup.procs and the kills: rounds until none is
  // left. Killed processes leave the cgroup once they are reaped; 5 s is plenty for that.
  for (int round = 0; round < 1000; ++round) {
    if (kill_round()) {
      co_return result<void>{};
    }
    t.expires_after(std::chrono::milliseconds(round < 20 ? 1 : 5));
    boost::system::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return make_error(errc::internal, "processes are still left in {} after SIGKILL",
                       dirs_.empty() ? std::string() : dirs_[0].string());
}

asio::awaitable<result<void>> build_cgroup::remove() {
  if (removed_ || dirs_.empty()) {
    co_return result<void>{};
  }
  close_fds();
  auto killed = co_await kill_all();
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer t(ex);
  for (const auto& d : dirs_) {
    // The last reaped processes may still be leaving: EBUSY is retried a little.
    int tries = 0;
    while (::rmdir(d.c_str()) != 0 && errno == EBUSY && ++tries < 100) {
      t.expires_after(std::chrono::milliseconds(10));
      boost::system::error_code ec;
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (fs::exists(d)) {
      removed_ = true;
      co_return sys_error(errno, "rmdir", d);
    }
  }
  removed_ = true;
  if (!killed) {
    co_return killed.error();
  }
  co_return result<void>{};
}

std::string build_cgroup::describe() const {
  return fmt::format("cgroup v{} {}", version_, dirs_.empty() ? std::string() : dirs_[0].string());
}

namespace {

// A limit file's number ("max" and unreadable files: 0). v1 reports "no limit" as a huge number.
uint64_t limit_value(const fs::path& p) {
  auto text = read_text(p);
  uint64_t v = 0;
  if (!text || std::from_chars(text->data(), text->data() + text->size(), v).ec != std::errc()) {
    return 0;
  }
  return v >= (uint64_t{1} << 62) ? 0 : v;
}

}  // namespace

cgroup_counters container_limits::counters() const {
  cgroup_counters c;
  fs::path root(cgroup_root);
  if (version == 2) {
    c.oom_kills = keyed_value(root / "memory.events", "oom_kill");
    c.pids_refused = keyed_value(root / "pids.events", "max");
  } else {
    c.oom_kills = keyed_value(root / "memory/memory.oom_control", "oom_kill");
    c.pids_refused = keyed_value(root / "pids/pids.events", "max");
  }
  return c;
}

std::optional<container_limits> read_container_limits() {
  container_limits l;
  l.version = cgroup_version();
  fs::path root(cgroup_root);
  if (l.version == 2) {
    l.memory_bytes = limit_value(root / "memory.max");
    l.pids = limit_value(root / "pids.max");
  } else {
    l.memory_bytes = limit_value(root / "memory/memory.limit_in_bytes");
    l.pids = limit_value(root / "pids/pids.max");
  }
  if (l.memory_bytes == 0 && l.pids == 0) {
    return std::nullopt;
  }
  return l;
}

namespace {

struct proc_entry {
  pid_t pid = 0;
  pid_t parent = 0;
  bool zombie = false;
};

// The processes whose real or effective uid is `uid`, from /proc/<pid>/status.
std::vector<proc_entry> processes_of(uid_t uid) {
  std::vector<proc_entry> out;
  DIR* d = ::opendir("/proc");
  if (!d) {
    return out;
  }
  while (auto* e = ::readdir(d)) {
    pid_t pid = 0;
    std::string_view name(e->d_name);
    if (std::from_chars(name.data(), name.data() + name.size(), pid).ec != std::errc() ||
        pid <= 0) {
      continue;
    }
    auto text = read_text(fs::path("/proc") / name / "status");
    if (!text) {
      continue;  // gone meanwhile
    }
    std::istringstream in(*text);
    std::string line;
    proc_entry p{.pid = pid};
    bool mine = false;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string key;
      fields >> key;
      if (key == "State:") {
        std::string state;
        fields >> state;
        p.zombie = state == "Z" || state == "X";
      } else if (key == "PPid:") {
        fields >> p.parent;
      } else if (key == "Uid:") {
        uid_t real = 0;
        uid_t effective = 0;
        fields >> real >> effective;
        mine = real == uid || effective == uid;
      }
    }
    if (mine) {
      out.push_back(p);
    }
  }
  ::closedir(d);
  return out;
}

}  // namespace

int kill_processes_of(uid_t uid) {
  int killed = 0;
  // A fork bomb forks while we walk: rounds until one finds nothing alive (bounded, as the
  // pids limit bounds what can fork).
  for (int round = 0; round < 1000; ++round) {
    bool alive = false;
    for (const auto& p : processes_of(uid)) {
      if (!p.zombie && ::kill(p.pid, SIGKILL) == 0) {
        alive = true;
        ++killed;
      }
    }
    if (!alive) {
      break;
    }
  }
  // Our own children among them (orphans pid 1 inherited) are reaped, so that they stop counting
  // against the pids limit. Only processes of the build's uid: the runner's own children run as
  // root and are watched by their pidfds.
  for (int round = 0; round < 100; ++round) {
    bool waiting = false;
    for (const auto& p : processes_of(uid)) {
      if (p.parent == ::getpid()) {
        waiting = waiting || ::waitpid(p.pid, nullptr, WNOHANG) == 0;
      }
    }
    if (!waiting) {
      break;
    }
    ::usleep(10'000);
  }
  return killed;
}

}  // namespace dp::runner
