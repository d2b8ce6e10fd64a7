// Where a build reports (Redis or a stream), the job of a recorded deployment, and the cancel
// watch.
#include <unistd.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cerrno>

#include "dp/core/clock.hpp"
#include "dp/core/spawn.hpp"
#include "dp/proto/json.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/redis/subscriber.hpp"
#include "dp/runner/runner.hpp"
#include "dp/state/logbook.hpp"
#include "dp/state/records.hpp"

namespace dp::runner {
namespace asio = boost::asio;

namespace {

bool transient(const dp::error& e) {
  return e.is(errc::unavailable) || e.is(errc::timeout) || e.is(errc::io);
}

// Redis may blink (restart, failover): a few tries with backoff before the build gives up on it.
template <class F>
auto with_retries(F op) -> decltype(op()) {
  auto delay = std::chrono::milliseconds(200);
  for (int attempt = 1;; ++attempt) {
    auto r = co_await op();
    if (r || attempt == 4 || !transient(r.error())) {
      co_return r;
    }
    asio::steady_timer t(co_await asio::this_coro::executor, delay);
    boost::system::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    delay *= 2;
  }
}

class redis_sink final : public build_sink {
 public:
  redis_sink(state::records& records, state::log_writer& logs, proto::deployment d)
      : records_(records), logs_(logs), d_(std::move(d)) {}

  void log(proto::log_stream stream, std::string_view line) override { logs_.write(stream, line); }
  void phase(proto::log_phase p) override { logs_.phase(p); }

  task<bool> status(proto::deployment_status to, proto::hash_fields fields,
                    std::optional<std::string> error) override {
    auto r = co_await with_retries([&]() { return records_.transition(d_.id, to, fields, error); });
    if (!r) {
      co_return r.error();
    }
    if (r->applied) {
      co_return true;
    }
    // A retried transition whose first try was applied is refused as a repeat: that is success.
    co_return r->previous == to;
  }

  task<void> set_fields(proto::hash_fields fields) override {
    co_return co_await with_retries([&]() { return records_.set_fields(d_.id, fields); });
  }

  task<bool> go_live(proto::hash_fields fields) override {
    auto r = co_await with_retries([&]() { return records_.go_live(d_, fields); });
    if (!r) {
      co_return r.error();
    }
    // A retry whose first try was applied finds the deployment ready: that is success.
    co_return r->applied || r->previous == proto::deployment_status::ready;
  }

  task<void> flush() override { co_return co_await logs_.flush(std::chrono::seconds(30)); }

 private:
  state::records& records_;
  state::log_writer& logs_;
  proto::deployment d_;
};

class stream_sink final : public build_sink {
 public:
  stream_sink(int fd, bool json, std::string id) : fd_(fd), json_(json), id_(std::move(id)) {}

  void log(proto::log_stream stream, std::string_view line) override {
    std::string out;
    if (json_) {
      proto::log_event e{id_, seq_++, now_ms(), stream, std::string(line), phase_};
      proto::append_json(out, e);
    } else {
      out = fmt::format("[{}] {}", proto::to_string(stream), line);
    }
    out += '\n';
    write_all(out);
  }

  void phase(proto::log_phase p) override { phase_ = p; }

  task<bool> status(proto::deployment_status to, proto::hash_fields,
                    std::optional<std::string>) override {
    last_ = to;
    co_return true;
  }
  task<void> set_fields(proto::hash_fields) override { co_return result<void>{}; }
  task<bool> go_live(proto::hash_fields fields) override {
    co_return co_await status(proto::deployment_status::ready, std::move(fields), std::nullopt);
  }
  task<void> flush() override { co_return result<void>{}; }

 private:
  void write_all(std::string_view s) {
    while (!s.empty()) {
      auto n = ::write(fd_, s.data(), s.size());
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        return;  // stdout is gone: nobody is left to read the log
      }
      s.remove_prefix(static_cast<size_t>(n));
    }
  }

  int fd_;
  bool json_;
  std::string id_;
  int64_t seq_ = 1;
  std::optional<proto::log_phase> phase_;
  proto::deployment_status last_ = proto::deployment_status::queued;
};

}  // namespace

std::unique_ptr<build_sink> make_redis_sink(state::records& records, state::log_writer& logs,
                                            proto::deployment d) {
  return std::make_unique<redis_sink>(records, logs, std::move(d));
}

std::unique_ptr<build_sink> make_stream_sink(int fd, bool json, std::string deployment_id) {
  return std::make_unique<stream_sink>(fd, json, std::move(deployment_id));
}

