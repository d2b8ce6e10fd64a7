// The HTTP client against a real HTTP/1.1 server inside the test: Beast's parser on blocking
// sockets, a thread per connection, on 127.0.0.1:0 or a unix socket in a temp dir. Each handler
// writes raw response bytes, so the tests control framing (chunked, slow, never answering).
#include "dp/http_client/client.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>

namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using namespace std::chrono_literals;
using dp::errc;
using dp::http_client::client;
using dp::http_client::client_options;
using dp::http_client::request;
using request_t = http::request<http::string_body>;

// A temp directory removed with its contents, even when the test fails.
struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "dp-http-client-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};

std::string reply(int status, const std::string& body,
                  const std::vector<std::string>& headers = {}) {
  std::string out = "HTTP/1.1 " + std::to_string(status) +
                    " X\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  for (const auto& h : headers) {
    out += h + "\r\n";
  }
  return out + "\r\n" + body;
}

class test_server {
 public:
  struct exchange {
    test_server& server;
    std::function<bool(std::string_view)> write;  // false once the peer is gone
  };
  using handler = std::function<void(const request_t&, exchange&)>;

  explicit test_server(handler h) : handler_(std::move(h)) {
    net::ip::tcp::acceptor a(ioc_, {net::ip::make_address("127.0.0.1"), 0});
    port_ = a.local_endpoint().port();
    accept_thread_ = std::thread([this, a = std::move(a)]() mutable { accept_loop(a); });
  }
  test_server(const std::filesystem::path& unix_path, handler h) : handler_(std::move(h)) {
    net::local::stream_protocol::acceptor a(
        ioc_, net::local::stream_protocol::endpoint(unix_path.string()));
    accept_thread_ = std::thread([this, a = std::move(a)]() mutable { accept_loop(a); });
  }

  ~test_server() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      for (int fd : fds_) {
        ::shutdown(fd, SHUT_RDWR);  // unblocks the connection threads' reads and writes
      }
    }
    cv_.notify_all();
    accept_thread_.join();
    for (auto& t : threads_) {
      t.join();
    }
  }

  std::string url(const std::string& target) const {
    return "http://127.0.0.1:" + std::to_string(port_) + target;
  }
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_; }

  std::vector<request_t> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }

  // Blocks a handler until the server stops (a peer that never answers).
  void wait_for_stop() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return stopping_; });
  }

 private:
  template <class Acceptor>
  void accept_loop(Acceptor& a) {
    {
      std::lock_guard lock(mutex_);
      fds_.push_back(a.native_handle());
    }
    for (;;) {
      boost::system::error_code ec;
      auto sock = a.accept(ec);
      std::lock_guard lock(mutex_);
      if (ec || stopping_) {
        return;
      }
      ++accepted_;
      fds_.push_back(sock.native_handle());
      threads_.emplace_back([this, s = std::move(sock)]() mutable { session(s); });
    }
  }

  template <class Socket>
  void session(Socket& sock) {
    boost::beast::flat_buffer buf;
    exchange ex{*this, [&](std::string_view data) {
                  boost::system::error_code ec;
                  net::write(sock, net::buffer(data), ec);
                  return !ec;
                }};
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(64 * 1024 * 1024);
      boost::system::error_code ec;
      http::read(sock, buf, parser, ec);
      if (ec) {
        return;
      }
      request_t req = parser.release();
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(req);
      }
      handler_(req, ex);
      if (!req.keep_alive()) {
        return;
      }
    }
  }

  handler handler_;
  net::io_context ioc_;
  uint16_t port_ = 0;
  std::thread accept_thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
  std::vector<request_t> requests_;
  std::atomic<int> accepted_{0};
};

using dp::test::co_eventually;
using dp::test::co_sleep;
using dp::test::run_async;

std::string pattern(size_t n, size_t seed = 0) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>((i * 7 + i / 4093 + seed) & 0xff);
  }
  return s;
}

