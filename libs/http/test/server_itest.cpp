// The server on port 0, driven by blocking Beast/Asio clients in the test thread.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/json/parse.hpp>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <thread>

#include "dp/http/server.hpp"
#include "dp/test/async.hpp"
#include "dp/test/certificates.hpp"
#include "dp/test/harness.hpp"

namespace dp::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

using dp::test::eventually;

class running_server {
 public:
  explicit running_server(router r, server_options o = {}) {
    srv_ = std::make_unique<server>(ioc_, std::move(o), std::move(r));
    auto started = srv_->start();
    if (!started) {
      throw std::runtime_error(started.error().message);
    }
    thread_ = std::thread([this] { srv_->run(); });
  }
  ~running_server() {
    stop(0ms);
    thread_.join();
  }
  void stop(std::chrono::milliseconds drain) {
    srv_->stop(drain, [this] { stopped_ = true; });
  }
  uint16_t port() const { return srv_->port(); }
  bool stopped() const { return stopped_; }
  server& srv() { return *srv_; }

 private:
  asio::io_context ioc_;
  std::unique_ptr<server> srv_;
  std::atomic<bool> stopped_{false};
  std::thread thread_;
};

class client {
 public:
  explicit client(uint16_t port, int rcvbuf = 0) {
    sock_.open(tcp::v4());
    if (rcvbuf > 0) {
      ::setsockopt(sock_.native_handle(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    }
    sock_.connect({asio::ip::address_v4::loopback(), port});
    // Blocking reads give up instead of hanging a failing test.
    timeval tv{10, 0};
    ::setsockopt(sock_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  void send(std::string_view s) { asio::write(sock_, asio::buffer(s)); }
  bhttp::response<bhttp::string_body> read(bool head = false) {
    bhttp::response_parser<bhttp::string_body> p;
    p.body_limit(boost::none);
    p.skip(head);
    bhttp::read(sock_, buf_, p);
    return p.release();
  }
  std::string read_raw(size_t n) {
    std::string out;
    while (out.size() < n) {
      if (buf_.size() == 0) {
        buf_.commit(sock_.read_some(buf_.prepare(4096)));
      }
      size_t take = std::min(n - out.size(), buf_.size());
      out.append(static_cast<const char*>(buf_.data().data()), take);
      buf_.consume(take);
    }
    return out;
  }
  // True when the server closed the connection (EOF or reset) with nothing more to read.
  bool closed_by_server() {
    if (buf_.size() > 0) {
      return false;
    }
    char c;
    boost::system::error_code ec;
    sock_.read_some(asio::buffer(&c, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }
  tcp::socket& socket() { return sock_; }

 private:
  asio::io_context ioc_;
  tcp::socket sock_{ioc_};
  beast::flat_buffer buf_;
};

std::string get(std::string_view target, std::string_view extra = {}) {
  return fmt::format("GET {} HTTP/1.1\r\nHost: t\r\n{}\r\n", target, extra);
}

// A JSON error response as "<status> <code>", checked in one assertion.
std::string status_and_code(const bhttp::response<bhttp::string_body>& r) {
  auto code = boost::json::parse(r.body()).at("error").at("code").as_string();
  return fmt::format("{} {}", r.result_int(), std::string_view(code));
}

// One request on a connection of its own, and its response.
bhttp::response<bhttp::string_body> exchange(uint16_t port, std::string_view raw) {
  client c(port);
  c.send(raw);
  return c.read();
}

router basic_routes() {
  router r;
  r.get("/hello", [](request&) -> asio::awaitable<response> {
    co_return response(200, "text/plain", "hello");
  });
  r.get("/echo/{a}/{b}", [](request& req) -> asio::awaitable<response> {
    boost::json::object o;
    o["a"] = req.param("a");
    o["b"] = req.param("b");
    o["path"] = req.path();
    o["q"] = req.query("q").value_or("-");
    o["n"] = req.query("n").value_or("-");
    o["ua"] = req.header("USER-AGENT").value_or("-");
    o["remote"] = req.remote().host;
    co_return json_response(200, o);
  });
  r.post("/echo", [](request& req) -> asio::awaitable<response> {
    co_return response(200, "application/octet-stream", std::move(req.body()));
  });
  r.post(
      "/small", [](request&) -> asio::awaitable<response> { co_return response(204); },
      route_options{.body_limit = 10});
  r.del("/echo", [](request&) -> asio::awaitable<response> { co_return response(204); });
  r.get("/throw", [](request&) -> asio::awaitable<response> {
    throw std::runtime_error("handler bug");
    co_return response(200);
  });
  return r;
}

TEST(http_server, keep_alive_and_http10) {
  running_server s(basic_routes(), server_options{.threads = 2});
  client c(s.port());
  for (int i = 0; i < 3; ++i) {
    c.send(get("/hello"));
    auto r = c.read();
    EXPECT_EQ(r.result_int(), 200);
    EXPECT_EQ(r.body(), "hello");
    EXPECT_TRUE(r.keep_alive());
    EXPECT_FALSE(r[bhttp::field::date].empty());
  }
  // HTTP/1.0 without keep-alive: one response, then the server closes.
  client c10(s.port());
  c10.send("GET /hello HTTP/1.0\r\n\r\n");
  auto r = c10.read();
  EXPECT_EQ(r.body(), "hello");
  EXPECT_TRUE(c10.closed_by_server());
  // HTTP/1.0 asking for keep-alive keeps the connection.
  client k10(s.port());
  for (int i = 0; i < 2; ++i) {
    k10.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    auto kr = k10.read();
    EXPECT_EQ(kr.body(), "hello");
    EXPECT_EQ(kr[bhttp::field::connection], "keep-alive");
  }
}

// RFC 9112 3.2: Host is required once in HTTP/1.1; an absolute-form target is accepted and its
// authority is the request's host.
TEST(http_server, host_rules_and_absolute_form_targets) {
  router r;
  r.get("/where", [](request& req) -> asio::awaitable<response> {
    co_return response(200, "text/plain",
                       fmt::format("{} {} {}", req.host().value_or("-"), req.path(),
                                   req.query("q").value_or("-")));
  });
  running_server s(std::move(r));
  client c(s.port());
  c.send("GET http://Site.Example:8080/where?q=1 HTTP/1.1\r\nHost: other.test\r\n\r\n");
  EXPECT_EQ(c.read().body(), "Site.Example:8080 /where 1");
  c.send(get("/where"));
  EXPECT_EQ(c.read().body(), "t /where -");
  c.send("GET /where HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ(c.read().body(), "- /where -");
  c.send("GET https://root.test HTTP/1.1\r\nHost: root.test\r\n\r\n");
  EXPECT_EQ(c.read().result_int(), 404);  // "/" has no route here: the path was taken as "/"
  for (const char* bad : {"GET /where HTTP/1.1\r\n\r\n",
                          "GET /where HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n"}) {
    EXPECT_EQ(status_and_code(exchange(s.port(), bad)), "400 bad_request") << bad;
  }
}

TEST(http_server, pipelined_requests_answered_in_order) {
  running_server s(basic_routes());
  client c(s.port());
  c.send(get("/echo/1/x") + get("/hello") + get("/echo/2/y"));
  EXPECT_EQ(boost::json::parse(c.read().body()).at("a").as_string(), "1");
  EXPECT_EQ(c.read().body(), "hello");
  EXPECT_EQ(boost::json::parse(c.read().body()).at("a").as_string(), "2");
}

TEST(http_server, path_params_query_and_headers) {
  running_server s(basic_routes());
  client c(s.port());
  c.send(get("/echo/shop%20one/a%2Fb?q=x%26y+z&n=%E2%82%AC", "User-Agent: tester\r\n"));
  auto r = c.read();
  ASSERT_EQ(r.result_int(), 200);
  auto v = boost::json::parse(r.body());
  EXPECT_EQ(v.at("a").as_string(), "shop one");
  EXPECT_EQ(v.at("b").as_string(), "a/b");
  EXPECT_EQ(v.at("path").as_string(), "/echo/shop%20one/a%2Fb");  // raw, for the proxy's checks
  EXPECT_EQ(v.at("q").as_string(), "x&y z");
  EXPECT_EQ(v.at("n").as_string(), "\xe2\x82\xac");
  EXPECT_EQ(v.at("ua").as_string(), "tester");
  EXPECT_EQ(v.at("remote").as_string(), "127.0.0.1");
}

TEST(http_server, not_found_and_method_not_allowed_are_json) {
  running_server s(basic_routes());
  client c(s.port());
  c.send(get("/nope"));
  auto r = c.read();
  EXPECT_EQ(status_and_code(r), "404 not_found");
  EXPECT_EQ(r[bhttp::field::content_type], "application/json");
  c.send("PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
  r = c.read();
  EXPECT_EQ(status_and_code(r), "405 method_not_allowed");
  EXPECT_EQ(r[bhttp::field::allow], "POST, DELETE");
  // Still usable: neither had a body left unread.
  c.send(get("/hello"));
  EXPECT_EQ(c.read().body(), "hello");
}

TEST(http_server, head_keeps_length_and_sends_no_body) {
  running_server s(basic_routes());
  client c(s.port());
  c.send("HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n");
  auto r = c.read(true);
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(r[bhttp::field::content_length], "5");
  // Had a body been sent, it would be parsed as the next response and fail.
  c.send(get("/hello"));
  EXPECT_EQ(c.read().body(), "hello");
}

TEST(http_server, header_limit_answers_431) {
  running_server s(basic_routes(), server_options{.header_limit = 1024});
  auto r = exchange(s.port(), get("/hello", "X-Big: " + std::string(4000, 'a') + "\r\n"));
  EXPECT_EQ(status_and_code(r), "431 headers_too_large");
}

TEST(http_server, body_limits_answer_413) {
  running_server s(basic_routes(), server_options{.body_limit = 64 * 1024});
  {
    auto r = exchange(
        s.port(),
        fmt::format("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", 1 << 20));
    EXPECT_EQ(status_and_code(r), "413 too_large");
    EXPECT_FALSE(r.keep_alive());
  }
  {
    // Chunked: the limit is found while reading.
    std::string chunk(32 * 1024, 'x');
    std::string req = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 3; ++i) {
      req += fmt::format("{:x}\r\n{}\r\n", chunk.size(), chunk);
    }
    req += "0\r\n\r\n";
    EXPECT_EQ(exchange(s.port(), req).result_int(), 413);
  }
  {
    // A route's own limit; and within it the body arrives intact.
    EXPECT_EQ(exchange(s.port(),
                       "POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world")
                  .result_int(),
              413);
    EXPECT_EQ(exchange(s.port(),
                       "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world")
                  .body(),
              "hello world");
  }
}

TEST(http_server, admit_refuses_on_the_head_before_the_body_is_read) {
  router r;
  route_options guarded{.body_limit = 64 << 20};
  guarded.admit = [](const request& req) -> std::optional<response> {
    if (req.header("x-key") == "ok" && req.body().empty()) {
      return std::nullopt;
    }
    return error_response(401, "unauthorized", "no key");
  };
  r.post(
      "/upload",
      [](request& req) -> asio::awaitable<response> {
        co_return response(200, "text/plain", std::move(req.body()));
      },
      guarded);
  running_server s(std::move(r));
  {
    // 32 MiB announced, none sent: the answer comes at once, and the connection ends.
    auto res = exchange(
        s.port(),
        fmt::format("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", 32 << 20));
    EXPECT_EQ(status_and_code(res), "401 unauthorized");
    EXPECT_FALSE(res.keep_alive());
  }
  {
    auto res =
        exchange(s.port(),
                 "POST /upload HTTP/1.1\r\nHost: t\r\nX-Key: ok\r\nContent-Length: 5\r\n\r\nhello");
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_EQ(res.body(), "hello");
  }
}

TEST(http_server, expect_100_continue) {
  running_server s(basic_routes());
  client c(s.port());
  c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  EXPECT_EQ(c.read_raw(25), "HTTP/1.1 100 Continue\r\n\r\n");
  c.send("ping");
  EXPECT_EQ(c.read().body(), "ping");
}

TEST(http_server, bad_request_and_handler_exception) {
  running_server s(basic_routes());
  EXPECT_EQ(status_and_code(exchange(s.port(), "THIS IS NOT HTTP\r\n\r\n")), "400 bad_request");
  EXPECT_EQ(status_and_code(exchange(s.port(), get("/throw"))), "500 internal");
  EXPECT_EQ(exchange(s.port(), get("/hello")).body(), "hello");
}

TEST(http_server, address_in_use_fails_at_start) {
  running_server s(basic_routes());
  asio::io_context ioc;
  server second(ioc, server_options{.listen = {"127.0.0.1", s.port()}}, router{});
  auto r = second.start();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find(fmt::format("listen on 127.0.0.1:{}", s.port())),
            std::string::npos);
  EXPECT_NE(r.error().message.find("in use"), std::string::npos) << r.error().message;
}

class temp_file {
 public:
  explicit temp_file(const std::string& content) {
    path_ = std::filesystem::temp_directory_path() /
            fmt::format("dp-http-itest-{}-{}", ::getpid(), counter_++);
    std::ofstream(path_, std::ios::binary) << content;
  }
  ~temp_file() { std::filesystem::remove(path_); }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
  static inline int counter_ = 0;
};

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  }
  return s;
}

TEST(http_server, file_body_uses_sendfile_regions) {
  std::string content = pattern(3 * 1024 * 1024 + 17);
  temp_file f(content);
  router r;
  r.get("/file", [&f](request& req) -> asio::awaitable<response> {
    uint64_t off = std::stoull(req.query("off").value_or("0"));
    auto len = req.query("len");
    auto body = file_body::open(f.path(), off,
                                len ? std::optional<uint64_t>(std::stoull(*len)) : std::nullopt);
    if (!body) {
      co_return error_response(body.error());
    }
    response res(200);
    res.set("Content-Type", "application/octet-stream");
    res.body = std::move(*body);
    co_return res;
  });
  running_server s(std::move(r));
  client c(s.port(), 16 * 1024);  // a small window makes the server wait for room
  c.send(get("/file"));
  auto whole = c.read();
  ASSERT_EQ(whole.result_int(), 200);
  EXPECT_TRUE(whole.body() == content);
  c.send(get("/file?off=1000&len=5000"));
  EXPECT_TRUE(c.read().body() == content.substr(1000, 5000));
  c.send(get("/file?off=99999999"));
  EXPECT_EQ(c.read().result_int(), 400);
  c.send("HEAD /file HTTP/1.1\r\nHost: t\r\n\r\n");
  auto head = c.read(true);
  EXPECT_EQ(head[bhttp::field::content_length], std::to_string(content.size()));
  c.send(get("/file?len=3"));
  EXPECT_EQ(c.read().body(), content.substr(0, 3));
}

// With a TLS context every connection is HTTPS: keep-alive and pipelined requests, the client's
// address, a file body (copied through TLS: no sendfile) and a HEAD; a plain-text client gets
// no HTTP answer.
TEST(http_server, serves_https_with_a_tls_context) {
  std::string content = pattern(200 * 1024 + 3);
  temp_file f(content);
  dp::test::temp_dir dir{"dp-http-tls"};
  auto pair = dp::test::make_certificate(dir.path(), "t", {"t.test"});
  asio::ssl::context ctx(asio::ssl::context::tls_server);
  ctx.use_certificate_chain_file(pair.chain_file.string());
  ctx.use_private_key_file(pair.key_file.string(), asio::ssl::context::pem);
  router r;
  r.get("/who", [](request& req) -> asio::awaitable<response> {
    co_return response(200, "text/plain", req.remote().host);
  });
  r.get("/file", [&f](request&) -> asio::awaitable<response> {
    response res(200);
    res.body = *file_body::open(f.path(), 0, std::nullopt);
    co_return res;
  });
  server_options o;
  o.tls_context = ctx.native_handle();
  running_server s(std::move(r), o);

  asio::io_context ioc;
  asio::ssl::context client_ctx(asio::ssl::context::tls_client);
  client_ctx.load_verify_file(pair.chain_file.string());
  client_ctx.set_verify_mode(asio::ssl::verify_peer);
  asio::ssl::stream<tcp::socket> tls(ioc, client_ctx);
  SSL_set_tlsext_host_name(tls.native_handle(), "t.test");
  tls.set_verify_callback(asio::ssl::host_name_verification("t.test"));
  tls.next_layer().connect({asio::ip::address_v4::loopback(), s.port()});
  tls.handshake(asio::ssl::stream_base::client);
  std::string req =
      "GET /who HTTP/1.1\r\nHost: t\r\n\r\nGET /file HTTP/1.1\r\nHost: t\r\n\r\n"
      "HEAD /file HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
  asio::write(tls, asio::buffer(req));
  beast::flat_buffer buf;
  bhttp::response<bhttp::string_body> who;
  bhttp::read(tls, buf, who);
  EXPECT_EQ(who.body(), "127.0.0.1");
  bhttp::response_parser<bhttp::string_body> p;
  p.body_limit(1 << 20);
  bhttp::read(tls, buf, p);
  EXPECT_EQ(p.get().result_int(), 200);
  EXPECT_TRUE(p.get().body() == content);
  bhttp::response_parser<bhttp::string_body> head;
  head.skip(true);
  bhttp::read(tls, buf, head);
  EXPECT_EQ(head.get()[bhttp::field::content_length], std::to_string(content.size()));
  EXPECT_FALSE(head.get().keep_alive());

  client plain(s.port());
  plain.send("GET /who HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_THROW(plain.read(), boost::system::system_error);
}

// One HTTPS connection reused for many requests: what the TLS input buffer holds between them
// (ciphertext read ahead, a batch larger than one read of the socket) is never lost or mixed up.
// A pipelined batch (small requests, a large header after a small one, a body after requests
// without), then requests one at a time, each waited for.
TEST(http_server, https_keep_alive_serves_batches_and_single_requests_in_order) {
  dp::test::temp_dir dir{"dp-http-tls-ka"};
  auto pair = dp::test::make_certificate(dir.path(), "t", {"t.test"});
  asio::ssl::context ctx(asio::ssl::context::tls_server);
  ctx.use_certificate_chain_file(pair.chain_file.string());
  ctx.use_private_key_file(pair.key_file.string(), asio::ssl::context::pem);
  server_options o;
  o.tls_context = ctx.native_handle();
  running_server s(basic_routes(), o);

  asio::io_context ioc;
  asio::ssl::context client_ctx(asio::ssl::context::tls_client);
  asio::ssl::stream<tcp::socket> tls(ioc, client_ctx);
  tls.next_layer().connect({asio::ip::address_v4::loopback(), s.port()});
  tls.handshake(asio::ssl::stream_base::client);
  // 60 requests, about 60 KiB: several TLS records and several reads of the socket.
  std::string batch;
  std::string large(6000, 'x');
  for (int i = 0; i < 60; ++i) {
    if (i % 20 == 10) {
      batch +=
          fmt::format("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nbody{}", i % 10);
    } else {
      batch += get(fmt::format("/echo/{}/x", i), i % 7 == 3 ? "User-Agent: " + large + "\r\n" : "");
    }
  }
  asio::write(tls, asio::buffer(batch));
  beast::flat_buffer buf;
  for (int i = 0; i < 60; ++i) {
    bhttp::response<bhttp::string_body> r;
    bhttp::read(tls, buf, r);
    ASSERT_EQ(r.result_int(), 200) << i;
    if (i % 20 == 10) {
      EXPECT_EQ(r.body(), "body0") << i;
    } else {
      auto v = boost::json::parse(r.body());
      EXPECT_EQ(v.at("a").as_string(), std::to_string(i));
      EXPECT_EQ(v.at("ua").as_string(), i % 7 == 3 ? large : "-") << i;
    }
  }
  for (int i = 0; i < 20; ++i) {
    std::string one = i % 2 ? get(fmt::format("/echo/{}/y", i))
                            : "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc";
    asio::write(tls, asio::buffer(one));
    bhttp::response<bhttp::string_body> r;
    bhttp::read(tls, buf, r);
    ASSERT_EQ(r.result_int(), 200) << i;
    if (i % 2) {
      EXPECT_EQ(boost::json::parse(r.body()).at("a").as_string(), std::to_string(i));
    } else {
      EXPECT_EQ(r.body(), "abc");
    }
  }
  EXPECT_EQ(s.srv().connections(), 1u);
}

// TLS on the socket itself, past one record each way: a body larger than the socket buffers
// (the writer waits for the reader), an upload read through Beast's parser, an event stream and
// a WebSocket on the same kind of connection.
TEST(http_server, https_large_bodies_uploads_event_streams_and_websockets) {
  std::string big = pattern(2 << 20);
  dp::test::temp_dir dir{"dp-http-tls-big"};
  auto pair = dp::test::make_certificate(dir.path(), "t", {"t.test"});
  asio::ssl::context ctx(asio::ssl::context::tls_server);
  ctx.use_certificate_chain_file(pair.chain_file.string());
  ctx.use_private_key_file(pair.key_file.string(), asio::ssl::context::pem);
  router r;
  r.get("/big", [&big](request&) -> asio::awaitable<response> {
    co_return response(200, "application/octet-stream", big);
  });
  r.post("/echo", [](request& req) -> asio::awaitable<response> {
    co_return response(200, "application/octet-stream", std::move(req.body()));
  });
  r.get("/events", [](request&) -> asio::awaitable<response> {
    response res(200);
    res.body = sse_body{[](sse_stream s) -> asio::awaitable<void> {
      co_await s.send({.data = "one"});
      co_await s.send({.data = "two"});
    }};
    co_return res;
  });
  r.get("/ws", [](request&) -> asio::awaitable<response> {
    response res;
    res.body = websocket_body{[](websocket ws) -> asio::awaitable<void> {
      auto msg = co_await ws.read();
      if (msg) {
        co_await ws.send_text("echo: " + *msg);
      }
      ws.close(1000, "done");
      co_await ws.wait_closed();
    }};
    co_return res;
  });
  server_options o;
  o.tls_context = ctx.native_handle();
  running_server s(std::move(r), o);

  asio::io_context ioc;
  asio::ssl::context client_ctx(asio::ssl::context::tls_client);
  client_ctx.load_verify_file(pair.chain_file.string());
  client_ctx.set_verify_mode(asio::ssl::verify_peer);
  auto connect = [&](asio::ssl::stream<tcp::socket>& tls) {
    SSL_set_tlsext_host_name(tls.native_handle(), "t.test");
    tls.next_layer().connect({asio::ip::address_v4::loopback(), s.port()});
    tls.handshake(asio::ssl::stream_base::client);
  };

  asio::ssl::stream<tcp::socket> tls(ioc, client_ctx);
  connect(tls);
  std::string upload = pattern(300 * 1024 + 7);
  asio::write(tls, asio::buffer(get("/big")));
  beast::flat_buffer buf;
  bhttp::response_parser<bhttp::string_body> p;
  p.body_limit(4 << 20);
  std::this_thread::sleep_for(100ms);  // the server fills the socket buffers and waits
  bhttp::read(tls, buf, p);
  EXPECT_TRUE(p.get().body() == big);
  asio::write(tls, asio::buffer(
                       fmt::format("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{}",
                                   upload.size(), upload)));
  bhttp::response_parser<bhttp::string_body> echoed;
  echoed.body_limit(4 << 20);
  bhttp::read(tls, buf, echoed);
  EXPECT_TRUE(echoed.get().body() == upload);
  asio::write(tls, asio::buffer(get("/events")));
  bhttp::response_parser<bhttp::string_body> events;
  bhttp::read(tls, buf, events);
  EXPECT_EQ(events.get().body(), "data: one\n\ndata: two\n\n");

  beast::websocket::stream<asio::ssl::stream<tcp::socket>> ws(ioc, client_ctx);
  connect(ws.next_layer());
  ws.handshake("t.test", "/ws");
  ws.write(asio::buffer(std::string("hi")));
  beast::flat_buffer wbuf;
  ws.read(wbuf);
  EXPECT_EQ(beast::buffers_to_string(wbuf.data()), "echo: hi");
  boost::system::error_code ec;
  ws.read(wbuf, ec);
  EXPECT_EQ(ec, beast::websocket::error::closed);
  EXPECT_EQ(ws.reason().reason, "done");
}

// A descriptor many responses share (a cache entry): each body sends its region and leaves the
// descriptor open for the next; the owner closes it.
TEST(http_server, file_body_with_a_shared_owner_keeps_the_descriptor_open) {
  std::string content = pattern(200 * 1024);
  temp_file f(content);
  auto owned = file_body::open(f.path());
  ASSERT_TRUE(owned);
  auto owner = std::make_shared<file_body>(std::move(*owned));
  int fd = owner->fd();
  router r;
  r.get("/shared", [owner](request& req) -> asio::awaitable<response> {
    uint64_t off = std::stoull(req.query("off").value_or("0"));
    response res(200);
    res.body = file_body(owner, owner->fd(), off, owner->length() - off);
    co_return res;
  });
  running_server s(std::move(r));
  client c(s.port(), 16 * 1024);
  for (uint64_t off : {0, 100000, 5}) {
    c.send(get("/shared?off=" + std::to_string(off)));
    EXPECT_TRUE(c.read().body() == content.substr(off));
  }
  EXPECT_GE(::fcntl(fd, F_GETFD), 0);  // still open
}

// Stalled clients are dropped, each by its own timeout, while they still hold their socket open:
// one that stops mid-headers (slowloris) or mid-body (read timeout), one that sends nothing after
// a response (idle timeout), and one that stops reading a large response (write timeout, for a
// body from memory and one sent with sendfile). The 10 s bound only keeps a broken server from
// hanging the test.
TEST(http_server, timeouts_drop_stalled_clients) {
  std::string big = pattern(16 << 20);
  temp_file f(big);
  router r = basic_routes();
  r.get("/big", [&big](request&) -> asio::awaitable<response> {
    co_return response(200, "application/octet-stream", big);
  });
  r.get("/big-file", [&f](request&) -> asio::awaitable<response> {
    response res(200);
    res.body = std::move(file_body::open(f.path()).value());
    co_return res;
  });
  server_options o;
  o.idle_timeout = 300ms;
  o.read_timeout = 300ms;
  o.write_timeout = 300ms;
  running_server s(std::move(r), o);
  // Accepted (one connection), then dropped (none).
  auto dropped = [&s] {
    return eventually([&s] { return s.srv().connections() == 1; }) &&
           eventually([&s] { return s.srv().connections() == 0; });
  };

  client headers(s.port());
  headers.send("GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: ");
  EXPECT_TRUE(dropped()) << "stalled in the headers";

  client body(s.port());
  body.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly part");
  EXPECT_TRUE(dropped()) << "stalled in the body";

  client idle(s.port());
  idle.send(get("/hello"));
  EXPECT_EQ(idle.read().body(), "hello");
  EXPECT_TRUE(dropped()) << "idle after a response";

  for (const char* target : {"/big", "/big-file"}) {
    client reader(s.port(), 16 * 1024);  // never reads: the server's writes stop progressing
    reader.send(get(target));
    EXPECT_TRUE(dropped()) << "stopped reading " << target;
  }
  // The server still serves.
  client fresh(s.port());
  fresh.send(get("/hello"));
  EXPECT_EQ(fresh.read().body(), "hello");
}

// The deadline is per connection, moved by each phase: a client trickling its headers (each
// byte well within any per-read timeout) is still cut by the read timeout for the request, an
// idle connection that served requests spaced by less than the idle timeout is still closed,
// and a slow reader that keeps taking bytes is not cut by the write timeout.
TEST(http_server, deadlines_cut_trickling_and_idle_clients_but_not_slow_readers) {
  std::string big = pattern(16 << 20);
  router r = basic_routes();
  r.get("/big", [&big](request&) -> asio::awaitable<response> {
    co_return response(200, "application/octet-stream", big);
  });
  server_options o;
  o.idle_timeout = 400ms;
  o.read_timeout = 300ms;
  o.write_timeout = 300ms;
  running_server s(std::move(r), o);

  {
    client trickle(s.port());
    std::atomic<bool> done{false};
    std::thread sender([&] {
      trickle.send("GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: ");
      boost::system::error_code ec;
      while (!done && !ec) {
        asio::write(trickle.socket(), asio::buffer("a", 1), ec);
        std::this_thread::sleep_for(20ms);
      }
    });
    EXPECT_TRUE(eventually([&s] { return s.srv().connections() == 1; }));
    EXPECT_TRUE(eventually([&s] { return s.srv().connections() == 0; })) << "trickled headers";
    done = true;
    sender.join();
  }

  client spaced(s.port());
  for (int i = 0; i < 4; ++i) {
    spaced.send(get("/hello"));
    EXPECT_EQ(spaced.read().body(), "hello");
    std::this_thread::sleep_for(150ms);  // within the idle timeout: the connection stays
  }
  EXPECT_TRUE(eventually([&s] { return s.srv().connections() == 0; })) << "idle after requests";
  EXPECT_TRUE(spaced.closed_by_server());

  // 16 MiB, more than the socket buffers hold, at 1 MiB per 50 ms: the server waits for room
  // longer than the write timeout in all, but never that long at once. A cut connection makes
  // read_raw throw.
  client slow(s.port(), 16 * 1024);
  slow.send(get("/big"));
  std::string received;
  size_t total = std::numeric_limits<size_t>::max();
  while (received.size() < total) {
    std::this_thread::sleep_for(50ms);
    received += slow.read_raw(std::min<size_t>(1 << 20, total - received.size()));
    if (size_t end = received.find("\r\n\r\n");
        total == std::numeric_limits<size_t>::max() && end != received.npos) {
      total = end + 4 + big.size();
    }
  }
  EXPECT_TRUE(received.ends_with(big));
}

// The deadlines cover waiting for the client only: a handler slower than every timeout still
// answers, on a connection that then stays open for the next request.
TEST(http_server, a_slow_handler_outlives_the_connection_deadlines) {
  router r = basic_routes();
  r.get("/slow", [](request&) -> asio::awaitable<response> {
    co_await dp::test::co_sleep(700ms);
    co_return response(200, "text/plain", "slow");
  });
  server_options o;
  o.idle_timeout = 300ms;
  o.read_timeout = 300ms;
  o.write_timeout = 300ms;
  running_server s(std::move(r), o);
  client c(s.port());
  c.send(get("/slow"));
  EXPECT_EQ(c.read().body(), "slow");
  c.send(get("/hello"));
  EXPECT_EQ(c.read().body(), "hello");
}

// Requests pipelined in one send, a body among them, are each parsed from what is already
// buffered and answered in order on the one connection.
TEST(http_server, many_pipelined_requests_in_one_send) {
  running_server s(basic_routes());
  client c(s.port());
  std::string batch;
  for (int i = 0; i < 40; ++i) {
    batch += i == 20 ? "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody"
                     : get(fmt::format("/echo/{}/x", i));
  }
  c.send(batch);
  for (int i = 0; i < 40; ++i) {
    auto r = c.read();
    ASSERT_EQ(r.result_int(), 200) << i;
    if (i == 20) {
      EXPECT_EQ(r.body(), "body");
    } else {
      EXPECT_EQ(boost::json::parse(r.body()).at("a").as_string(), std::to_string(i));
    }
  }
  EXPECT_EQ(s.srv().connections(), 1u);
}

// A producer of `chunks` pieces of `size` bytes each, pulled by the server.
stream_body counting_stream(int chunks, size_t size, bool with_length) {
  auto state = std::make_shared<int>(0);
  stream_body b;
  b.read = [state, chunks, size](std::span<char> buf) -> asio::awaitable<dp::result<size_t>> {
    if (*state == chunks) {
      co_return size_t{0};
    }
    size_t n = std::min(size, buf.size());
    std::fill_n(buf.data(), n, static_cast<char>('0' + (*state)++ % 10));
    co_return n;
  };
  if (with_length) {
    b.length = static_cast<uint64_t>(chunks) * size;
  }
  return b;
}

TEST(http_server, streamed_body_chunked_and_with_length) {
  router r;
  r.get("/stream", [](request& req) -> asio::awaitable<response> {
    response res(200);
    res.set("Content-Type", "text/plain");
    res.body = counting_stream(5, 1000, req.query("len").has_value());
    co_return res;
  });
  r.get("/broken", [](request&) -> asio::awaitable<response> {
    response res(200);
    res.body = stream_body{[](std::span<char>) -> asio::awaitable<dp::result<size_t>> {
      co_return make_error(errc::unavailable, "bucket secret-name unreachable");
    }};
    co_return res;
  });
  running_server s(std::move(r));
  client c(s.port());
  std::string expected;
  for (int i = 0; i < 5; ++i) {
    expected += std::string(1000, static_cast<char>('0' + i));
  }
  c.send(get("/stream"));
  auto chunked = c.read();
  EXPECT_TRUE(chunked.chunked());
  EXPECT_EQ(chunked.body(), expected);
  c.send(get("/stream?len=1"));
  auto sized = c.read();
  EXPECT_FALSE(sized.chunked());
  EXPECT_EQ(sized[bhttp::field::content_length], "5000");
  EXPECT_EQ(sized.body(), expected);
  // A producer failing before its first byte gives a 502 that names no internals.
  c.send(get("/broken"));
  auto broken = c.read();
  EXPECT_EQ(broken.result_int(), 502);
  EXPECT_EQ(broken.body().find("secret"), std::string::npos);
}

// Reads one HTTP/1.1 chunk's payload from a raw chunked stream.
std::string read_chunk(client& c) {
  std::string size_line;
  while (size_line.size() < 2 || size_line.substr(size_line.size() - 2) != "\r\n") {
    size_line += c.read_raw(1);
  }
  size_t n = std::stoul(size_line, nullptr, 16);
  std::string data = c.read_raw(n);
  c.read_raw(2);
  return data;
}

TEST(http_server, sse_framing_keepalive_and_end) {
  router r;
  r.get("/events", [](request&) -> asio::awaitable<response> {
    response res(200);
    res.body = sse_body{[](sse_stream s) -> asio::awaitable<void> {
      co_await s.send({.data = "line one\nline two", .event = "log", .id = "1"});
      // Idle longer than the keep-alive interval: a comment goes out.
      asio::steady_timer t(co_await asio::this_coro::executor, 300ms);
      co_await t.async_wait(asio::use_awaitable);
      co_await s.send({.data = "done", .event = "status", .id = "2"});
    }};
    co_return res;
  });
  running_server s(std::move(r), server_options{.sse_keepalive = 100ms});
  client c(s.port());
  c.send(get("/events"));
  std::string head;
  while (head.find("\r\n\r\n") == std::string::npos) {
    head += c.read_raw(1);
  }
  EXPECT_NE(head.find("Content-Type: text/event-stream"), std::string::npos);
  EXPECT_NE(head.find("Transfer-Encoding: chunked"), std::string::npos);
  EXPECT_NE(head.find("Cache-Control: no-cache"), std::string::npos);
  EXPECT_EQ(read_chunk(c), "id: 1\nevent: log\ndata: line one\ndata: line two\n\n");
  std::string next = read_chunk(c);
  EXPECT_EQ(next, ": keep-alive\n\n");
  while (next == ": keep-alive\n\n") {
    next = read_chunk(c);
  }
  EXPECT_EQ(next, "id: 2\nevent: status\ndata: done\n\n");
  EXPECT_EQ(read_chunk(c), "");  // the last chunk: the handler returned
  EXPECT_TRUE(c.closed_by_server());
}

TEST(http_server, sse_detects_client_disconnect) {
  std::promise<std::string> reason;
  router r;
  r.get("/events", [&reason](request&) -> asio::awaitable<response> {
    response res(200);
    res.body = sse_body{[&reason](sse_stream s) -> asio::awaitable<void> {
      co_await s.send({.data = "hello"});
      co_await s.wait_closed();
      auto sent = s.try_send({.data = "too late"});
      reason.set_value(s.close_reason() + (sent ? " (sent)" : " (refused)"));
    }};
    co_return res;
  });
  running_server s(std::move(r));
  {
    client c(s.port());
    c.send(get("/events"));
    c.read_raw(10);
  }
  auto fut = reason.get_future();
  ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(fut.get(), "client disconnected (refused)");
  EXPECT_TRUE(eventually([&] { return s.srv().connections() == 0; }));
}

// A TLS event stream whose client stops reading: the writer waits on the socket itself, and
// write_timeout ends the stream as it ends a plain one.
TEST(http_server, tls_sse_client_that_stops_reading_is_cut_after_the_write_timeout) {
  dp::test::temp_dir dir{"dp-http-tls-sse"};
  auto pair = dp::test::make_certificate(dir.path(), "t", {"t.test"});
  asio::ssl::context ctx(asio::ssl::context::tls_server);
  ctx.use_certificate_chain_file(pair.chain_file.string());
  ctx.use_private_key_file(pair.key_file.string(), asio::ssl::context::pem);
  std::promise<std::string> outcome;
  router r;
  r.get("/events", [&](request&) -> asio::awaitable<response> {
    response res(200);
    res.body = sse_body{[&](sse_stream s) -> asio::awaitable<void> {
      std::string payload(16 * 1024, 'x');
      // Each send waits until written: the writer stalls once the socket buffers are full.
      for (int i = 0; i < 100000; ++i) {
        if (auto sent = co_await s.send({.data = payload}); !sent) {
          outcome.set_value(sent.error().message);
          co_return;
        }
      }
      outcome.set_value("never cut");
    }};
    co_return res;
  });
  server_options o;
  o.tls_context = ctx.native_handle();
  o.write_timeout = 300ms;
  running_server s(std::move(r), o);

  asio::io_context ioc;
  asio::ssl::context client_ctx(asio::ssl::context::tls_client);
  asio::ssl::stream<tcp::socket> tls(ioc, client_ctx);
  tls.next_layer().open(tcp::v4());
  int rcvbuf = 4096;
  ::setsockopt(tls.next_layer().native_handle(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  tls.next_layer().connect({asio::ip::address_v4::loopback(), s.port()});
  tls.handshake(asio::ssl::stream_base::client);
  asio::write(tls, asio::buffer(get("/events")));
  char some[100];
  asio::read(tls, asio::buffer(some));  // then stop reading
  auto fut = outcome.get_future();
  ASSERT_EQ(fut.wait_for(30s), std::future_status::ready);
  EXPECT_NE(fut.get(), "never cut");
}

TEST(http_server, slow_sse_client_is_dropped_with_bounded_queue) {
  constexpr size_t limit = 256 * 1024;
  std::promise<std::string> outcome;
  std::atomic<size_t> max_queued{0};
  router r;
  r.get("/events", [&](request&) -> asio::awaitable<response> {
    response res(200);
    res.body = sse_body{[&](sse_stream s) -> asio::awaitable<void> {
      std::string payload(16 * 1024, 'x');
      auto ex = co_await asio::this_coro::executor;
      // A fan-out pushing without waiting, as the api-server's log follower does.
      for (int i = 0; i < 100000; ++i) {
        auto r = s.try_send({.data = payload});
        max_queued = std::max<size_t>(max_queued, s.queued_bytes());
        if (!r) {
          s.close(1008, "client too slow");
          outcome.set_value(r.error().message);
          co_return;
        }
        co_await asio::post(ex, asio::use_awaitable);  // lets the writer run
      }
      outcome.set_value("never dropped");
    }};
    co_return res;
  });
  running_server s(std::move(r), server_options{.stream_queue_limit = limit});
  client c(s.port(), 4096);
  c.send(get("/events"));
  c.read_raw(100);  // then stop reading
  auto fut = outcome.get_future();
  ASSERT_EQ(fut.wait_for(30s), std::future_status::ready);
  EXPECT_NE(fut.get().find("client too slow"), std::string::npos);
  EXPECT_LE(max_queued.load(), limit + 17 * 1024);
}

TEST(http_server, websocket_round_trip_and_close_reason) {
  std::promise<std::string> server_side;
  router r;
  r.get("/ws", [&](request& req) -> asio::awaitable<response> {
    if (!req.wants_websocket()) {
      co_return error_response(400, "invalid_argument", "websocket only");
    }
    response res;
    res.body = websocket_body{[&](websocket ws) -> asio::awaitable<void> {
      auto msg = co_await ws.read();
      if (!msg) {
        server_side.set_value("read failed");
        co_return;
      }
      co_await ws.send_text("echo: " + *msg);
      // Queued, then written before the close (close() itself drops what is still queued).
      if (ws.try_send_text("second")) {
        co_await ws.send_text("third");
      }
      ws.close(4000, "bye now");
      co_await ws.wait_closed();
      server_side.set_value(ws.close_reason());
    }};
    co_return res;
  });
  running_server s(std::move(r));
  asio::io_context ioc;
  beast::websocket::stream<tcp::socket> ws(ioc);
  ws.next_layer().connect({asio::ip::address_v4::loopback(), s.port()});
  ws.handshake("localhost", "/ws");
  ws.write(asio::buffer(std::string("hi")));
  beast::flat_buffer buf;
  ws.read(buf);
  EXPECT_EQ(beast::buffers_to_string(buf.data()), "echo: hi");
  buf.consume(buf.size());
  ws.read(buf);
  EXPECT_EQ(beast::buffers_to_string(buf.data()), "second");
  buf.consume(buf.size());
  ws.read(buf);
  EXPECT_EQ(beast::buffers_to_string(buf.data()), "third");
  boost::system::error_code ec;
  ws.read(buf, ec);
  EXPECT_EQ(ec, beast::websocket::error::closed);
  EXPECT_EQ(ws.reason().code, 4000);
  EXPECT_EQ(ws.reason().reason, "bye now");
  auto fut = server_side.get_future();
  ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(fut.get(), "bye now");
}

TEST(http_server, websocket_client_close_ends_handler) {
  std::promise<std::string> server_side;
  router r;
  r.get("/ws", [&](request&) -> asio::awaitable<response> {
    response res;
    res.body = websocket_body{[&](websocket ws) -> asio::awaitable<void> {
      co_await ws.wait_closed();
      server_side.set_value(ws.close_reason());
    }};
    co_return res;
  });
  running_server s(std::move(r));
  {
    asio::io_context ioc;
    beast::websocket::stream<tcp::socket> ws(ioc);
    ws.next_layer().connect({asio::ip::address_v4::loopback(), s.port()});
    ws.handshake("localhost", "/ws");
    ws.close(beast::websocket::close_code::normal);
  }
  auto fut = server_side.get_future();
  ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(fut.get(), "closed by client");
  // A plain GET to a WebSocket-only response is refused.
  client c(s.port());
  c.send(get("/ws"));
  EXPECT_EQ(c.read().result_int(), 426);
}

TEST(http_server, graceful_shutdown_drains_in_flight_requests) {
  std::atomic<bool> in_handler{false};
  std::promise<std::string> stream_end;
  router r;
  r.get("/slow", [&](request&) -> asio::awaitable<response> {
    in_handler = true;
    asio::steady_timer t(co_await asio::this_coro::executor, 500ms);
    co_await t.async_wait(asio::use_awaitable);
    co_return response(200, "text/plain", "finished");
  });
  r.get("/hello", [](request&) -> asio::awaitable<response> {
    co_return response(200, "text/plain", "hello");
  });
  r.get("/events", [&](request&) -> asio::awaitable<response> {
    response res(200);
    res.body = sse_body{[&](sse_stream s) -> asio::awaitable<void> {
      co_await s.send({.data = "hi"});
      co_await s.wait_closed();
      stream_end.set_value(s.close_reason());
    }};
    co_return res;
  });
  running_server s(std::move(r), server_options{.threads = 2});
  client idle(s.port());
  idle.send(get("/hello"));
  EXPECT_EQ(idle.read().body(), "hello");
  client events(s.port());
  events.send(get("/events"));
  events.read_raw(20);
  client busy(s.port());
  busy.send(get("/slow"));
  ASSERT_TRUE(eventually([&] { return in_handler.load(); }));

  s.stop(10s);
  // The idle keep-alive connection and the stream end at once; the slow request completes.
  EXPECT_TRUE(idle.closed_by_server());
  auto fut = stream_end.get_future();
  ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(fut.get(), "server shutting down");
  auto res = busy.read();
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body(), "finished");
  EXPECT_FALSE(res.keep_alive());
  EXPECT_TRUE(eventually([&] { return s.stopped(); }));
  // No longer accepting.
  boost::system::error_code ec;
  asio::io_context ioc;
  tcp::socket late(ioc);
  late.connect({asio::ip::address_v4::loopback(), s.port()}, ec);
  EXPECT_TRUE(ec);
}

TEST(http_server, drain_deadline_closes_stuck_requests) {
  router r;
  r.get("/stuck", [](request&) -> asio::awaitable<response> {
    asio::steady_timer t(co_await asio::this_coro::executor, 1s);
    co_await t.async_wait(asio::use_awaitable);
    co_return response(200, "text/plain", "late");
  });
  running_server s(std::move(r));
  client c(s.port());
  c.send(get("/stuck"));
  ASSERT_TRUE(eventually([&] { return s.srv().connections() == 1; }));
  s.stop(100ms);
  // The connection is closed at the deadline; the handler's late answer has nowhere to go.
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_TRUE(eventually([&] { return s.stopped(); }));
}

}  // namespace
}  // namespace dp::http