task<proto::job> job_from_deployment(state::records& records, std::string_view id) {
  auto d = co_await records.get_deployment(id);
  if (!d) {
    co_return d.error();
  }
  if (proto::is_final(d->status)) {
    co_return make_error(errc::conflict, "deployment {} is already {}", id,
                         proto::to_string(d->status));
  }
  auto p = co_await records.get_project(d->project);
  if (!p) {
    co_return p.error();
  }
  proto::job j;
  j.deployment_id = d->id;
  j.project = d->project;
  j.git_url = d->git_url;
  j.ref = d->ref ? d->ref : p->production_branch;
  // The commit named when the deployment was made, or the one an earlier attempt built.
  j.commit = d->commit;
  if (d->git_url.empty()) {
    // An uploaded directory: the api-server stored it under this key (proto/README.md).
    j.source_archive = proto::source_archive_key(d->id);
    j.ref.reset();
  }
  j.root_dir = p->root_dir;
  j.install_command = p->install_command;
  j.build_command = p->build_command;
  j.output_dir = p->output_dir;
  j.mode = p->mode;
  j.install_scripts = p->install_scripts;
  j.shadowing = p->shadowing;
  j.env = proto::build_env(*p, d->target, d->fork);
  j.target = d->target;
  j.attempt = d->attempt;
  // Set to "off" at creation by a deploy without cache; a build of a project whose cache is off
  // writes it too, which changes nothing on a retry.
  j.no_cache = d->cache == "off";
  j.fork = d->fork;
  j.production_branch = p->production_branch;
  co_return j;
}

struct cancel_watch::impl {
  impl(asio::any_io_executor ex, state::records& s, const redis::options& o, std::string id,
       std::function<void(std::string)> f, std::chrono::milliseconds p)
      : records(s),
        opts(o),
        deployment_id(std::move(id)),
        on_cancel(std::move(f)),
        poll(p),
        timer(ex),
        sub(ex, o) {}

  void fire(std::optional<std::string> reason) {
    if (fired || stopped) {
      return;
    }
    fired = true;
    on_cancel(reason.value_or("canceled by request"));
  }

  state::records& records;
  redis::options opts;
  std::string deployment_id;
  std::function<void(std::string)> on_cancel;
  std::chrono::milliseconds poll;
  asio::steady_timer timer;
  redis::subscriber sub;
  bool fired = false;
  bool stopped = false;
};

namespace {

// The durable key: a request made before we subscribed, or lost in a reconnect, is still seen.
asio::awaitable<void> poll_cancel(std::shared_ptr<cancel_watch::impl> w) {
  while (!w->stopped && !w->fired) {
    auto r = co_await w->records.cancel_requested(w->deployment_id);
    if (r && *r) {
      w->fire((*r)->reason);
    }
    w->timer.expires_after(w->poll);
    boost::system::error_code ec;
    co_await w->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

// The channel: the prompt signal.
asio::awaitable<void> follow_cancel(std::shared_ptr<cancel_watch::impl> w) {
  auto channel = w->records.keys().cancel(w->deployment_id);
  if (auto ok = co_await w->sub.subscribe(channel); !ok) {
    co_return;  // the poll still sees the request
  }
  while (!w->stopped && !w->fired) {
    auto m = co_await w->sub.next();
    if (!m) {
      co_return;
    }
    if (m->kind == redis::message_kind::data) {
      auto req = proto::parse_cancel_request(m->payload);
      w->fire(req ? req->reason : std::nullopt);
    } else {
      w->timer.cancel();  // a gap: check the key now
    }
  }
}

}  // namespace

cancel_watch::cancel_watch(asio::any_io_executor ex, state::records& records,
                           const redis::options& opts, std::string deployment_id,
                           std::function<void(std::string)> on_cancel,
                           std::chrono::milliseconds poll)
    : impl_(std::make_shared<impl>(ex, records, opts, std::move(deployment_id),
                                   std::move(on_cancel), poll)) {}

cancel_watch::~cancel_watch() {
  stop();
}

void cancel_watch::start() {
  auto ex = impl_->timer.get_executor();
  dp::spawn(ex, poll_cancel(impl_), "cancel request poll");
  dp::spawn(ex, follow_cancel(impl_), "cancel request follower");
}

void cancel_watch::stop() {
  impl_->stopped = true;
  impl_->timer.cancel();
  impl_->sub.close();
}

}  // namespace dp::runner
