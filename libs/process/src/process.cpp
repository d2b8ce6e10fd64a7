#include "dp/process/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include <algorithm>
#include <array>
#include <memory>

namespace dp::process {
namespace asio = boost::asio;
using clock = std::chrono::steady_clock;

std::string_view to_string(stream s) noexcept {
  return s == stream::out ? "stdout" : "stderr";
}

std::string exit_status::describe() const {
  auto secs = std::chrono::duration<double>(duration).count();
  if (timed_out) {
    return fmt::format("timed out after {:.1f} s", secs);
  }
  if (canceled) {
    return fmt::format("canceled after {:.1f} s", secs);
  }
  if (signal != 0) {
    const char* name = ::sigabbrev_np(signal);
    return fmt::format("killed by signal {} (SIG{})", signal, name ? name : "?");
  }
  return fmt::format("exited with code {}", code);
}

namespace {

// Splits a byte stream into lines, cutting overlong ones and dropping the rest of them.
class line_splitter {
 public:
  line_splitter(stream s, size_t max, const line_handler& h) : stream_(s), max_(max), on_line_(h) {}

  void feed(std::string_view data) {
    while (!data.empty()) {
      size_t nl = data.find('\n');
      bool complete = nl != std::string_view::npos;
      std::string_view piece = data.substr(0, nl);
      data.remove_prefix(complete ? nl + 1 : data.size());
      if (discarding_) {
        discarding_ = !complete;
        continue;
      }
      if (partial_.size() + piece.size() > max_) {
        partial_.append(piece.substr(0, max_ - partial_.size()));
        emit_truncated();
        discarding_ = !complete;
        continue;
      }
      if (!complete) {
        partial_.append(piece);
      } else if (partial_.empty()) {
        // The common case: the whole line is in the read buffer, no copy.
        on_line_(stream_, piece);
      } else {
        partial_.append(piece);
        on_line_(stream_, partial_);
        partial_.clear();
      }
    }
  }

  // End of stream: a last line without a newline is still a line.
  void finish() {
    if (!partial_.empty()) {
      on_line_(stream_, partial_);
      partial_.clear();
    }
  }

 private:
  void emit_truncated() {
    // Do not leave half a UTF-8 sequence before the marker.
    size_t end = partial_.size();
    size_t cont = 0;
    while (end > 0 && cont < 3 && (static_cast<unsigned char>(partial_[end - 1]) & 0xC0) == 0x80) {
      --end;
      ++cont;
    }
    if (end > 0) {
      auto lead = static_cast<unsigned char>(partial_[end - 1]);
      size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
      if (need > 1 && cont + 1 < need) {
        partial_.resize(end - 1);
      }
    }
    partial_.append(truncation_marker);
    on_line_(stream_, partial_);
    partial_.clear();
  }

  stream stream_;
  size_t max_;
  const line_handler& on_line_;
  std::string partial_;
  bool discarding_ = false;
};

// Everything one child needs; shared by the coroutines that watch it, all on one strand.
struct child {
  child(asio::any_io_executor ex, options o, line_handler h)
      : strand(asio::make_strand(ex)),
        out(strand),
        err(strand),
        pidfd(strand),
        watchdog_timer(strand),
        drain_timer(strand),
        opts(std::move(o)),
        on_line(std::move(h)) {}

  // Last resort (an exception escaped, or the io_context was destroyed): never leave the child
  // or its group running, never leave a zombie.
  ~child() { kill_and_reap(); }

  void kill_and_reap() {
    if (pid > 0 && !reaped) {
      ::kill(-pid, SIGKILL);
      int status = 0;
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      reaped = true;
    }
  }

  void request_cancel() {
    cancel_requested = true;
    watchdog_timer.cancel();
  }

  asio::strand<asio::any_io_executor> strand;
  asio::posix::stream_descriptor out;
  asio::posix::stream_descriptor err;
  asio::posix::stream_descriptor pidfd;
  asio::steady_timer watchdog_timer;
  asio::steady_timer drain_timer;
  options opts;
  line_handler on_line;

