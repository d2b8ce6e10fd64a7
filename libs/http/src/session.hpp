#pragma once
// Private to libs/http: the server's shared state (accept and drain, server.cpp) and one
// connection's session (session.cpp reads and dispatches requests, response_writer.cpp writes
// responses).

#include <boost/beast/http.hpp>

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_set>

#include "detail.hpp"
#include "dp/http/router.hpp"
#include "dp/http/server.hpp"

namespace dp::http::detail {

namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using accept_executor_t =
    asio::as_tuple_t<asio::use_awaitable_t<>>::executor_with_default<strand_t>;
using acceptor_t = asio::basic_socket_acceptor<tcp, accept_executor_t>;

class session;

// What a connection does after a response.
enum class next { keep_alive, close };

struct server_state : std::enable_shared_from_this<server_state> {
  server_state(asio::io_context& io, server_options o, router r);

  asio::awaitable<void> accept_loop();
  // Registers and runs a session for an accepted socket.
  void start_session(tcp_stream_t::socket_type sock, dp::config::host_port remote);
  void stop(std::chrono::milliseconds drain, std::function<void()> done);
  void remove(const std::shared_ptr<session>& s);
  void maybe_done();  // under mu

  asio::io_context& ioc;
  server_options opts;
  router routes;
  std::optional<asio::ssl::context> tls;  // every connection is TLS when set
  strand_t accept_strand;
  acceptor_t acceptor;
  wait_timer drain_timer;
  dp::config::host_port bound;

  std::mutex mu;
  std::unordered_set<std::shared_ptr<session>> sessions;
  bool stopping = false;
  bool accepting = false;
  std::function<void()> on_done;
  std::atomic<size_t> count{0};
};

class session : public std::enable_shared_from_this<session> {
 public:
  session(std::shared_ptr<server_state> srv, conn_stream stream, dp::config::host_port remote)
      : srv_(std::move(srv)),
        opts_(srv_->opts),
        stream_(std::move(stream)),
        watchdog_(stream_.get_executor()),
        remote_(std::move(remote)) {}

  asio::awaitable<void> run();
  // Both run on the session's strand.
  void on_stop();
  void force_close();
  strand_t strand() { return stream_.get_executor(); }

 private:
  enum class phase { idle, busy, streaming };

  asio::awaitable<next> handle_one();
  // The connection's one deadline: set before a read or write waits, cleared when it is done.
  // Moving it is an assignment; the watchdog timer is re-armed only when the deadline comes
  // before its expiry, so a keep-alive request re-arms nothing.
  void set_deadline(std::chrono::steady_clock::duration d);
  void clear_deadline() noexcept { deadline_ = std::chrono::steady_clock::time_point::max(); }
  void arm_watchdog();
  void on_watchdog();
  // Reads what the connection has, waiting (under the current deadline) only if nothing.
  asio::awaitable<std::tuple<boost::system::error_code, size_t>> read_some(asio::mutable_buffer b);
  // Parses what the buffer already holds into parser_; need_more is no error.
  void parse_buffered(boost::system::error_code& ec);
  asio::awaitable<next> write_response(response& res, bool head_only, bool keep_alive);
  asio::awaitable<next> write_error(unsigned status, std::string_view code,
                                    std::string_view message);
  // Points req_ (the handler's view) at msg_.req: path, query, method, peer.
  void bind_request(http::method m);
  void build_head(const response& res, std::optional<uint64_t> length, bool chunked,
                  bool keep_alive);
  asio::awaitable<bool> write_all(std::string_view a, std::string_view b = {},
                                  std::string_view c = {});
  // What a write that could not finish at once waits for (over TLS, a read may be needed).
  enum class write_wait { none, readable, writable };
  // Writes what the connection takes now, without waiting, advancing `pieces`; false when the
  // connection failed. `wait` says what to wait for before the rest (none: all written).
  bool write_now(std::array<std::string_view, 3>& pieces, write_wait& wait);
  asio::awaitable<bool> write_rest(std::array<std::string_view, 3> pieces, write_wait wait);
  asio::awaitable<bool> write_head_before_file(std::string_view head);
  asio::awaitable<bool> send_file(const file_body& f);
  // TLS cannot sendfile: the file is read into chunks, the first one leaving with the head.
  asio::awaitable<bool> copy_file(std::string_view head, const file_body& f);
  asio::awaitable<next> send_stream(response& res, stream_body& body, bool head_only,
                                    bool keep_alive);
  asio::awaitable<void> linger_close();

  std::shared_ptr<server_state> srv_;
  const server_options& opts_;
  conn_stream stream_;
  wait_timer watchdog_;
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
  bool watchdog_armed_ = false;
  beast::flat_buffer buf_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  message msg_;
  request req_;
  dp::config::host_port remote_;
  std::string head_;
  std::string tls_out_;  // the pieces of a small response, packed into one TLS record
  std::unique_ptr<char[]> chunk_buf_;
  std::shared_ptr<channel> channel_;
  phase phase_ = phase::idle;
  bool stopping_ = false;
  bool linger_ = false;  // the client may still be sending: drain before closing
};

}  // namespace dp::http::detail
