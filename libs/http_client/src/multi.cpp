// libcurl's multi-socket API on Asio, as curl's docs/examples/asiohiper.cpp: curl tells us which
// sockets to watch (socket_cb) and when to wake it (timer_cb); we wait with Asio and call
// curl_multi_socket_action. Everything touching curl runs on one strand.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "detail.hpp"
#include "dp/core/log.hpp"

namespace dp::http_client {

namespace {

void global_init() {
  // curl_global_init is not thread-safe; a function-local static runs it exactly once.
  static const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (rc != CURLE_OK) {
    dp::log::error("libcurl failed to initialize", {{"error", curl_easy_strerror(rc)}});
    std::abort();
  }
}

}  // namespace

client::impl::impl(asio::any_io_executor ex, client_options options)
    : strand_(asio::make_strand(std::move(ex))), options_(std::move(options)), timer_(strand_) {
  global_init();
  multi_ = curl_multi_init();
  if (multi_ == nullptr) {
    dp::log::error("curl_multi_init failed (out of memory?)");
    std::abort();
  }
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &impl::socket_cb);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &impl::timer_cb);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS,
                    static_cast<long>(options_.max_connections_per_host));
  curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                    static_cast<long>(options_.max_total_connections));
}

void client::impl::start(const std::shared_ptr<transfer>& t) {
  if (t->finished) {
    return;  // canceled before it started
  }
  if (closing_) {
    abort(*t, dp::make_error(errc::canceled, "{}: the HTTP client was destroyed", t->target));
    return;
  }
  CURLMcode rc = curl_multi_add_handle(multi_, t->easy);
  if (rc != CURLM_OK) {
    abort(*t, dp::make_error(errc::internal, "{}: curl_multi_add_handle: {}", t->target,
                             curl_multi_strerror(rc)));
    return;
  }
  t->in_multi = true;
  transfers_.emplace(t->easy, t);
}

void client::impl::abort(transfer& t, dp::error e) {
  if (t.finished) {
    return;
  }
  auto keep = remove(t);
  t.failure = std::move(e);
  deliver(t);
}

void client::impl::shutdown() {
  std::vector<std::shared_ptr<transfer>> all;
  for (auto& [easy, t] : transfers_) {
    all.push_back(t);
  }
  for (auto& t : all) {
    abort(*t, dp::make_error(errc::canceled, "{}: the HTTP client was destroyed", t->target));
  }
  cleanup();
}

int client::impl::socket_cb(CURL*, curl_socket_t s, int what, void* userp, void*) {
  auto* self = static_cast<impl*>(userp);
  if (what == CURL_POLL_REMOVE || self->closing_) {
    self->drop_watch(s);
    return 0;
  }
  auto& w = self->watches_[s];
  if (!w) {
    w = std::make_shared<watch>(self->strand_);
    w->curl_fd = s;
    int d = ::fcntl(s, F_DUPFD_CLOEXEC, 0);
    boost::system::error_code ec;
    if (d >= 0) {
      w->fd.assign(d, ec);
    }
    if (d < 0 || ec) {
      if (d >= 0) {
        ::close(d);
      }
      self->watches_.erase(s);
      return -1;  // curl fails the transfers on this socket
    }
  }
  w->what = what;
  self->arm(w);
  return 0;
}

int client::impl::timer_cb(CURLM*, long timeout_ms, void* userp) {
  auto* self = static_cast<impl*>(userp);
  if (timeout_ms < 0 || self->closing_) {
    self->timer_.cancel();
    return 0;
  }
  // curl must not be re-entered from its callback, so even "now" runs later. curl asks for 0 ms
  // on most transfers: that is posted, not a timer, since a timer due at once reprograms the
  // reactor's timerfd twice (a fifth of a proxy cache miss's CPU, measured). A new timeout
  // replaces the previous one, so the armed timer goes either way.
  self->timer_.cancel();
  if (timeout_ms == 0) {
    asio::post(self->strand_, [self = self->shared_from_this()] { self->on_timeout(); });
    return 0;
  }
  self->timer_.expires_after(std::chrono::milliseconds(timeout_ms));
  self->timer_.async_wait([self = self->shared_from_this()](boost::system::error_code ec) {
    if (!ec) {
      self->on_timeout();
    }
  });
  return 0;
}

void client::impl::on_timeout() {
  if (!closing_) {
    int running = 0;
    curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
    drain_completions();
  }
}

curl_socket_t client::impl::open_cb(void* clientp, curlsocktype, curl_sockaddr* a) {
  auto* self = static_cast<impl*>(clientp);
  int s = ::socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
  if (s < 0) {
    return CURL_SOCKET_BAD;
  }
  self->drop_watch(s);
  return s;
}