  pid_t pid = -1;
  clock::time_point started;
  clock::time_point ended;
  siginfo_t info{};
  bool exited = false;
  bool reaped = false;
  bool cancel_requested = false;
  bool timed_out = false;
  bool canceled = false;
  int open_pipes = 2;
  boost::system::error_code read_error;
};

// What the child reports through the exec pipe when it fails before exec.
struct child_failure {
  int stage;
  int err;
};
constexpr const char* stage_names[] = {"setpgid",   "prctl", "redirect",    "chdir",
                                       "setrlimit", "exec",  "inherit_fds", "cgroup"};

struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0) {
      ::close(fd);
    }
  }
  int release() { return std::exchange(fd, -1); }
};

// Between fork and exec: async-signal-safe calls only (no allocation, no locks, no logging).
[[noreturn]] void exec_child(pid_t parent, int devnull, int out_w, int err_w, int report_w,
                             const char* exe, char* const* argv, char* const* envp, const char* cwd,
                             const std::pair<int, uint64_t>* limits, size_t n_limits,
                             options::inherited_fd* fds, size_t n_fds, const int* cgroup_procs,
                             size_t n_cgroups) {
  // Above every inherited number, so that placing those cannot overwrite the report pipe.
  int high = 3;
  for (size_t i = 0; i < n_fds; ++i) {
    high = std::max(high, fds[i].child + 1);
  }
  if (int moved = ::fcntl(report_w, F_DUPFD_CLOEXEC, high); moved >= 0) {
    report_w = moved;
  }
  auto fail = [&report_w](int stage) {
    child_failure f{stage, errno};
    [[maybe_unused]] auto n = ::write(report_w, &f, sizeof f);
    ::_exit(127);
  };
  // Into the caller's cgroups before anything else runs ("0" names the writer itself).
  for (size_t i = 0; i < n_cgroups; ++i) {
    if (::write(cgroup_procs[i], "0", 1) != 1) {
      fail(7);
    }
  }
  // Own process group, so that a timeout or cancel reaches every descendant with one kill().
  if (::setpgid(0, 0) != 0) {
    fail(0);
  }
  // Die with the runner. The parent may already be gone: then the signal was never armed.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) {
    fail(1);
  }
  // The runner may block or ignore signals (SIGPIPE); the child starts from the defaults.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) {
    ::sigaction(s, &dfl, nullptr);
  }
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  const int from[] = {devnull, out_w, err_w};
  for (int target = 0; target < 3; ++target) {
    // dup2 onto itself keeps FD_CLOEXEC, so clear it explicitly in that case.
    int r = from[target] == target ? ::fcntl(target, F_SETFD, 0) : ::dup2(from[target], target);
    if (r < 0) {
      fail(2);
    }
  }
  // Descriptors opened by libraries without O_CLOEXEC (Redis sockets...) must not leak into
  // user code: mark everything above stderr close-on-exec.
  if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    fail(2);
  }
  // inherit_fds in two steps (first above `high`, then to their numbers), so that one target
  // number cannot overwrite the source of another.
  for (size_t i = 0; i < n_fds; ++i) {
    if ((fds[i].parent = ::fcntl(fds[i].parent, F_DUPFD_CLOEXEC, high)) < 0) {
      fail(6);
    }
  }
  for (size_t i = 0; i < n_fds; ++i) {
    if (::dup2(fds[i].parent, fds[i].child) < 0) {  // the copy is not close-on-exec
      fail(6);
    }
  }
  if (cwd != nullptr && ::chdir(cwd) != 0) {
    fail(3);
  }
  for (size_t i = 0; i < n_limits; ++i) {
    rlimit rl{static_cast<rlim_t>(limits[i].second), static_cast<rlim_t>(limits[i].second)};
    // CPU: SIGXCPU at the soft limit, SIGKILL one second later, so the cause is visible.
    if (limits[i].first == RLIMIT_CPU) {
      rl.rlim_max = rl.rlim_cur + 1;
    }
    if (::setrlimit(limits[i].first, &rl) != 0) {
      fail(4);
    }
  }
  ::execve(exe, argv, envp);
  fail(5);
  ::_exit(127);  // not reached: fail() exits
}