// Answers with the method, the x-test header and the body it received, and two Set-Cookie lines.
void echo(const request_t& req, test_server::exchange& ex) {
  std::string body = req.method() == http::verb::head ? "" : req.body();
  std::string head = "HTTP/1.1 201 Created\r\nContent-Length: " +
                     std::to_string(req.method() == http::verb::head ? 5 : body.size()) +
                     "\r\nX-Method: " + std::string(req.method_string()) +
                     "\r\nX-Echo: " + std::string(req["x-test"]) +
                     "\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n\r\n";
  ex.write(head + body);
}

TEST(http_client, methods_and_headers_both_ways) {
  test_server server(echo);
  run_async([&](net::any_io_executor ex) -> net::awaitable<void> {
    client c(ex);
    for (std::string method : {"GET", "PUT", "POST", "DELETE", "HEAD", "PATCH"}) {
      request req{.method = method,
                  .url = server.url("/things/1?x=y"),
                  .headers = {{"X-Test", "v-" + method}}};
      if (method == "PUT" || method == "PATCH") {
        req.body = std::string("payload-") + method;
      }
      auto r = co_await c.send(req);
      EXPECT_TRUE(r.has_value()) << method << ": " << (r ? "" : r.error().message);
      if (!r) {
        continue;
      }
      EXPECT_EQ(r->status, 201);
      EXPECT_EQ(r->headers.get("x-method"), method);
      EXPECT_EQ(r->headers.get("X-ECHO"), "v-" + method);
      auto cookies = r->headers.get_all("Set-Cookie");
      EXPECT_EQ(cookies, (std::vector<std::string_view>{"a=1", "b=2"}));
      EXPECT_FALSE(r->headers.contains("x-missing"));
      if (method == "PUT" || method == "PATCH") {
        EXPECT_EQ(r->body, "payload-" + method);
      } else {
        EXPECT_EQ(r->body, "");
      }
    }
  });
  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 6u);
  EXPECT_EQ(seen[0].target(), "/things/1?x=y");
  for (const auto& req : seen) {
    EXPECT_EQ(req["x-test"], "v-" + std::string(req.method_string()));
    EXPECT_EQ(req.count(http::field::expect), 0u);  // no 100-continue round trip
  }
  EXPECT_EQ(seen[2]["content-length"], "0");  // POST without a body
  EXPECT_EQ(server.accepted(), 1);            // one connection, reused
}

TEST(http_client, error_statuses_are_not_errors) {
  test_server server(
      [](const request_t&, test_server::exchange& ex) { ex.write(reply(503, "busy")); });
  run_async([&](net::any_io_executor ex) -> net::awaitable<void> {
    client c(ex);
    request r_req{.url = server.url("/")};
    auto r = co_await c.send(std::move(r_req));
    EXPECT_TRUE(r.has_value());
    EXPECT_EQ(r ? r->status : 0, 503);
    EXPECT_EQ(r ? r->body : "", "busy");
  });
}

TEST(http_client, concurrent_requests_share_few_connections) {
  test_server server([](const request_t& req, test_server::exchange& ex) {
    ex.write(reply(200, std::string(req.target())));
  });
  int ok = 0;
  run_async([&](net::any_io_executor ex) -> net::awaitable<void> {
    client c(ex, client_options{.max_connections_per_host = 4});
    int done = 0;
    for (int i = 0; i < 200; ++i) {
      net::co_spawn(
          ex,
          [&, i]() -> net::awaitable<void> {
            request r_req{.url = server.url("/n/" + std::to_string(i))};
            auto r = co_await c.send(std::move(r_req));
            ok += r && r->status == 200 && r->body == "/n/" + std::to_string(i);
            ++done;
          },
          net::detached);
    }
    EXPECT_TRUE(co_await co_eventually([&] { return done == 200; }));
  });
  EXPECT_EQ(ok, 200);
  EXPECT_LE(server.accepted(), 4);
  EXPECT_GE(server.accepted(), 1);
}

