// stop_flag and the process launcher.
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "dp/core/log.hpp"
#include "dp/process/process.hpp"
#include "dp/worker/launcher.hpp"

namespace dp::worker {

namespace asio = boost::asio;

struct stop_flag::impl {
  explicit impl(asio::any_io_executor ex) : timer(ex, asio::steady_timer::time_point::max()) {}
  asio::steady_timer timer;
  bool requested = false;
};

stop_flag::stop_flag(asio::any_io_executor ex) : impl_(std::make_unique<impl>(ex)) {}
stop_flag::~stop_flag() = default;

void stop_flag::request() {
  impl_->requested = true;
  impl_->timer.cancel();
}

bool stop_flag::requested() const noexcept {
  return impl_->requested;
}

asio::awaitable<void> stop_flag::wait() {
  while (!impl_->requested) {
    co_await impl_->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

namespace {

// "-p<pid>-<start>" of this process (start: /proc/self/stat field 22, clock ticks since boot), the
// owner suffix that `build-runner sweep` reads (dp/runner/sweep.hpp): a work directory of a
// worker that is gone is removed by the next sweep.
std::string owner_suffix() {
  std::ifstream in("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto paren = text.rfind(')');
  std::istringstream fields(paren == std::string::npos ? std::string() : text.substr(paren + 1));
  std::string f;
  for (int i = 3; fields >> f && i < 22; ++i) {
  }
  if (f.empty() || f.find_first_not_of("0123456789") != std::string::npos || f == "0") {
    return "";  // unknown: a name without an owner, never swept
  }
  return fmt::format("-p{}-{}", ::getpid(), f);
}

class process_launcher final : public launcher {
 public:
  explicit process_launcher(process_launcher_options o) : opts_(std::move(o)) {}

  std::string_view name() const noexcept override { return "process"; }

  // Children die with the worker (PR_SET_PDEATHSIG), but a runner killed with SIGKILL leaves its
  // build's cgroup (with the sandbox still running in it) and a dead worker its work directories:
  // `build-runner sweep` kills and removes what belongs to no live runner or worker.
  task<void> clean_up(const liveness_check&) override {
    auto sweep = opts_.sweep_args;
    if (!sweep) {
      sweep = std::vector<std::string>{"sweep"};
    }
    if (sweep->empty()) {
      co_return dp::result<void>{};
    }
    process::options o;
    o.argv.push_back(opts_.program);
    o.argv.insert(o.argv.end(), sweep->begin(), sweep->end());
    o.env = opts_.env;
    o.env["TMPDIR"] = work_root().string();
    o.timeout = std::chrono::seconds(60);
    std::string errors;
    auto r = co_await process::run(std::move(o), [&](process::stream s, std::string_view line) {
      dp::log::info(line, {{"stream", process::to_string(s)}, {"launcher", "process"}});
      if (s == process::stream::err && errors.size() < 1000) {
        errors += fmt::format("{}{}", errors.empty() ? "" : "; ", line);
      }
    });
    if (!r) {
      co_return r.error();
    }
    if (!r->success()) {
      co_return make_error(errc::internal, "build-runner sweep: {}{}", r->describe(),
                           errors.empty() ? "" : ": " + errors);
    }
    co_return dp::result<void>{};
  }

  task<build_end> run(const proto::job& job, stop_flag& stop) override {
    using namespace asio::experimental::awaitable_operators;
    // TMPDIR per build: the runner's work directory lands here, and a killed runner (which
    // cannot clean up after itself) leaves nothing behind once we remove it.
    std::error_code ec;
    auto tmp = work_root() / ("dp-build-" + job.deployment_id + "-" + std::to_string(job.attempt) +
                              owner_suffix_);
    std::filesystem::create_directories(tmp, ec);
    if (ec) {
      co_return make_error(errc::io, "create the build's work directory {}: {}", tmp.string(),
                           ec.message());
    }
    process::options o;
    o.argv.push_back(opts_.program);
    std::vector<std::string> args = opts_.args;
    if (args.empty()) {
      args = {"build", "--deployment", "{id}"};
    }
    for (auto& a : args) {
      o.argv.push_back(a == "{id}" ? job.deployment_id : a);
    }
    o.env = opts_.env;
    o.env["TMPDIR"] = tmp.string();
    o.timeout = std::chrono::seconds(job.timeout_s) + opts_.timeout_margin;
    // No grace: a runner given SIGTERM would record `failed`, which is not ours to decide when
    // the worker hands the job back; the worker records the status of a stopped build itself.
    o.kill_grace = std::chrono::milliseconds(0);
    auto on_line = [id = job.deployment_id](process::stream s, std::string_view line) {
      dp::log::info(line, {{"deployment", id}, {"stream", process::to_string(s)}});
    };
    auto r = co_await (process::run(std::move(o), std::move(on_line)) || stop.wait());
    std::filesystem::remove_all(tmp, ec);
    if (r.index() == 1) {
      co_return build_end::stopped_by_worker();
    }
    build_end end;
    auto& st = std::get<0>(r);
    if (!st) {
      co_return st.error();
    }
    if (st->code >= 0) {
      end.exit_code = st->code;
    }
    end.description = st->describe();
    co_return end;
  }

 private:
  std::filesystem::path work_root() const {
    std::error_code ec;
    return opts_.work_root.empty() ? std::filesystem::temp_directory_path(ec) : opts_.work_root;
  }

  process_launcher_options opts_;
  std::string owner_suffix_ = owner_suffix();
};

}  // namespace

std::unique_ptr<launcher> make_process_launcher(process_launcher_options o) {
  return std::make_unique<process_launcher>(std::move(o));
}

}  // namespace dp::worker
