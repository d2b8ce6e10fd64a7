// Upload throughput of the storage backends: a directory of 1,000 files of 1-10 KiB (a typical
// static site) and one of 20 files of 5 MiB, to the file backend and to s3rver, at concurrency
// 1 (the original JavaScript design: one file after another, the line to beat), 8 and 32.
#include <boost/asio.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>

#include "dp/storage/object_store.hpp"
#include "dp/test/harness.hpp"

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace dp::storage;

struct dataset {
  std::string name;
  fs::path dir;
  size_t files = 0;
  uint64_t bytes = 0;
};

dataset make_dataset(const fs::path& base, std::string name, size_t count, size_t min_size,
                     size_t max_size) {
  dataset d{name, base / name};
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<size_t> size(min_size, max_size);
  for (size_t i = 0; i < count; ++i) {
    fs::path p = d.dir / ("dir" + std::to_string(i % 10)) / ("file" + std::to_string(i) + ".js");
    fs::create_directories(p.parent_path());
    std::string data(size(rng), '\0');
    for (auto& c : data) {
      c = static_cast<char>('a' + rng() % 26);
    }
    std::ofstream(p, std::ios::binary) << data;
    d.files++;
    d.bytes += data.size();
  }
  return d;
}

void run_row(const char* backend, const storage_url& url, const dp::aws::credentials& creds,
             store_options opts, const dataset& d, size_t concurrency, int& round) {
  asio::io_context ioc;
  opts.max_in_flight = std::max<size_t>(concurrency, 1);
  auto store = open_storage(ioc.get_executor(), url, creds, opts).value();
  std::string prefix = "bench/" + std::to_string(round++) + "/";
  auto start = std::chrono::steady_clock::now();
  auto f =
      asio::co_spawn(ioc, upload_directory(*store, d.dir, prefix, concurrency), asio::use_future);
  ioc.run();
  auto r = f.get();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!r) {
    std::printf("| %-16s | %-14s | %11zu | %10s | %10s | %8s |  failed: %s\n", backend,
                d.name.c_str(), concurrency, "-", "-", "-", r.error().message.c_str());
    return;
  }
  std::printf("| %-16s | %-14s | %11zu | %10.0f | %10.1f | %8.2f |\n", backend, d.name.c_str(),
              concurrency, static_cast<double>(d.files) / s,
              static_cast<double>(d.bytes) / (1 << 20) / s, s);
  std::fflush(stdout);
}

}  // namespace

int main() {
  dp::test::temp_dir tmp("dp-storage-bench");
  std::vector<dataset> sets = {make_dataset(tmp.path(), "1000 x 1-10KiB", 1000, 1024, 10240),
                               make_dataset(tmp.path(), "20 x 5MiB", 20, 5 << 20, 5 << 20)};
  std::printf("| %-16s | %-14s | %11s | %10s | %10s | %8s |\n", "backend", "dataset", "concurrency",
              "files/s", "MiB/s", "seconds");
  std::printf(
      "|------------------|----------------|-------------|------------|------------|----------|\n");
  int round = 0;
  storage_url file_url;
  file_url.root = tmp.path() / "store";
  for (bool fsync : {true, false}) {
    store_options o;
    o.fsync = fsync;
    for (const auto& d : sets) {
      for (size_t c : {1, 8, 32}) {
        run_row(fsync ? "file (fsync)" : "file (no fsync)", file_url, {}, o, d, c, round);
      }
    }
  }
  try {
    // s3rver 3.7's continuation tokens need OpenSSL's legacy provider under Node 20.
    ::setenv("NODE_OPTIONS", "--openssl-legacy-provider", 1);
    dp::test::s3rver s3;
    auto url = parse_storage_url(s3.storage_url()).value();
    dp::aws::credentials creds{
        dp::test::s3rver::access_key(), dp::test::s3rver::secret_key(), {}, "us-east-1"};
    for (const auto& d : sets) {
      for (size_t c : {1, 8, 32}) {
        run_row("s3 (s3rver)", url, creds, {}, d, c, round);
      }
    }
  } catch (const std::exception& e) {
    std::printf("s3rver rows skipped: %s\n", e.what());
  }
  return 0;
}
