// api_bench: log fan-out latency from PUBLISH to 100 WebSocket clients (p50, p99), and requests/s
// of GET /v1/deployments/{id} with wrk. The api-server runs in-process on its own thread against
// a harness redis-server, as in production (one thread). Prints a table.
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <regex>
#include <thread>

#include "dp/api/api.hpp"
#include "dp/http/server.hpp"
#include "dp/redis/client.hpp"
#include "dp/state/records.hpp"
#include "dp/storage/object_store.hpp"
#include "dp/storage/url.hpp"
#include "dp/test/harness.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch())
      .count();
}

// One client: reads frames; a log line carries its publish time in ns; records the delay.
asio::awaitable<void> ws_client(uint16_t port, std::string target, std::vector<int64_t>& delays,
                                std::atomic<int>& connected, std::atomic<int64_t>& received) {
  auto ex = co_await asio::this_coro::executor;
  beast::websocket::stream<tcp::socket> ws(ex);
  co_await ws.next_layer().async_connect({asio::ip::address_v4::loopback(), port},
                                         asio::use_awaitable);
  co_await ws.async_handshake("localhost", target, asio::use_awaitable);
  ++connected;
  beast::flat_buffer buf;
  for (;;) {
    auto [ec, n] = co_await ws.async_read(buf, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      co_return;
    }
    auto v = json::parse(beast::buffers_to_string(buf.data()));
    buf.consume(buf.size());
    if (v.at("type").as_string() != "log") {
      co_return;
    }
    int64_t sent = std::stoll(std::string(v.at("line").as_string()));
    delays.push_back(now_ns() - sent);
    ++received;
  }
}

double percentile(std::vector<int64_t>& v, double p) {
  if (v.empty()) {
    return 0;
  }
  std::sort(v.begin(), v.end());
  auto i = static_cast<size_t>(p * static_cast<double>(v.size() - 1));
  return static_cast<double>(v[i]) / 1000.0;
}

}  // namespace

int main() {
  constexpr int clients = 100;
  constexpr int messages = 500;
  dp::test::redis_server redis_server;
  dp::test::temp_dir files("dp-api-bench");

  // The api-server, on its own thread.
  asio::io_context ioc(1);
  dp::redis::options ro;
  ro.url.port = redis_server.port();
  dp::redis::client redis(ioc.get_executor(), ro);
  dp::storage::storage_url su;
  su.root = files.path();
  auto storage = dp::storage::open_storage(ioc.get_executor(), su, {}).value();
  dp::api::options api_options;
  dp::api::service api(ioc.get_executor(), redis, ro, storage, api_options);
  dp::http::server server(ioc, {}, api.routes());
  server.start().value();
  std::thread server_thread([&] { server.run(); });
  asio::co_spawn(ioc, api.start(), asio::use_future).get().value();

  auto created = dp::test::http_request(server.port(), "POST", "/v1/deployments",
                                        R"({"git_url":"https://example.com/shop.git"})",
                                        {{"content-type", "application/json"}})
                     .value();
  std::string id(json::parse(created.body).at("id").as_string());

  // 100 WebSocket clients on another thread.
  asio::io_context cctx(1);
  std::atomic<int> connected{0};
  std::atomic<int64_t> received{0};
  std::vector<std::vector<int64_t>> delays(clients);
  for (int i = 0; i < clients; ++i) {
    asio::co_spawn(cctx,
                   ws_client(server.port(), "/v1/deployments/" + id + "/logs/stream", delays[i],
                             connected, received),
                   asio::detached);
  }
  std::thread client_thread([&] { cctx.run(); });
  while (connected < clients) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // every replay done

  // The publisher: a third connection, one message at a time, each after the last has arrived.
  asio::io_context pctx(1);
  dp::redis::client publisher(pctx.get_executor(), ro);
  dp::proto::keys keys;
  auto publish_all = [&]() -> asio::awaitable<void> {
    for (int seq = 1; seq <= messages; ++seq) {
      auto target = received.load() + clients;
      std::string event = fmt::format(
          R"({{"deployment_id":"{}","seq":{},"ts_ms":0,"stream":"stdout","line":"{}"}})", id, seq,
          now_ns());
      std::vector<std::string> cmd{"PUBLISH", keys.logs_channel(id), event};
      co_await publisher.exec(std::move(cmd));
      while (received.load() < target) {
        asio::steady_timer t(pctx, std::chrono::microseconds(50));
        co_await t.async_wait(asio::use_awaitable);
      }
    }
  };
  // The client keeps pctx busy until it is closed, whether or not publishing went well.
  asio::co_spawn(pctx, publish_all(), [&](std::exception_ptr e) {
    publisher.close();
    if (e) {
      std::rethrow_exception(e);
    }
  });
  pctx.run();

  std::vector<int64_t> all;
  for (auto& d : delays) {
    all.insert(all.end(), d.begin(), d.end());
  }
  double p50 = percentile(all, 0.50);
  double p99 = percentile(all, 0.99);

  // Requests/s with wrk (1 thread, 32 connections, 5 s).
  auto wrk =
      dp::test::run({"wrk", "-t1", "-c32", "-d5s",
                     fmt::format("http://127.0.0.1:{}/v1/deployments/{}", server.port(), id)});
  std::smatch m;
  std::string rps = "n/a";
  if (std::regex_search(wrk.output, m, std::regex(R"(Requests/sec:\s+([0-9.]+))"))) {
    rps = m[1];
  }

  std::printf("| benchmark | value |\n|---|---|\n");
  std::printf("| log fan-out, %d WebSocket clients x %d messages: deliveries | %zu |\n", clients,
              messages, all.size());
  std::printf("| fan-out latency PUBLISH -> client, p50 | %.0f us |\n", p50);
  std::printf("| fan-out latency PUBLISH -> client, p99 | %.0f us |\n", p99);
  std::printf("| GET /v1/deployments/{id} (wrk -t1 -c32 -d5s) | %s req/s |\n", rps.c_str());

  asio::post(ioc, [&] {
    server.stop(std::chrono::milliseconds(100), [&] {
      api.stop();
      redis.close();
    });
  });
  server_thread.join();
  cctx.stop();
  client_thread.join();
  return 0;
}