TEST(http_client, timeout_without_an_answer_names_the_host_but_not_the_secrets) {
  test_server server(
      [](const request_t&, test_server::exchange& ex) { ex.server.wait_for_stop(); });
  run_async([&](net::any_io_executor ex) -> net::awaitable<void> {
    client c(ex);
    std::string url = "http://user:hunter2@127.0.0.1:" + std::to_string(server.port()) +
                      "/bucket/key?X-Amz-Signature=deadbeef";
    request r_req{.url = url, .timeout = 300ms};
    auto r = co_await c.send(std::move(r_req));
    EXPECT_FALSE(r.has_value());
    if (!r) {
      EXPECT_TRUE(r.error().is(errc::timeout)) << r.error().message;
      EXPECT_NE(r.error().message.find("127.0.0.1:" + std::to_string(server.port())),
                std::string::npos);
      EXPECT_EQ(r.error().message.find("hunter2"), std::string::npos) << r.error().message;
      EXPECT_EQ(r.error().message.find("deadbeef"), std::string::npos) << r.error().message;
      EXPECT_EQ(r.error().message.find("/bucket"), std::string::npos) << r.error().message;
    }
  });
}

TEST(http_client, connection_refused_is_unavailable) {
  uint16_t port = 0;
  {
    net::io_context ioc;
    net::ip::tcp::acceptor a(ioc, {net::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }  // closed: nothing listens there now
  run_async([&](net::any_io_executor ex) -> net::awaitable<void> {
    client c(ex);
    request r_req{.url = "http://127.0.0.1:" + std::to_string(port) + "/"};
    auto r = co_await c.send(std::move(r_req));
    EXPECT_FALSE(r.has_value());
    if (!r) {
      EXPECT_TRUE(r.error().is(errc::unavailable)) << r.error().message;
      EXPECT_NE(r.error().message.find("127.0.0.1"), std::string::npos) << r.error().message;
    }
    request bad_req{.url = "not a url"};
    auto bad = co_await c.send(std::move(bad_req));
    EXPECT_TRUE(!bad && bad.error().is(errc::invalid_argument));
  });
}

TEST(http_client, file_bodies_both_ways) {
  temp_dir dir;
  const std::string content = pattern(5 * 1024 * 1024);
  { std::ofstream(dir.path / "up.bin", std::ios::binary) << content; }
  test_server server([&](const request_t& req, test_server::exchange& ex) {
    ex.write(req.method() == http::verb::put
                 ? reply(200, std::to_string(req.body().size()))
                 : reply(200, content, {"Content-Type: application/octet-stream"}));
  });
  run_async([&](net::any_io_executor ex) -> net::awaitable<void> {
    client c(ex);
    using dp::http_client::file_region;
    request put_req{
        .method = "PUT", .url = server.url("/up"), .body = file_region{dir.path / "up.bin"}};
    auto put = co_await c.send(std::move(put_req));
    EXPECT_TRUE(put && put->body == std::to_string(content.size()));
    request part_req{.method = "PUT",
                     .url = server.url("/part"),
                     .body = file_region{dir.path / "up.bin", 1000, 4096}};
    auto part = co_await c.send(std::move(part_req));
    EXPECT_TRUE(part && part->body == "4096");
    request outside_req{.method = "PUT",
                        .url = server.url("/x"),
                        .body = file_region{dir.path / "up.bin", content.size(), 1}};
    auto outside = co_await c.send(std::move(outside_req));
    EXPECT_TRUE(!outside && outside.error().is(errc::invalid_argument));
    request missing_req{
        .method = "PUT", .url = server.url("/x"), .body = file_region{dir.path / "nope"}};
    auto missing = co_await c.send(std::move(missing_req));
    EXPECT_TRUE(!missing && missing.error().is(errc::io));

    request get_req{.url = server.url("/down"),
                    .sink = dp::http_client::to_file{dir.path / "down.bin"}};

    auto get = co_await c.send(std::move(get_req));
    EXPECT_TRUE(get && get->status == 200 && get->body.empty());
  });
  auto seen = server.requests();
  ASSERT_GE(seen.size(), 2u);
  EXPECT_TRUE(seen[0].body() == content);
  EXPECT_EQ(seen[0]["content-length"], std::to_string(content.size()));
  EXPECT_TRUE(seen[1].body() == content.substr(1000, 4096));
  EXPECT_TRUE(dp::test::read_file(dir.path / "down.bin") == content);
}

TEST(http_client, response_larger_than_the_limit_is_too_large) {
  test_server server(
      [](const request_t&, test_server::exchange& ex) { ex.write(reply(200, pattern(100000))); });
  temp_dir dir;
  run_async([&](net::any_io_executor ex) -> net::awaitable<void> {
    client c(ex);
    request r_req{.url = server.url("/big"), .sink = dp::http_client::to_buffer{.max_bytes = 1000}};
    auto r = co_await c.send(std::move(r_req));
    EXPECT_TRUE(!r && r.error().is(errc::too_large)) << (r ? "succeeded" : r.error().message);
    request ok_req{.url = server.url("/big"),
                   .sink = dp::http_client::to_buffer{.max_bytes = 100000}};
    auto ok = co_await c.send(std::move(ok_req));
    EXPECT_TRUE(ok && ok->body.size() == 100000);
  });
}

TEST(http_client, chunked_responses) {
  test_server server([](const request_t&, test_server::exchange& ex) {
    ex.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    ex.write("6\r\n world\r\n0\r\n\r\n");
  });
  run_async([&](net::any_io_executor ex) -> net::awaitable<void> {
    client c(ex);
    request r_req{.url = server.url("/")};
    auto r = co_await c.send(std::move(r_req));
    EXPECT_TRUE(r && r->body == "hello world");
    request s_req{.url = server.url("/")};
    auto s = co_await c.open(std::move(s_req));
    EXPECT_TRUE(s.has_value());
    if (s) {
      std::string body;
      std::array<char, 4> buf{};
      for (;;) {
        auto n = co_await s->read_some(buf);
        if (!n || *n == 0) {
          EXPECT_TRUE(n.has_value());
          break;
        }
        body.append(buf.data(), *n);
      }
      EXPECT_EQ(body, "hello world");
    }
  });
  EXPECT_EQ(server.accepted(), 1);
}

TEST(http_client, unix_socket_target) {
  temp_dir dir;
  test_server server(dir.path / "docker.sock", [](const request_t& req, test_server::exchange& ex) {
    ex.write(reply(200, R"({"target":")" + std::string(req.target()) + "\"}",
                   {"Content-Type: application/json"}));
  });
  run_async([&](net::any_io_executor ex) -> net::awaitable<void> {
    client c(ex);
    request create{.method = "POST",
                   .url = "http://localhost/v1.43/containers/create",
                   .headers = {{"Content-Type", "application/json"}},
                   .body = std::string(R"({"Image":"x"})"),
                   .unix_socket = (dir.path / "docker.sock").string()};
    auto r = co_await c.send(std::move(create));
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
    EXPECT_EQ(r ? r->body : "", R"({"target":"/v1.43/containers/create"})");
    request gone_req{.url = "http://localhost/x", .unix_socket = (dir.path / "nope.sock").string()};
    auto gone = co_await c.send(std::move(gone_req));
    EXPECT_TRUE(!gone && gone.error().is(errc::unavailable));
  });
  auto seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].body(), R"({"Image":"x"})");
}