result<void> start(child& c) {
  const options& o = c.opts;
  if (o.argv.empty()) {
    return make_error(errc::invalid_argument, "empty argv");
  }
  auto exe = find_program(o.argv.front(), o.env);
  if (!exe) {
    return exe.error();
  }
  // Everything the child needs is built before fork: it may not allocate afterwards.
  std::vector<char*> argv;
  for (const auto& a : o.argv) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : o.env) {
    env_strings.push_back(k + "=" + v);
  }
  std::vector<char*> envp;
  for (auto& e : env_strings) {
    envp.push_back(e.data());
  }
  envp.push_back(nullptr);
  // A copy the child may change (it moves each descriptor before placing it).
  std::vector<options::inherited_fd> fds = o.inherit_fds;
  for (size_t i = 0; i < fds.size(); ++i) {
    if (fds[i].child < 3 || ::fcntl(fds[i].parent, F_GETFD) < 0) {
      return make_error(
          errc::invalid_argument,
          "inherit_fds: descriptor {} cannot be given as {} (need an open descriptor, "
          "at 3 or above)",
          fds[i].parent, fds[i].child);
    }
    for (size_t j = 0; j < i; ++j) {
      if (fds[j].child == fds[i].child) {
        return make_error(errc::invalid_argument, "inherit_fds: {} given twice", fds[i].child);
      }
    }
  }
  std::vector<std::pair<int, uint64_t>> limits;
  const auto& l = o.limits;
  for (auto [res, v] :
       {std::pair{RLIMIT_CPU, l.cpu_seconds}, std::pair{RLIMIT_NPROC, l.processes},
        std::pair{RLIMIT_FSIZE, l.file_size_bytes}, std::pair{RLIMIT_AS, l.address_space_bytes}}) {
    if (v) {
      limits.emplace_back(res, *v);
    }
  }

  auto sys_error = [&](std::string_view what) {
    return make_error(boost::system::error_code(errno, boost::system::system_category()),
                      fmt::format("start {}: {}", o.argv.front(), what));
  };
  fd_guard devnull{::open("/dev/null", O_RDONLY | O_CLOEXEC)};
  int out_p[2], err_p[2], rep_p[2];
  if (devnull.fd < 0) {
    return sys_error("open /dev/null");
  }
  if (::pipe2(out_p, O_CLOEXEC) != 0) {
    return sys_error("pipe");
  }
  fd_guard out_r{out_p[0]}, out_w{out_p[1]};
  if (::pipe2(err_p, O_CLOEXEC) != 0) {
    return sys_error("pipe");
  }
  fd_guard err_r{err_p[0]}, err_w{err_p[1]};
  if (::pipe2(rep_p, O_CLOEXEC) != 0) {
    return sys_error("pipe");
  }
  fd_guard rep_r{rep_p[0]}, rep_w{rep_p[1]};

  pid_t parent = ::getpid();
  c.started = clock::now();
  // Every signal blocked across fork: until the child has reset the handlers it inherits, one
  // sent to it (a signal to the caller's whole group reaches it before its setpgid) would run
  // the caller's handler there, and asio's writes to the caller's signal pipe: a worker told
  // SIGTERM once saw it twice. Kept pending, it meets the default action once the child unblocks.
  sigset_t all, caller_mask;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &caller_mask);
  pid_t pid = ::fork();
  if (pid != 0) {
    ::pthread_sigmask(SIG_SETMASK, &caller_mask, nullptr);
  }
  if (pid < 0) {
    return sys_error("fork");
  }
  if (pid == 0) {
    exec_child(parent, devnull.fd, out_w.fd, err_w.fd, rep_w.fd, exe->c_str(), argv.data(),
               envp.data(), o.cwd.empty() ? nullptr : o.cwd.c_str(), limits.data(), limits.size(),
               fds.data(), fds.size(), o.cgroup_procs.data(), o.cgroup_procs.size());
  }
  c.pid = pid;
  // Close our copies of the child's ends, or we would never see EOF on the pipes.
  ::close(out_w.release());
  ::close(err_w.release());
  ::close(rep_w.release());

  // Blocks only until the child execs (close-on-exec closes the pipe) or reports a failure.
  child_failure f{};
  ssize_t n;
  while ((n = ::read(rep_r.fd, &f, sizeof f)) < 0 && errno == EINTR) {
  }
  if (n == static_cast<ssize_t>(sizeof f)) {
    c.kill_and_reap();
    return make_error(boost::system::error_code(f.err, boost::system::system_category()),
                      fmt::format("start {}: {}", *exe,
                                  f.stage == 3 ? fmt::format("chdir {}", o.cwd)
                                               : std::string(stage_names[f.stage])));
  }
  // glibc 2.36's <sys/pidfd.h> lacks extern "C"; the raw syscall is the same thing.
  int pfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pfd < 0) {
    auto e = sys_error("pidfd_open");
    c.kill_and_reap();
    return e;
  }
  c.pidfd.assign(pfd);
  c.out.assign(out_r.release());
  c.err.assign(err_r.release());
  return {};
}

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

