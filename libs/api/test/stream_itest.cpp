// Live logs over SSE and WebSocket: replay, then live follow with no gap and no duplicate at the
// seam, resume by Last-Event-ID, the final status, and dropping a client too slow to keep up.
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include "api_itest_support.hpp"

namespace {

using namespace dp::api::test;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using ds = dp::proto::deployment_status;

struct sse_event {
  std::string event;
  std::string id;
  std::string data;
};

// A blocking SSE reader over HTTP/1.0 (the body ends when the server closes the connection).
class sse_client {
 public:
  sse_client(uint16_t port, const std::string& target, const std::string& extra = {},
             int rcvbuf = 0) {
    sock_.open(tcp::v4());
    if (rcvbuf > 0) {
      ::setsockopt(sock_.native_handle(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    }
    sock_.connect({asio::ip::address_v4::loopback(), port});
    timeval tv{15, 0};  // a failing test gives up instead of hanging
    ::setsockopt(sock_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    // A name of this machine: local mode refuses others (DNS rebinding).
    std::string req = "GET " + target + " HTTP/1.0\r\nHost: 127.0.0.1\r\n" + extra + "\r\n";
    asio::write(sock_, asio::buffer(req));
  }

  // The next event, or nullopt at the end of the stream.
  std::optional<sse_event> next() {
    for (;;) {
      if (!head_done_) {
        if (auto end = buf_.find("\r\n\r\n"); end != std::string::npos) {
          head = buf_.substr(0, end);
          buf_.erase(0, end + 4);
          head_done_ = true;
          continue;
        }
      } else if (auto end = buf_.find("\n\n"); end != std::string::npos) {
        std::string block = buf_.substr(0, end);
        buf_.erase(0, end + 2);
        sse_event e;
        size_t pos = 0;
        while (pos <= block.size()) {
          auto nl = block.find('\n', pos);
          auto line = block.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
          pos = nl == std::string::npos ? block.size() + 1 : nl + 1;
          if (line.starts_with("event: ")) {
            e.event = line.substr(7);
          } else if (line.starts_with("id: ")) {
            e.id = line.substr(4);
          } else if (line.starts_with("data: ")) {
            e.data += (e.data.empty() ? "" : "\n") + line.substr(6);
          }
        }
        if (e.event.empty() && e.data.empty()) {
          continue;  // a keep-alive comment
        }
        return e;
      }
      char tmp[65536];
      boost::system::error_code ec;
      size_t n = sock_.read_some(asio::buffer(tmp), ec);
      if (ec) {
        eof = ec == asio::error::eof || ec == asio::error::connection_reset;
        return std::nullopt;
      }
      buf_.append(tmp, n);
    }
  }

  std::string head;
  bool eof = false;

 private:
  asio::io_context ioc_;
  tcp::socket sock_{ioc_};
  std::string buf_;
  bool head_done_ = false;
};

class ws_client {
 public:
  ws_client(uint16_t port, const std::string& target, int rcvbuf = 0) {
    auto& sock = ws_.next_layer();
    sock.open(tcp::v4());
    if (rcvbuf > 0) {
      ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    }
    sock.connect({asio::ip::address_v4::loopback(), port});
    timeval tv{15, 0};
    ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ws_.handshake("localhost", target);
  }
  // The next text frame as JSON, or nullopt when the server closed (see close_reason()).
  std::optional<json::value> next() {
    beast::flat_buffer buf;
    boost::system::error_code ec;
    ws_.read(buf, ec);
    if (ec) {
      closed = ec == beast::websocket::error::closed;
      return std::nullopt;
    }
    return json::parse(beast::buffers_to_string(buf.data()));
  }
  beast::websocket::close_reason close_reason() const { return ws_.reason(); }
  bool closed = false;

 private:
  asio::io_context ioc_;
  beast::websocket::stream<tcp::socket> ws_{ioc_};
};

class streams : public ::testing::Test {
 protected:
  api_server s_;
  std::string id_;

  void SetUp() override {
    auto r = s_.request("POST", "/v1/deployments",
                        R"({"git_url":"https://example.com/shop.git","project":"shop"})");
    ASSERT_EQ(r.status, 202) << r.body;
    id_ = std::string(body_of(r).at("id").as_string());
  }

  // Writes lines first..last as the build-runner does (XADD + PUBLISH, batched).
  void write_lines(int first, int last, std::chrono::microseconds pause = {},
                   size_t line_bytes = 0) {
    auto r = s_.on_io([&]() -> asio::awaitable<dp::result<void>> {
      auto ex = co_await asio::this_coro::executor;
      dp::state::log_writer w(ex, s_.redis(), s_.records().keys(), id_, first);
      asio::steady_timer t(ex);
      for (int i = first; i <= last; ++i) {
        std::string line = "line " + std::to_string(i);
        if (line_bytes > line.size()) {
          line.append(line_bytes - line.size(), 'x');
        }
        w.write(i % 2 ? dp::proto::log_stream::out : dp::proto::log_stream::err, line);
        if (pause.count() > 0) {
          t.expires_after(pause);
          co_await t.async_wait(asio::use_awaitable);
        }
      }
      co_return co_await w.flush(std::chrono::seconds(10));
    });
    ASSERT_TRUE(r) << r.error().message;
  }

  void finish_ready() { s_.drive(id_, {ds::building, ds::uploading, ds::ready}); }

  // Writes more lines and then the final status from the server's thread, while the test
  // thread keeps reading: the live path and the seam race for real.
  std::thread write_in_background(int first, int last) {
    return std::thread([this, first, last] {
      write_lines(first, last, std::chrono::microseconds(300));
      finish_ready();
    });
  }
};

void expect_exactly(const std::vector<int64_t>& seqs, int64_t first, int64_t last) {
  std::vector<int64_t> expected;
  for (int64_t i = first; i <= last; ++i) {
    expected.push_back(i);
  }
  EXPECT_EQ(seqs, expected);
}

TEST_F(streams, sse_replays_then_follows_with_no_gap_or_duplicate) {
  write_lines(1, 200);
  sse_client c(s_.port(), "/v1/deployments/" + id_ + "/logs/stream");
  auto writer = write_in_background(201, 600);
  std::vector<int64_t> seqs;
  std::optional<json::value> final_status;
  while (auto e = c.next()) {
    if (e->event == "log") {
      auto v = json::parse(e->data);
      EXPECT_EQ(e->id, std::to_string(v.at("seq").as_int64()));
      EXPECT_TRUE(v.at("line").as_string().starts_with("line "));
      seqs.push_back(v.at("seq").as_int64());
    } else if (e->event == "status") {
      final_status = json::parse(e->data);
    }
  }
  writer.join();
  EXPECT_NE(c.head.find("text/event-stream"), std::string::npos) << c.head;
  EXPECT_TRUE(c.eof);
  expect_exactly(seqs, 1, 600);
  ASSERT_TRUE(final_status);
  EXPECT_EQ(final_status->at("status").as_string(), "ready");
  EXPECT_EQ(final_status->at("id").as_string(), id_);
}

TEST_F(streams, sse_resumes_after_last_event_id) {
  write_lines(1, 100);
  finish_ready();
  sse_client c(s_.port(), "/v1/deployments/" + id_ + "/logs/stream", "Last-Event-ID: 60\r\n");
  std::vector<int64_t> seqs;
  bool status = false;
  while (auto e = c.next()) {
    if (e->event == "log") {
      seqs.push_back(std::stoll(e->id));
    } else if (e->event == "status") {
      status = true;
    }
  }
  expect_exactly(seqs, 61, 100);
  EXPECT_TRUE(status);
  // ?since= works the same way.
  sse_client d(s_.port(), "/v1/deployments/" + id_ + "/logs/stream?since=95");
  seqs.clear();
  while (auto e = d.next()) {
    if (e->event == "log") {
      seqs.push_back(std::stoll(e->id));
    }
  }
  expect_exactly(seqs, 96, 100);
}

TEST_F(streams, websocket_replays_then_follows_with_no_gap_or_duplicate) {
  write_lines(1, 150);
  ws_client c(s_.port(), "/v1/deployments/" + id_ + "/logs/stream?since=0");
  auto writer = write_in_background(151, 500);
  std::vector<int64_t> seqs;
  std::optional<json::value> final_status;
  while (auto m = c.next()) {
    if (m->at("type").as_string() == "log") {
      seqs.push_back(m->at("seq").as_int64());
      EXPECT_EQ(m->at("deployment_id").as_string(), id_);
    } else if (m->at("type").as_string() == "status") {
      final_status = m->at("deployment");
    }
  }
  writer.join();
  EXPECT_TRUE(c.closed);
  EXPECT_EQ(c.close_reason().code, beast::websocket::close_code::normal);
  expect_exactly(seqs, 1, 500);
  ASSERT_TRUE(final_status);
  EXPECT_EQ(final_status->at("status").as_string(), "ready");
}

TEST_F(streams, websocket_resumes_from_since) {
  write_lines(1, 50);
  finish_ready();
  ws_client c(s_.port(), "/v1/deployments/" + id_ + "/logs/stream?since=45");
  std::vector<int64_t> seqs;
  while (auto m = c.next()) {
    if (m->at("type").as_string() == "log") {
      seqs.push_back(m->at("seq").as_int64());
    }
  }
  expect_exactly(seqs, 46, 50);
}

TEST_F(streams, a_canceled_deployment_ends_the_stream_with_its_status) {
  write_lines(1, 3);
  sse_client c(s_.port(), "/v1/deployments/" + id_ + "/logs/stream");
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.next());
  }
  ASSERT_EQ(s_.request("POST", "/v1/deployments/" + id_ + "/cancel").status, 202);
  auto e = c.next();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->event, "status");
  EXPECT_EQ(json::parse(e->data).at("status").as_string(), "canceled");
  EXPECT_FALSE(c.next());
}

// Slow clients: small queues on the server, a client that does not read while thousands of
// lines of 1 KiB are written. The server drops it instead of buffering.

// Writes 20,000 lines of 1 KiB once the api follows the deployment for the client (its gauge
// counts it): lines written before would reach the client by replay, paced by its reads, and
// never fill its queue. A flush per 1,000 lines: one pipeline of all 20 MiB can outlast the
// Redis client's command timeout on a loaded machine (and the api shares that client).
void write_while_the_client_waits(api_server& s, const std::string& id) {
  ASSERT_TRUE(dp::test::eventually([&] {
    return s.request("GET", "/metrics").body.find("dp_log_stream_clients 1\n") != std::string::npos;
  }));
  auto written = s.on_io([&]() -> asio::awaitable<dp::result<void>> {
    dp::state::log_writer w(co_await asio::this_coro::executor, s.redis(), s.records().keys(), id);
    for (int i = 1; i <= 20'000; ++i) {
      w.write(dp::proto::log_stream::out, std::string(1000, 'x'));
      if (i % 1000 == 0) {
        if (auto r = co_await w.flush(std::chrono::seconds(30)); !r) {
          co_return r;
        }
      }
    }
    co_return dp::result<void>{};
  });
  ASSERT_TRUE(written) << written.error().message;
}

TEST(slow_clients, websocket_is_closed_with_1008_and_a_reason) {
  api_server s({.follower_queue_limit = 64, .stream_queue_limit = 16 * 1024});
  auto r = s.request("POST", "/v1/deployments",
                     R"({"git_url":"https://example.com/shop.git","project":"shop"})");
  std::string id(body_of(r).at("id").as_string());
  ws_client c(s.port(), "/v1/deployments/" + id + "/logs/stream", 4096);
  // Written while the client reads nothing.
  write_while_the_client_waits(s, id);
  int frames = 0;
  while (c.next()) {
    ++frames;
  }
  EXPECT_TRUE(c.closed);
  EXPECT_EQ(c.close_reason().code, 1008);
  EXPECT_NE(
      std::string(c.close_reason().reason.data(), c.close_reason().reason.size()).find("too slow"),
      std::string::npos);
  EXPECT_LT(frames, 20'000);
  auto m = s.request("GET", "/metrics");
  EXPECT_NE(m.body.find("dp_log_stream_dropped_total 1\n"), std::string::npos) << m.body;
}

TEST(slow_clients, sse_stream_is_ended) {
  api_server s({.follower_queue_limit = 64, .stream_queue_limit = 16 * 1024});
  auto r = s.request("POST", "/v1/deployments",
                     R"({"git_url":"https://example.com/shop.git","project":"shop"})");
  std::string id(body_of(r).at("id").as_string());
  sse_client c(s.port(), "/v1/deployments/" + id + "/logs/stream", {}, 4096);
  write_while_the_client_waits(s, id);
  int logs = 0;
  bool status = false;
  while (auto e = c.next()) {
    logs += e->event == "log";
    status |= e->event == "status";
  }
  EXPECT_TRUE(c.eof);  // the server ended the stream; the deployment is still queued
  EXPECT_FALSE(status);
  EXPECT_LT(logs, 20'000);
  auto m = s.request("GET", "/metrics");
  EXPECT_NE(m.body.find("dp_log_stream_dropped_total 1\n"), std::string::npos) << m.body;
}

}  // namespace
