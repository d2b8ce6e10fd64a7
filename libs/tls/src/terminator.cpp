// The TLS relay: accept, handshake (SNI picks the context), hand one end of a socketpair to the
// HTTP server, then copy bytes both ways on the connection's strand.
#include "dp/tls/terminator.hpp"

#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl.hpp>

#include <fmt/format.h>

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "contexts_state.hpp"
#include "dp/core/log.hpp"
#include "dp/core/spawn.hpp"

namespace dp::tls {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
using strand_t = asio::strand<asio::io_context::executor_type>;
using executor_t = asio::as_tuple_t<asio::use_awaitable_t<>>::executor_with_default<strand_t>;
using socket_t = asio::basic_stream_socket<tcp, executor_t>;
using timer_t =
    asio::basic_waitable_timer<std::chrono::steady_clock,
                               asio::wait_traits<std::chrono::steady_clock>, executor_t>;
using acceptor_t = asio::basic_socket_acceptor<tcp, executor_t>;
using tls_stream = asio::ssl::stream<socket_t>;
using local_socket_t = asio::basic_stream_socket<asio::local::stream_protocol, executor_t>;

constexpr size_t relay_buffer = 16 * 1024;

// Client to upstream: on the client's end of data, half-close upstream so the HTTP server sees
// it; on an error, close both.
asio::awaitable<void> client_to_upstream(tls_stream& client, local_socket_t& upstream) {
  std::array<char, relay_buffer> buf;
  for (;;) {
    auto [ec, n] = co_await client.async_read_some(asio::buffer(buf));
    if (n > 0) {
      auto [wec, w] = co_await asio::async_write(upstream, asio::buffer(buf.data(), n));
      if (wec) {
        break;
      }
    }
    if (ec) {
      boost::system::error_code ignored;
      if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
        upstream.shutdown(local_socket_t::shutdown_send, ignored);
        co_return;
      }
      break;
    }
  }
  boost::system::error_code ignored;
  upstream.close(ignored);
  client.lowest_layer().close(ignored);
}

// Upstream to client: when the HTTP server closes (keep-alive ended, drain), so does the client
// connection.
asio::awaitable<void> upstream_to_client(local_socket_t& upstream, tls_stream& client) {
  std::array<char, relay_buffer> buf;
  for (;;) {
    auto [ec, n] = co_await upstream.async_read_some(asio::buffer(buf));
    if (n > 0) {
      auto [wec, w] = co_await asio::async_write(client, asio::buffer(buf.data(), n));
      if (wec) {
        break;
      }
    }
    if (ec) {
      break;
    }
  }
  // No close_notify: HTTP/1.1 frames every response, so the client loses nothing when the
  // connection simply closes.
  boost::system::error_code ignored;
  client.lowest_layer().close(ignored);
  upstream.close(ignored);
}

}  // namespace

struct terminator::impl : std::enable_shared_from_this<impl> {
  impl(asio::io_context& io, terminator_options o, std::shared_ptr<server_contexts> c,
       hand_off_fn h)
      : ioc(io),
        opts(std::move(o)),
        contexts(std::move(c)),
        hand_off(std::move(h)),
        strand(asio::make_strand(io)),
        acceptor(executor_t(strand)) {}

  asio::awaitable<void> accept_loop();
  asio::awaitable<void> relay(socket_t sock);

  asio::io_context& ioc;
  terminator_options opts;
  std::shared_ptr<server_contexts> contexts;
  hand_off_fn hand_off;
  strand_t strand;
  acceptor_t acceptor;
  uint16_t bound = 0;
  std::atomic<size_t> count{0};
};

asio::awaitable<void> terminator::impl::accept_loop() {
  for (;;) {
    auto [ec, sock] = co_await acceptor.async_accept(executor_t(asio::make_strand(ioc)));
    if (ec) {
      if (!acceptor.is_open() || ec == asio::error::operation_aborted) {
        co_return;
      }
      log::warn("tls accept failed", {{"error", ec.message()}});
      timer_t pause(strand, std::chrono::milliseconds(50));
      co_await pause.async_wait();
      continue;
    }
    if (count.load(std::memory_order_relaxed) >= opts.max_connections) {
      continue;
    }
    count.fetch_add(1, std::memory_order_relaxed);
    auto ex = sock.get_executor();
    // A named lambda owning the socket (gcc bug 107288 with temporaries in co_spawn).
    auto relay_main = [self = shared_from_this(),
                       s = std::make_shared<socket_t>(std::move(sock))]() -> asio::awaitable<void> {
      co_await self->relay(std::move(*s));
    };
    dp::spawn(ex, relay_main, "tls relay",
              [self = shared_from_this()](bool) { self->count.fetch_sub(1); });
  }
}

asio::awaitable<void> terminator::impl::relay(socket_t sock) {
  boost::system::error_code ignored;
  sock.set_option(tcp::no_delay(true), ignored);
  boost::system::error_code rec;
  auto ep = sock.remote_endpoint(rec);
  dp::config::host_port remote{rec ? std::string{} : ep.address().to_string(),
                               rec ? uint16_t{0} : ep.port()};
  auto ex = sock.get_executor();
  tls_stream client(std::move(sock), contexts->state_->front);
  {
    // A client that never finishes its handshake is dropped.
    timer_t deadline(ex, opts.handshake_timeout);
    auto done =
        co_await (client.async_handshake(asio::ssl::stream_base::server) || deadline.async_wait());
    if (done.index() != 0 || std::get<0>(std::get<0>(done))) {
      // Unknown SNI, an old protocol, no shared cipher, a timeout: nothing to log per client.
      client.lowest_layer().close(ignored);
      co_return;
    }
  }
  // The plain side: one end to the HTTP server, the other relayed here.
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) {
    log::warn("tls relay: no socketpair", {{"error", std::strerror(errno)}});
    client.lowest_layer().close(ignored);
    co_return;
  }
  local_socket_t upstream(ex);
  upstream.assign(asio::local::stream_protocol(), pair[0], ignored);
  hand_off(pair[1], remote);
  co_await (client_to_upstream(client, upstream) && upstream_to_client(upstream, client));
}

terminator::terminator(asio::io_context& ioc, terminator_options options,
                       std::shared_ptr<server_contexts> contexts, hand_off_fn hand_off)
    : impl_(std::make_shared<impl>(ioc, std::move(options), std::move(contexts),
                                   std::move(hand_off))) {}

terminator::~terminator() {
  stop();
}

dp::result<void> terminator::start() {
  auto& i = *impl_;
  std::string what = fmt::format("listen on {}", i.opts.listen.to_string());
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(i.opts.listen.host, ec);
  if (ec) {
    return make_error(ec, what + " (an IP address is needed)");
  }
  tcp::endpoint ep{addr, i.opts.listen.port};
  i.acceptor.open(ep.protocol(), ec);
  if (!ec) {
    i.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  }
  if (!ec) {
    i.acceptor.bind(ep, ec);
  }
  if (!ec) {
    i.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    i.acceptor.close(ec);
    return make_error(ec, what);
  }
  i.bound = i.acceptor.local_endpoint(ec).port();
  auto accept_main = [self = impl_]() -> asio::awaitable<void> { co_await self->accept_loop(); };
  dp::spawn(i.strand, accept_main, "tls accept loop");
  return {};
}

uint16_t terminator::port() const {
  return impl_->bound;
}

void terminator::stop() {
  asio::post(impl_->strand, [self = impl_] {
    boost::system::error_code ignored;
    self->acceptor.close(ignored);
  });
}

size_t terminator::connections() const noexcept {
  return impl_->count.load();
}

}  // namespace dp::tls
