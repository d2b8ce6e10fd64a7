// TLS on the connection's own socket: OpenSSL writes the non-blocking descriptor itself (a
// socket BIO, as nginx does) and reads what the connection's reads put in its input buffer.
// Asio's TLS stream puts a memory BIO pair between OpenSSL and the socket, so each record was
// copied once more and each read or write was a composed operation whose completion was posted
// through the scheduler: about a third of a keep-alive HTTPS request's CPU.
// Reads go through the reactor (Asio's async_read_some into the input buffer) rather than a
// readiness wait: a wait re-arms the descriptor in epoll (an epoll_ctl per request), a read does
// not.
#pragma once

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>

namespace dp::http::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;

// Ciphertext read from the socket and not yet taken by OpenSSL. On the heap: the BIO points at
// it, and the socket object moves.
struct tls_input {
  static constexpr size_t capacity = 16 * 1024;  // a full TLS record per read
  size_t begin = 0;
  size_t end = 0;
  char data[capacity];
};

// OpenSSL's socket BIO writes with write(), which raises SIGPIPE when the peer has gone; this
// one sends with MSG_NOSIGNAL (as Asio does) on the descriptor it holds, and reads from the
// tls_input (the BIO's second pointer), asking for a read when it is empty.
struct tls_bio_data {
  int fd = -1;
  tls_input* in = nullptr;
};

inline BIO_METHOD* socket_bio_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "dp socket");
    BIO_meth_set_create(m, [](BIO* b) {
      BIO_set_init(b, 1);
      return 1;
    });
    BIO_meth_set_write(m, [](BIO* b, const char* data, int len) -> int {
      BIO_clear_retry_flags(b);
      ssize_t n = ::send(static_cast<tls_bio_data*>(BIO_get_data(b))->fd, data,
                         static_cast<size_t>(len), MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        BIO_set_retry_write(b);
      }
      return static_cast<int>(n);
    });
    BIO_meth_set_read(m, [](BIO* b, char* data, int len) -> int {
      BIO_clear_retry_flags(b);
      tls_input& in = *static_cast<tls_bio_data*>(BIO_get_data(b))->in;
      size_t n = std::min(in.end - in.begin, static_cast<size_t>(len));
      if (n == 0) {
        BIO_set_retry_read(b);
        return -1;
      }
      std::memcpy(data, in.data + in.begin, n);
      in.begin += n;
      if (in.begin == in.end) {
        in.begin = in.end = 0;
      }
      return static_cast<int>(n);
    });
    BIO_meth_set_ctrl(
        m, [](BIO*, int cmd, long, void*) -> long { return cmd == BIO_CTRL_FLUSH ? 1 : 0; });
    return m;
  }();
  return method;
}

template <class Executor>
class basic_tls_socket {
 public:
  using next_layer_type = beast::basic_stream<asio::ip::tcp, Executor>;
  using executor_type = Executor;
  // What OpenSSL waits for before a step can go on.
  enum class want { nothing, read, write };