int client::impl::close_cb(void* clientp, curl_socket_t s) {
  static_cast<impl*>(clientp)->drop_watch(s);
  return ::close(s);
}

void client::impl::drop_watch(curl_socket_t s) {
  auto it = watches_.find(s);
  if (it == watches_.end()) {
    return;
  }
  it->second->dead = true;
  boost::system::error_code ignored;
  it->second->fd.close(ignored);  // cancels its waits
  watches_.erase(it);
}

void client::impl::arm(const std::shared_ptr<watch>& w) {
  // One wait per direction curl asked for, unless that one is pending already.
  struct direction {
    int poll;
    int select;
    bool watch::*pending;
    asio::posix::descriptor_base::wait_type wait;
  };
  for (const direction& d : {direction{CURL_POLL_IN, CURL_CSELECT_IN, &watch::reading,
                                       asio::posix::descriptor_base::wait_read},
                             direction{CURL_POLL_OUT, CURL_CSELECT_OUT, &watch::writing,
                                       asio::posix::descriptor_base::wait_write}}) {
    if ((w->what & d.poll) == 0 || (*w).*d.pending) {
      continue;
    }
    (*w).*d.pending = true;
    w->fd.async_wait(d.wait, [self = shared_from_this(), w, d](boost::system::error_code ec) {
      (*w).*d.pending = false;
      self->on_ready(w, d.select, d.poll, ec);
    });
  }
}

void client::impl::on_ready(const std::shared_ptr<watch>& w, int select, int wanted,
                            boost::system::error_code ec) {
  if (w->dead || closing_ || ec == asio::error::operation_aborted) {
    return;
  }
  if ((w->what & wanted) == 0) {
    return;  // curl changed its mind since this wait began
  }
  int running = 0;
  curl_multi_socket_action(multi_, w->curl_fd, ec ? CURL_CSELECT_ERR : select, &running);
  drain_completions();
  if (!w->dead) {
    arm(w);
  }
}

void client::impl::drain_completions() {
  int left = 0;
  while (!closing_) {
    CURLMsg* m = curl_multi_info_read(multi_, &left);
    if (m == nullptr) {
      break;
    }
    if (m->msg != CURLMSG_DONE) {
      continue;
    }
    CURLcode rc = m->data.result;
    auto it = transfers_.find(m->easy_handle);
    if (it == transfers_.end()) {
      continue;
    }
    auto t = it->second;
    remove(*t);
    if (rc != CURLE_OK || t->failure) {
      t->failure = to_error(*t, rc);
    }
    deliver(*t);
  }
}

std::shared_ptr<transfer> client::impl::remove(transfer& t) {
  std::shared_ptr<transfer> keep;
  t.finished = true;
  if (t.in_multi) {
    t.in_multi = false;
    curl_multi_remove_handle(multi_, t.easy);
    if (auto it = transfers_.find(t.easy); it != transfers_.end()) {
      keep = std::move(it->second);
      transfers_.erase(it);
    }
  }
  return keep;
}

void client::impl::deliver(transfer& t) {
  if (t.mode == sink_mode::stream) {
    if (t.on_headers) {
      complete(t.on_headers, strand_,
               t.failure ? dp::result<void>(*t.failure) : dp::result<void>{});
    }
    pump_read(t);
    return;
  }
  if (t.out_fd >= 0) {
    if (::close(t.out_fd) != 0 && !t.failure) {
      t.failure =
          dp::make_error(errc::io, "write {}: {}", t.out_path.string(), std::strerror(errno));
    }
    t.out_fd = -1;
    if (t.failure) {
      std::error_code ignored;
      std::filesystem::remove(t.out_path, ignored);
    }
  }
  complete(t.on_done, strand_,
           t.failure ? dp::result<response>(*t.failure) : dp::result<response>(std::move(t.resp)));
}

void client::impl::cleanup() {
  if (closing_) {
    return;
  }
  closing_ = true;  // from here on, curl's callbacks only let go of sockets
  for (auto& [easy, t] : transfers_) {
    curl_multi_remove_handle(multi_, easy);
    t->in_multi = false;
    t->finished = true;
  }
  transfers_.clear();
  curl_multi_cleanup(multi_);  // closes cached connections through close_cb
  multi_ = nullptr;
  for (auto& [s, w] : watches_) {
    w->dead = true;
    boost::system::error_code ignored;
    w->fd.close(ignored);
  }
  watches_.clear();
  timer_.cancel();
}

}  // namespace dp::http_client
