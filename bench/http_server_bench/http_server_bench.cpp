// Requests/s of the dp::http server for small responses: the server runs on CPU 0 (one thread),
// wrk (keep-alive) on CPU 1. Prints one table. Usage: http_server_bench [seconds] [connections]
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <regex>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "dp/http/server.hpp"

namespace {

void pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  ::sched_setaffinity(0, sizeof set, &set);
}

struct wrk_result {
  double rps = 0;
  std::string p50, p99;
};

// Runs wrk pinned to `cpu` and reads its summary (wrk is the load generator the issues name).
wrk_result run_wrk(const std::string& url, int seconds, int connections, int cpu) {
  std::string cmd = fmt::format("taskset -c {} wrk --latency -t1 -c{} -d{}s {} 2>&1", cpu,
                                connections, seconds, url);
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) {
    return {};
  }
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) {
    out.append(buf, n);
  }
  ::pclose(p);
  wrk_result r;
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"(Requests/sec:\s+([0-9.]+))"))) {
    r.rps = std::stod(m[1]);
  }
  if (std::regex_search(out, m, std::regex(R"(50%\s+(\S+))"))) {
    r.p50 = m[1];
  }
  if (std::regex_search(out, m, std::regex(R"(99%\s+(\S+))"))) {
    r.p99 = m[1];
  }
  if (r.rps == 0) {
    std::fprintf(stderr, "wrk failed:\n%s\n", out.c_str());
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  int seconds = argc > 1 ? std::atoi(argv[1]) : 5;
  int connections = argc > 2 ? std::atoi(argv[2]) : 50;
  unsigned cpus = std::thread::hardware_concurrency();
  int server_cpu = 0;
  int wrk_cpu = cpus > 1 ? 1 : 0;

  std::string small(1024, 'x');
  std::string large(100 * 1024, 'y');
  dp::http::router routes;
  routes.get("/1k", [&small](dp::http::request&) -> boost::asio::awaitable<dp::http::response> {
    co_return dp::http::response(200, "text/plain", small);
  });
  routes.get("/100k", [&large](dp::http::request&) -> boost::asio::awaitable<dp::http::response> {
    co_return dp::http::response(200, "text/plain", large);
  });
  routes.get(
      "/v1/deployments/{id}",
      [](dp::http::request& req) -> boost::asio::awaitable<dp::http::response> {
        co_return dp::http::json_response(200, {{"id", req.param("id")}, {"status", "ready"}});
      });

  boost::asio::io_context ioc(1);
  dp::http::server srv(ioc, dp::http::server_options{}, std::move(routes));
  if (auto r = srv.start(); !r) {
    std::fprintf(stderr, "http_server_bench: %s\n", r.error().message.c_str());
    return 1;
  }
  std::thread server_thread([&] {
    pin_to_cpu(server_cpu);
    srv.run();
  });

  std::printf("dp::http server, 1 thread on CPU %d; wrk -t1 -c%d -d%ds on CPU %d (keep-alive)\n\n",
              server_cpu, connections, seconds, wrk_cpu);
  std::printf("| %-32s | %12s | %10s | %10s |\n", "request", "requests/s", "p50", "p99");
  std::printf("|%s|%s|%s|%s|\n", std::string(34, '-').c_str(), std::string(14, '-').c_str(),
              std::string(12, '-').c_str(), std::string(12, '-').c_str());
  for (const char* path : {"/1k", "/100k", "/v1/deployments/01jh5k7q3x"}) {
    auto url = fmt::format("http://127.0.0.1:{}{}", srv.port(), path);
    auto r = run_wrk(url, seconds, connections, wrk_cpu);
    std::printf("| GET %-28s | %12.0f | %10s | %10s |\n", path, r.rps, r.p50.c_str(),
                r.p99.c_str());
    std::fflush(stdout);
  }
  srv.stop(std::chrono::seconds(1));
  server_thread.join();
  return 0;
}