// The server writes a large body and counts what the socket accepted; the client reads slowly.
struct streaming_server {
  static constexpr size_t total = 64 * 1024 * 1024;
  std::atomic<size_t> written{0};
  std::atomic<bool> write_failed{false};
  test_server server{[this](const request_t&, test_server::exchange& ex) {
    ex.write("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(total) + "\r\n\r\n");
    const std::string chunk = pattern(64 * 1024);
    for (size_t sent = 0; sent < total; sent += chunk.size()) {
      if (!ex.write(chunk)) {
        write_failed = true;
        return;
      }
      written += chunk.size();
    }
  }};
};

TEST(http_client, streamed_response_applies_back_pressure) {
  streaming_server s;
  constexpr size_t cap = 64 * 1024;
  run_async([&](net::any_io_executor ex) -> net::awaitable<void> {
    client c(ex, client_options{.stream_buffer_bytes = cap});
    request st_req{.url = s.server.url("/big")};
    auto st = co_await c.open(std::move(st_req));
    EXPECT_TRUE(st.has_value());
    if (!st) {
      co_return;
    }
    EXPECT_EQ(st->status(), 200);
    EXPECT_EQ(st->headers().get("content-length"), std::to_string(streaming_server::total));
    std::vector<char> buf(16 * 1024);
    size_t got = 0;
    bool same = true;
    const std::string chunk = pattern(64 * 1024);
    // A slow reader: the server is held back by TCP, far from having sent everything.
    for (int i = 0; i < 5; ++i) {
      auto n = co_await st->read_some(buf);
      EXPECT_TRUE(n && *n > 0);
      got += n ? *n : 0;
      co_await co_sleep(100ms);  // the slowness under test
    }
    EXPECT_LT(s.written.load(), streaming_server::total / 2);
    // Then a fast one, checking every byte.
    auto start = std::chrono::steady_clock::now();
    size_t fast_from = got;
    for (;;) {
      auto n = co_await st->read_some(buf);
      if (!n || *n == 0) {
        EXPECT_TRUE(n.has_value()) << n.error().message;
        break;
      }
      for (size_t i = 0; i < *n && same;) {
        size_t off = (got + i) % chunk.size();
        size_t len = std::min(*n - i, chunk.size() - off);
        same = std::memcmp(buf.data() + i, chunk.data() + off, len) == 0;
        i += len;
      }
      got += *n;
    }
    auto ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("streamed %zu MiB in %.0f ms (%.0f MiB/s, buffer cap %zu KiB)\n",
                (got - fast_from) >> 20, ms,
                static_cast<double>(got - fast_from) / (1 << 20) / (ms / 1000), cap >> 10);
    EXPECT_EQ(got, streaming_server::total);
    EXPECT_TRUE(same);
    // Never more than the cap plus one network chunk (CURL_MAX_WRITE_SIZE, 16 KiB) was held.
    EXPECT_LE(st->max_buffered(), cap + 16 * 1024);
    EXPECT_GT(st->max_buffered(), 0u);
  });
}

TEST(http_client, destroying_a_stream_mid_body_aborts_the_transfer) {
  streaming_server s;
  run_async([&](net::any_io_executor ex) -> net::awaitable<void> {
    client c(ex);
    {
      request st_req{.url = s.server.url("/big")};
      auto st = co_await c.open(std::move(st_req));
      EXPECT_TRUE(st.has_value());
      std::array<char, 1024> buf{};
      auto n = st ? co_await st->read_some(buf) : dp::result<size_t>(0);
      EXPECT_TRUE(n && *n > 0);
    }  // destroyed with most of the body unread
    EXPECT_TRUE(co_await co_eventually([&] { return s.write_failed.load(); }));
  });
  EXPECT_LT(s.written.load(), streaming_server::total);
}

TEST(http_client, cancellation_and_destruction_end_transfers) {
  test_server server(
      [](const request_t&, test_server::exchange& ex) { ex.server.wait_for_stop(); });
  run_async([&](net::any_io_executor ex) -> net::awaitable<void> {
    using namespace net::experimental::awaitable_operators;
    client c(ex);
    // The awaiting coroutine is canceled by the timer winning the race.
    request slow{.url = server.url("/slow")};
    auto v = co_await (c.send(std::move(slow)) || co_sleep(100ms));  // the timer under test
    EXPECT_EQ(v.index(), 1u);
  });
  // The client is destroyed while a request waits: the request fails with errc::canceled.
  std::optional<dp::result<dp::http_client::response>> seen;
  run_async([&](net::any_io_executor ex) -> net::awaitable<void> {
    auto c = std::make_unique<client>(ex);
    net::co_spawn(
        ex,
        [&]() -> net::awaitable<void> {
          request slow{.url = server.url("/slow")};
          seen = co_await c->send(std::move(slow));
        },
        net::detached);
    // The request is at the server, which holds it.
    CO_ASSERT_TRUE(co_await co_eventually([&] { return !server.requests().empty(); }));
    c.reset();
    CO_ASSERT_TRUE(co_await co_eventually([&] { return seen.has_value(); }));
  });
  ASSERT_TRUE(seen.has_value());
  EXPECT_TRUE(!*seen && seen->error().is(errc::canceled));
}

}  // namespace