asio::awaitable<void> pump(child& c, asio::posix::stream_descriptor& d, stream s) {
  line_splitter splitter(s, c.opts.max_line_bytes, c.on_line);
  auto buf = std::make_unique<std::array<char, 65536>>();
  for (;;) {
    auto [ec, n] = co_await d.async_read_some(asio::buffer(*buf), use_tuple);
    if (n > 0) {
      splitter.feed({buf->data(), n});
    }
    if (ec) {
      if (ec != asio::error::eof && ec != asio::error::operation_aborted) {
        c.read_error = ec;
      }
      break;
    }
  }
  splitter.finish();
  d.close();
  if (--c.open_pipes == 0) {
    c.drain_timer.cancel();
  }
}

asio::awaitable<void> wait_exit(child& c) {
  int fd = c.pidfd.native_handle();
  // The pidfd turns readable when the child has exited, but the reactor may wake us early, so
  // look without reaping (WNOWAIT) and wait again until it really is a zombie.
  for (;;) {
    co_await c.pidfd.async_wait(asio::posix::descriptor_base::wait_read, use_tuple);
    siginfo_t peek{};
    int r = ::waitid(P_PIDFD, static_cast<id_t>(fd), &peek, WEXITED | WNOHANG | WNOWAIT);
    if (r == 0 && peek.si_pid != 0) {
      break;
    }
    if (r < 0 && errno != EAGAIN && errno != EINTR) {
      // ECHILD: reaped behind our back (SIGCHLD set to SIG_IGN?); supervise reports it.
      c.reaped = true;
      c.exited = true;
      c.ended = clock::now();
      c.watchdog_timer.cancel();
      co_return;
    }
  }
  // While the leader is an unreaped zombie its pid still names the group, so this sweep of
  // leftovers (sh -c 'daemon &') cannot hit an unrelated process.
  ::kill(-c.pid, SIGKILL);
  while (::waitid(P_PIDFD, static_cast<id_t>(fd), &c.info, WEXITED | WNOHANG) < 0 &&
         errno == EINTR) {
  }
  c.reaped = true;
  c.exited = true;
  c.ended = clock::now();
  c.watchdog_timer.cancel();
  // A process that left the group (setsid) may still hold the pipes: drain briefly, then stop.
  if (c.open_pipes > 0) {
    c.drain_timer.expires_after(c.opts.kill_grace);
    co_await c.drain_timer.async_wait(use_tuple);
    if (c.open_pipes > 0) {
      c.out.cancel();
      c.err.cancel();
    }
  }
}

