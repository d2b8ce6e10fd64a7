// stop_flag and the process launcher.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <filesystem>
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

class process_launcher final : public launcher {
 public:
  explicit process_launcher(process_launcher_options o) : opts_(std::move(o)) {}

  std::string_view name() const noexcept override { return "process"; }

  // Children die with the worker (PR_SET_PDEATHSIG): nothing of an earlier run is left.
  task<void> clean_up(const liveness_check&) override { co_return dp::result<void>{}; }

  task<build_end> run(const proto::job& job, stop_flag& stop) override {
    using namespace asio::experimental::awaitable_operators;
    // TMPDIR per build: the runner's work directory lands here, and a killed runner (which
    // cannot clean up after itself) leaves nothing behind once we remove it.
    std::error_code ec;
    auto root =
        opts_.work_root.empty() ? std::filesystem::temp_directory_path(ec) : opts_.work_root;
    auto tmp = root / ("dp-build-" + job.deployment_id + "-" + std::to_string(job.attempt));
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
  process_launcher_options opts_;
};

}  // namespace

std::unique_ptr<launcher> make_process_launcher(process_launcher_options o) {
  return std::make_unique<process_launcher>(std::move(o));
}

}  // namespace dp::worker
