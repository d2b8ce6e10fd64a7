// The server: listen, accept (one session per connection, on its own strand), and stop with a
// drain deadline; run() runs the io_context on the configured threads.
#include <thread>

#include <fmt/format.h>

#include "dp/core/log.hpp"
#include "dp/core/spawn.hpp"
#include "dp/http/server.hpp"
#include "session.hpp"

namespace dp::http {
namespace detail {

server_state::server_state(asio::io_context& io, server_options o, router r)
    : ioc(io),
      opts(std::move(o)),
      routes(std::move(r)),
      accept_strand(asio::make_strand(io)),
      acceptor(accept_executor_t(accept_strand)),
      drain_timer(accept_strand) {
  if (opts.tls_context) {
    // The context object owns one reference; the caller keeps its own.
    SSL_CTX_up_ref(opts.tls_context);
    tls.emplace(opts.tls_context);
  }
}

asio::awaitable<void> server_state::accept_loop() {
  for (;;) {
    // The peer's address comes with the accept: no getpeername per connection.
    tcp::endpoint peer;
    auto [ec, sock] = co_await acceptor.async_accept(executor_t(asio::make_strand(ioc)), peer);
    if (ec) {
      if (!acceptor.is_open() || ec == asio::error::operation_aborted) {
        break;
      }
      // Out of descriptors: wait a little rather than spin.
      log::warn("http accept failed", {{"error", ec.message()}});
      wait_timer pause(accept_strand, std::chrono::milliseconds(50));
      co_await pause.async_wait();
      continue;
    }
    if (count.load(std::memory_order_relaxed) >= opts.max_connections) {
      continue;  // the socket closes when it goes out of scope
    }
    dp::config::host_port remote{peer.address().to_string(), peer.port()};
    boost::system::error_code rec;
    sock.set_option(tcp::no_delay(true), rec);
    start_session(std::move(sock), std::move(remote));
  }
  std::lock_guard lock(mu);
  accepting = false;
  maybe_done();
}

void server_state::start_session(tcp_stream_t::socket_type sock, dp::config::host_port remote) {
  tcp_stream_t tcp(std::move(sock));
  auto s = std::make_shared<session>(
      shared_from_this(), tls ? conn_stream(std::move(tcp), *tls) : conn_stream(std::move(tcp)),
      std::move(remote));
  {
    std::lock_guard lock(mu);
    sessions.insert(s);
    count.fetch_add(1, std::memory_order_relaxed);
    if (stopping) {
      asio::post(s->strand(), [s] { s->on_stop(); });
    }
  }
  // A named lambda owning the session (gcc bug 107288 with temporaries in co_spawn).
  auto session_main = [s]() -> asio::awaitable<void> { co_await s->run(); };
  dp::spawn(s->strand(), session_main, "http session",
            [self = shared_from_this(), s](bool) { self->remove(s); });
}

void server_state::remove(const std::shared_ptr<session>& s) {
  std::lock_guard lock(mu);
  sessions.erase(s);
  count.fetch_sub(1, std::memory_order_relaxed);
  maybe_done();
}

void server_state::maybe_done() {
  if (!stopping || accepting || !sessions.empty()) {
    return;
  }
  asio::post(accept_strand, [self = shared_from_this(), done = std::move(on_done)] {
    self->drain_timer.cancel();
    if (done) {
      done();
    }
  });
  on_done = nullptr;
}

void server_state::stop(std::chrono::milliseconds drain, std::function<void()> done) {
  std::lock_guard lock(mu);
  if (stopping) {
    return;
  }
  stopping = true;
  on_done = std::move(done);
  asio::post(accept_strand, [self = shared_from_this(), drain] {
    boost::system::error_code ignored;
    self->acceptor.close(ignored);
    // After the drain deadline, whatever is still open is closed.
    self->drain_timer.expires_after(drain);
    self->drain_timer.async_wait([self](boost::system::error_code ec) {
      if (ec) {
        return;
      }
      std::lock_guard lock(self->mu);
      for (const auto& s : self->sessions) {
        asio::post(s->strand(), [s] { s->force_close(); });
      }
    });
  });
  for (const auto& s : sessions) {
    asio::post(s->strand(), [s] { s->on_stop(); });
  }
  maybe_done();
}

}  // namespace detail

// ---- server ----

struct server::impl {
  std::shared_ptr<detail::server_state> state;
};

server::server(boost::asio::io_context& ioc, server_options options, router routes)
    : impl_(std::make_shared<impl>()) {
  impl_->state = std::make_shared<detail::server_state>(ioc, std::move(options), std::move(routes));
}

server::~server() {
  // Sessions keep the state alive; without a stop() they would outlive the server object.
  stop(std::chrono::milliseconds(0));
}

dp::result<void> server::start() {
  namespace asio = boost::asio;
  auto& st = *impl_->state;
  const auto& listen = st.opts.listen;
  std::string what = fmt::format("listen on {}", listen.to_string());
  boost::system::error_code ec;
  asio::ip::tcp::endpoint ep;
  auto addr = asio::ip::make_address(listen.host, ec);
  if (!ec) {
    ep = {addr, listen.port};
  } else {
    // A host name: start-up only, so a blocking resolve is fine.
    asio::ip::tcp::resolver resolver(st.ioc);
    auto results = resolver.resolve(listen.host, std::to_string(listen.port), ec);
    if (ec || results.empty()) {
      return make_error(ec ? ec : asio::error::host_not_found, what);
    }
    ep = results.begin()->endpoint();
  }
  st.acceptor.open(ep.protocol(), ec);
  if (!ec) {
    st.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  }
  if (!ec) {
    st.acceptor.bind(ep, ec);
  }
  if (!ec) {
    st.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    boost::system::error_code ignored;
    st.acceptor.close(ignored);
    return make_error(ec, what);
  }
  auto local = st.acceptor.local_endpoint(ec);
  st.bound = {local.address().to_string(), local.port()};
  {
    std::lock_guard lock(st.mu);
    st.accepting = true;
  }
  auto accept_main = [state = impl_->state]() -> asio::awaitable<void> {
    co_await state->accept_loop();
  };
  dp::spawn(st.accept_strand, accept_main, "http accept loop");
  return {};
}

dp::config::host_port server::local_endpoint() const {
  return impl_->state->bound;
}
uint16_t server::port() const {
  return impl_->state->bound.port;
}
size_t server::connections() const noexcept {
  return impl_->state->count.load();
}

void server::stop(std::chrono::milliseconds drain, std::function<void()> done) {
  impl_->state->stop(drain, std::move(done));
}

void server::run() {
  auto& ioc = impl_->state->ioc;
  std::vector<std::thread> extra;
  for (int i = 1; i < impl_->state->opts.threads; ++i) {
    extra.emplace_back([&ioc] { ioc.run(); });
  }
  ioc.run();
  for (auto& t : extra) {
    t.join();
  }
}

}  // namespace dp::http