// Enforces the timeout and cancellation: SIGTERM to the group, then SIGKILL after the grace.
asio::awaitable<void> watchdog(child& c) {
  auto deadline =
      c.opts.timeout.count() > 0 ? c.started + c.opts.timeout : clock::time_point::max();
  std::optional<clock::time_point> kill_at;
  for (;;) {
    if (c.exited) {
      co_return;
    }
    auto now = clock::now();
    if (!kill_at && (c.cancel_requested || now >= deadline)) {
      (c.cancel_requested ? c.canceled : c.timed_out) = true;
      ::kill(-c.pid, SIGTERM);
      kill_at = now + c.opts.kill_grace;
    }
    if (kill_at && now >= *kill_at) {
      ::kill(-c.pid, SIGKILL);
      co_return;
    }
    c.watchdog_timer.expires_at(kill_at ? *kill_at : deadline);
    co_await c.watchdog_timer.async_wait(use_tuple);
  }
}

asio::awaitable<result<exit_status>> supervise(std::shared_ptr<child> c) {
  using namespace asio::experimental::awaitable_operators;
  co_await (pump(*c, c->out, stream::out) && pump(*c, c->err, stream::err) && wait_exit(*c) &&
            watchdog(*c));
  if (c->read_error) {
    co_return make_error(c->read_error, fmt::format("read output of {}", c->opts.argv.front()));
  }
  if (c->info.si_pid == 0) {
    co_return make_error(errc::internal, "{} was reaped by someone else (is SIGCHLD ignored?)",
                         c->opts.argv.front());
  }
  exit_status st;
  if (c->info.si_code == CLD_EXITED) {
    st.code = c->info.si_status;
  } else {
    st.signal = c->info.si_status;
  }
  st.timed_out = c->timed_out;
  st.canceled = c->canceled;
  st.duration = std::chrono::duration_cast<std::chrono::milliseconds>(c->ended - c->started);
  co_return st;
}

}  // namespace

result<std::string> find_program(std::string_view name, const config::environment& env) {
  if (name.find('/') != std::string_view::npos) {
    return std::string(name);
  }
  auto it = env.find("PATH");
  std::string_view path = it != env.end() ? std::string_view(it->second) : "/usr/bin:/bin";
  for (std::string_view rest = path; !rest.empty();) {
    size_t colon = rest.find(':');
    std::string dir(rest.substr(0, colon));
    rest.remove_prefix(colon == std::string_view::npos ? rest.size() : colon + 1);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + std::string(name);
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return make_error(errc::not_found, "program '{}' not found in PATH={}", name, path);
}

asio::awaitable<result<exit_status>> run(options opts, line_handler on_line) {
  auto ex = co_await asio::this_coro::executor;
  auto c = std::make_shared<child>(ex, std::move(opts), std::move(on_line));
  if (auto started = start(*c); !started) {
    co_return started.error();
  }
  // The supervision runs on the child's strand; this operation bridges it back to the caller
  // and turns a cancellation of the caller's await into a request to stop the child.
  auto init = [c](auto handler) {
    auto slot = asio::get_associated_cancellation_slot(handler);
    if (slot.is_connected()) {
      slot.assign([c](asio::cancellation_type t) {
        if (t != asio::cancellation_type::none) {
          asio::post(c->strand, [c] { c->request_cancel(); });
        }
      });
    }
    asio::co_spawn(
        c->strand, supervise(c),
        [c, h = std::move(handler)](std::exception_ptr e, result<exit_status> r) mutable {
          if (e) {
            c->kill_and_reap();
            try {
              std::rethrow_exception(e);
            } catch (const std::exception& ex) {
              r = make_error(errc::internal, "supervising {}: {}", c->opts.argv.front(), ex.what());
            } catch (...) {
              r = make_error(errc::internal, "supervising {}: unknown exception",
                             c->opts.argv.front());
            }
          }
          auto hex = asio::get_associated_executor(h);
          asio::dispatch(hex, [h = std::move(h), r = std::move(r)]() mutable {
            asio::get_associated_cancellation_slot(h).clear();
            std::move(h)(std::move(r));
          });
        });
  };
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(result<exit_status>)>(
      std::move(init), asio::use_awaitable);
}

}  // namespace dp::process