  basic_tls_socket(next_layer_type s, asio::ssl::context& ctx)
      : tcp_(std::move(s)),
        in_(std::make_unique_for_overwrite<tls_input>()),
        bio_data_(std::make_unique<tls_bio_data>(
            tls_bio_data{static_cast<int>(tcp_.socket().native_handle()), in_.get()})),
        ssl_(SSL_new(ctx.native_handle())) {
    BIO* bio = ssl_ ? BIO_new(socket_bio_method()) : nullptr;
    if (!bio) {
      throw boost::system::system_error(asio::error::no_memory, "SSL_new");
    }
    BIO_set_data(bio, bio_data_.get());
    SSL_set_bio(ssl_.get(), bio, bio);  // the SSL owns it
    SSL_set_accept_state(ssl_.get());
    // A write that waited is retried from where the caller's buffer now is; read-ahead takes
    // everything buffered at once instead of a record's header first and then the rest.
    SSL_set_mode(ssl_.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_set_read_ahead(ssl_.get(), 1);
    boost::system::error_code ignored;
    tcp_.socket().non_blocking(true, ignored);
  }

  executor_type get_executor() noexcept { return tcp_.get_executor(); }
  next_layer_type& next_layer() noexcept { return tcp_; }
  SSL* native_handle() noexcept { return ssl_.get(); }

  // One step each, never blocking: `nothing` with `ec` (and `n`) set when it is done, else what
  // to wait for before trying again.
  want handshake_step(boost::system::error_code& ec) {
    return step([this] { return SSL_do_handshake(ssl_.get()); }, ec);
  }
  want read_step(asio::mutable_buffer b, size_t& n, boost::system::error_code& ec) {
    n = 0;
    return step([&] { return SSL_read_ex(ssl_.get(), b.data(), b.size(), &n); }, ec);
  }
  want write_step(asio::const_buffer b, size_t& n, boost::system::error_code& ec) {
    n = 0;
    return step([&] { return SSL_write_ex(ssl_.get(), b.data(), b.size(), &n); }, ec);
  }
  // Queues TLS close_notify without waiting (a few bytes: the socket buffer takes them); what
  // a closing WebSocket sends before its TCP teardown, since TLS clients expect it there.
  void send_close_notify() {
    if (tcp_.socket().is_open() && SSL_is_init_finished(ssl_.get())) {
      SSL_shutdown(ssl_.get());
      ERR_clear_error();
    }
  }
  // What a step that wanted to read waits for: a read of the socket into the input buffer
  // (an error, or the end of the stream, ends the connection). Call filled(n) with its result.
  template <class Token = asio::default_completion_token_t<executor_type>>
  auto async_fill(Token&& token = Token()) {
    return tcp_.socket().async_read_some(
        asio::buffer(in_->data + in_->end, tls_input::capacity - in_->end),
        std::forward<Token>(token));
  }
  void filled(size_t n) noexcept { in_->end += n; }
  // What a step that wanted to write waits for: room in the socket.
  template <class Token = asio::default_completion_token_t<executor_type>>
  auto async_wait_writable(Token&& token = Token()) {
    return tcp_.socket().async_wait(asio::socket_base::wait_write, std::forward<Token>(token));
  }

  // The AsyncStream operations Beast's parsers, SSE and WebSocket use: the first non-empty
  // buffer is read into or written from.
  template <class Buffers, class Token = asio::default_completion_token_t<executor_type>>
  auto async_read_some(const Buffers& buffers, Token&& token = Token()) {
    return asio::async_compose<Token, void(boost::system::error_code, size_t)>(
        io_op<asio::mutable_buffer>{this, first_buffer<asio::mutable_buffer>(buffers)}, token,
        tcp_.socket());
  }
  template <class Buffers, class Token = asio::default_completion_token_t<executor_type>>
  auto async_write_some(const Buffers& buffers, Token&& token = Token()) {
    return asio::async_compose<Token, void(boost::system::error_code, size_t)>(
        io_op<asio::const_buffer>{this, first_buffer<asio::const_buffer>(buffers)}, token,
        tcp_.socket());
  }

 private:
  struct ssl_free {
    void operator()(SSL* s) const noexcept { SSL_free(s); }
  };

  template <class Buffer, class Buffers>
  static Buffer first_buffer(const Buffers& buffers) {
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers);
         ++it) {
      Buffer b(*it);
      if (b.size() > 0) {
        return b;
      }
    }
    return Buffer();
  }

  template <class Op>
  want step(Op op, boost::system::error_code& ec) {
    ec = {};
    // The descriptor may have been closed (a deadline): its number may be another
    // connection's by now, so OpenSSL must not touch it.
    if (!tcp_.socket().is_open()) {
      ec = asio::error::bad_descriptor;
      return want::nothing;
    }
    // A stale error left in the thread's queue would be taken for this call's.
    if (ERR_peek_error() != 0) {
      ERR_clear_error();
    }
    errno = 0;
    int r = op();
    int saved_errno = errno;
    if (r == 1) {
      return want::nothing;
    }
    switch (SSL_get_error(ssl_.get(), r)) {
      case SSL_ERROR_WANT_READ:
        return want::read;
      case SSL_ERROR_WANT_WRITE:
        return want::write;
      case SSL_ERROR_ZERO_RETURN:
        ec = asio::error::eof;
        break;
      case SSL_ERROR_SYSCALL:
        ec = saved_errno != 0
                 ? boost::system::error_code(saved_errno, boost::system::system_category())
                 : boost::system::error_code(asio::error::eof);
        break;
      default:
        ec = boost::system::error_code(static_cast<int>(ERR_get_error()),
                                       asio::error::get_ssl_category());
        if (!ec) {
          ec = asio::error::connection_aborted;
        }
        break;
    }
    ERR_clear_error();
    return want::nothing;
  }

  // One read or write: steps until done, waiting in between. A result at once is posted, as
  // an asynchronous operation's completion must not run inside its initiation.
  template <class Buffer>
  struct io_op {
    basic_tls_socket* s;
    Buffer buf;
    bool waited = false;
    bool done = false;
    boost::system::error_code result;
    size_t bytes = 0;

    // Started with no arguments, resumed by a wait (ec) or a fill (ec and the bytes read).
    template <class Self>
    void operator()(Self& self, boost::system::error_code ec = {}, size_t filled = 0) {
      if (done) {
        self.complete(result, bytes);
        return;
      }
      if (ec) {
        self.complete(ec, 0);
        return;
      }
      s->filled(filled);
      size_t n = 0;
      want w = want::nothing;
      if (buf.size() > 0) {
        if constexpr (std::is_same_v<Buffer, asio::mutable_buffer>) {
          w = s->read_step(buf, n, ec);
        } else {
          w = s->write_step(buf, n, ec);
        }
      }
      if (w == want::read) {
        waited = true;
        s->async_fill(std::move(self));
        return;
      }
      if (w == want::write) {
        waited = true;
        s->async_wait_writable(std::move(self));
        return;
      }
      if (waited) {
        self.complete(ec, n);
        return;
      }
      done = true;
      result = ec;
      bytes = n;
      asio::post(s->get_executor(), std::move(self));
    }
  };

  next_layer_type tcp_;
  std::unique_ptr<tls_input> in_;
  std::unique_ptr<tls_bio_data> bio_data_;
  std::unique_ptr<SSL, ssl_free> ssl_;  // last: freed first, with the BIO that points at both
};

}  // namespace dp::http::detail
