// Temporary directories and child processes: the two things every other fixture is built from.
#include "dp/test/harness.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

extern char** environ;

namespace dp::test {

namespace fs = std::filesystem;

temp_dir::temp_dir(std::string_view prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = fmt::format("{}/{}-XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error(fmt::format("mkdtemp {}: {}", pattern, std::strerror(errno)));
  }
  path_ = pattern;
}

temp_dir::~temp_dir() {
  if (path_.empty()) {
    return;
  }
  std::error_code ec;
  fs::remove_all(path_, ec);
  if (ec) {
    std::cerr << "temp_dir: cannot remove " << path_ << ": " << ec.message() << '\n';
  }
}

temp_dir::temp_dir(temp_dir&& other) noexcept : path_(std::exchange(other.path_, {})) {}

temp_dir& temp_dir::operator=(temp_dir&& other) noexcept {
  if (this != &other) {
    temp_dir old(std::move(*this));
    path_ = std::exchange(other.path_, {});
  }
  return *this;
}

fs::path source_dir() {
  if (const char* dir = std::getenv("DP_SOURCE_DIR"); dir && *dir) {
    return dir;
  }
  for (fs::path p = fs::current_path(); !p.empty(); p = p.parent_path()) {
    if (fs::exists(p / "package.json") && fs::exists(p / "CMakeLists.txt")) {
      return p;
    }
    if (p == p.root_path()) {
      break;
    }
  }
  throw std::runtime_error("cannot find the repository root: set DP_SOURCE_DIR");
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

namespace {

// PATH lookup done before fork: execvpe is not async-signal-safe in a multithreaded parent.
fs::path find_program(const std::string& name, const std::map<std::string, std::string>& env) {
  if (name.find('/') != std::string::npos) {
    return name;
  }
  auto it = env.find("PATH");
  const char* sys_path = std::getenv("PATH");
  std::string path = it != env.end() ? it->second : (sys_path ? sys_path : "/usr/bin:/bin");
  std::istringstream dirs(path);
  for (std::string dir; std::getline(dirs, dir, ':');) {
    fs::path candidate = fs::path(dir.empty() ? "." : dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  throw std::runtime_error(
      fmt::format("'{}' not found in PATH ({}); run deploy/setup.sh", name, path));
}

void close_fd(int& fd) {
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
  }
}

}  // namespace

child_process::child_process(process_options options)
    : options_(std::move(options)), log_dir_("dp-log") {
  if (options_.argv.empty()) {
    throw std::invalid_argument("child_process: empty argv");
  }
  const fs::path program = find_program(options_.argv[0], options_.env);
  log_path_ = log_dir_.path() / (program.filename().string() + ".log");

  // Everything the child needs is prepared here; after fork it may only make system calls.
  std::vector<char*> argv;
  for (auto& a : options_.argv) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    if (!options_.env.contains(std::string(entry.substr(0, entry.find('='))))) {
      env_strings.emplace_back(entry);
    }
  }
  for (const auto& [k, v] : options_.env) {
    env_strings.push_back(k + "=" + v);
  }
  std::vector<char*> envp;
  for (auto& e : env_strings) {
    envp.push_back(e.data());
  }
  envp.push_back(nullptr);

  int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  // The child writes its errno here if exec fails; CLOEXEC closes it (EOF) when exec succeeds.
  int exec_pipe[2] = {-1, -1};
  if (log_fd < 0 || null_fd < 0 || ::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    int err = errno;
    close_fd(log_fd);
    close_fd(null_fd);
    throw std::runtime_error(fmt::format("child_process: {}", std::strerror(err)));
  }

  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    // The parent may have died before prctl: then nobody would ever kill us.
    if (::getppid() != parent) {
      ::_exit(127);
    }
    // Signal masks and ignored signals survive exec; the child should start with defaults.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; ++s) {
      ::sigaction(s, &dfl, nullptr);
    }
    ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    int err = 0;
    if (!options_.cwd.empty() && ::chdir(options_.cwd.c_str()) != 0) {
      err = errno;
    } else {
      ::execve(program.c_str(), argv.data(), envp.data());
      err = errno;
    }
    [[maybe_unused]] auto n = ::write(exec_pipe[1], &err, sizeof err);
    ::_exit(127);
  }
  int fork_errno = errno;
  close_fd(log_fd);
  close_fd(null_fd);
  close_fd(exec_pipe[1]);
  if (pid_ < 0) {
    close_fd(exec_pipe[0]);
    throw std::runtime_error(fmt::format("fork: {}", std::strerror(fork_errno)));
  }
  // Also from the parent, so a signal to the group cannot race the child's own setpgid.
  ::setpgid(pid_, pid_);

  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_pipe[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  close_fd(exec_pipe[0]);
  if (n > 0) {
    wait();
    throw std::runtime_error(fmt::format("cannot start {} (cwd '{}'): {}", program.string(),
                                         options_.cwd.string(), std::strerror(child_errno)));
  }
}

child_process::~child_process() {
  if (pid_ > 0 && !exit_status_) {
    stop();
  }
  if (options_.print_log_on_test_failure && ::testing::Test::HasFailure()) {
    // The tail is what explains a failure; a whole server log would drown the test output.
    constexpr std::size_t max_tail = 16 * 1024;
    std::string log = log_text();
    if (log.size() > max_tail) {
      log = "[...]\n" + log.substr(log.size() - max_tail);
    }
    std::cerr << fmt::format("----- log of {} (pid {}, {}) -----\n{}\n----- end of log -----\n",
                             options_.argv[0], pid_, log_path_.string(), log);
  }
}

void child_process::reap(int status) {
  exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

namespace {

// Waits (or checks, when !block) for `pid` to end without reaping it, so that its pid and
// process group cannot be reused while we kill what is left of the group.
bool exited(pid_t pid, bool block) {
  siginfo_t info{};
  int rc;
  do {
    rc = ::waitid(P_PID, pid, &info, WEXITED | WNOWAIT | (block ? 0 : WNOHANG));
  } while (rc < 0 && errno == EINTR);
  return rc == 0 && info.si_pid == pid;
}

}  // namespace

bool child_process::running() {
  if (exit_status_) {
    return false;
  }
  if (!exited(pid_, false)) {
    return true;
  }
  wait();
  return false;
}

void child_process::signal(int signo) {
  if (!exit_status_) {
    ::kill(pid_, signo);
  }
}

int child_process::wait() {
  if (exit_status_) {
    return *exit_status_;
  }
  exited(pid_, true);
  // Whatever the process started and left behind in its group goes with it.
  ::kill(-pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  reap(status);
  return *exit_status_;
}

int child_process::stop(std::chrono::milliseconds timeout) {
  if (exit_status_) {
    return *exit_status_;
  }
  ::kill(-pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!exit_status_) {
    ::kill(-pid_, SIGKILL);
  }
  return wait();
}

std::string child_process::log_text() const {
  std::ifstream in(log_path_, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

int processes_matching(std::string_view needle) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    auto name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    std::ifstream in(e.path() / "cmdline", std::ios::binary);
    std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    if (cmd.find(needle) != std::string::npos) {
      ++n;
    }
  }
  return n;
}

run_result run(std::vector<std::string> argv, std::map<std::string, std::string> env, fs::path cwd,
               std::chrono::milliseconds timeout) {
  child_process p(process_options{std::move(argv), std::move(env), std::move(cwd), false});
  // Short commands (git) finish in milliseconds: poll quickly at first, then back off.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::microseconds(200);
  while (p.running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(pause);
    pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(20));
  }
  int code = p.stop();
  return {code, p.log_text()};
}

}  // namespace dp::test
