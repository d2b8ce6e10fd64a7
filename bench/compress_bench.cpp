// compress_bench: what the precompressed variants save and cost on the real sites
// (tests/fixtures/sites). Each site is built by the runner twice from a git repository of the
// fixture, without variants and then with them (BUILD_COMPRESS), into a file store; the runner's
// upload phase of the two is the cost. From the second build's manifest: the bytes a client
// downloads for the whole site without compression, with Brotli and with gzip. A second table
// compresses the same files at Brotli 5, 9 and 11 and gzip 9 (one thread), which is how the
// quality was chosen. Needs bubblewrap and the npm registry (or npm's cache), as the e2e tests.
//
// A last line compresses an 8 MiB file (the sites' compressible files end to end, repeated: the
// largest file the runner compresses) in a child process under /usr/bin/time: the time and peak
// memory of one of the 2 files compressed at once.
//
// Usage: compress_bench [site...]   (default: every site that is not heavy in tests/e2e/sites.mjs)
//        compress_bench --file PATH (the child: variants of one file, as the runner makes them)
#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "dp/core/id.hpp"
#include "dp/proto/json.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/runner/compress.hpp"
#include "dp/runner/runner.hpp"
#include "dp/storage/object_store.hpp"
#include "dp/test/harness.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

double seconds(const dp::runner::build_report& r, std::string_view phase) {
  double s = 0;
  for (const auto& p : r.phases) {
    if (p.name == phase) {
      s += std::chrono::duration<double>(p.duration).count();
    }
  }
  return s;
}

struct built {
  dp::runner::build_report report;
  std::string id;
};

built build(const std::string& project, const std::string& url, bool compress,
            const fs::path& store, const fs::path& work) {
  dp::proto::job job;
  job.deployment_id = dp::new_deployment_id();
  job.project = project;
  job.git_url = url;
  dp::runner::runner_options opts;
  opts.allowed_git_protocols = {"file"};
  opts.work_root = work;
  opts.timeout = std::chrono::seconds(900);
  opts.compress.enabled = compress;
  asio::io_context ioc;
  auto storage = dp::storage::open_storage(
      ioc.get_executor(), *dp::storage::parse_storage_url("file://" + store.string()), {});
  int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  auto sink = dp::runner::make_stream_sink(devnull, false, job.deployment_id);
  dp::runner::runner runner(job, opts, **storage, *sink);
  auto report = asio::co_spawn(ioc, runner.run(), asio::use_future);
  ioc.run();
  ::close(devnull);
  return {report.get(), job.deployment_id};
}

std::string kib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(bytes) / 1024);
  return buf;
}

std::string percent(uint64_t part, uint64_t whole) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f%%", whole ? 100.0 * static_cast<double>(part) / whole : 0);
  return buf;
}

// Every site whose entry in sites.mjs is not marked heavy, in the file's order.
std::vector<std::string> light_sites() {
  std::string text = read_file(dp::test::source_dir() / "tests/e2e/sites.mjs");
  std::vector<std::string> names;
  size_t pos = 0;
  while ((pos = text.find("name: '", pos)) != std::string::npos) {
    pos += 7;
    std::string name = text.substr(pos, text.find('\'', pos) - pos);
    size_t next = text.find("name: '", pos);
    if (text.substr(pos, next - pos).find("heavy: true") == std::string::npos) {
      names.push_back(name);
    }
  }
  return names;
}

struct quality_totals {
  uint64_t bytes = 0;
  double seconds = 0;
};

}  // namespace

// The child's part: one file's variants with the runner's options, one line of numbers.
int compress_one(const fs::path& path) {
  std::string data = read_file(path);
  dp::runner::compress_options o;
  auto start = clock_type::now();
  auto v = dp::runner::make_variants(data, {.br = true, .gzip = true}, o);
  double s = std::chrono::duration<double>(clock_type::now() - start).count();
  std::printf("%zu", data.size());
  for (const auto& x : v) {
    std::printf(" %s=%zu", x.suffix.c_str(), x.data.size());
  }
  std::printf(" %.2f\n", s);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 3 && std::string_view(argv[1]) == "--file") {
    return compress_one(argv[2]);
  }
  std::vector<std::string> sites(argv + 1, argv + argc);
  if (sites.empty()) {
    sites = light_sites();
  }
  dp::test::temp_dir store("dp-compress-bench-store"), work("dp-compress-bench-work");
  std::printf("%-11s %6s %9s %10s %9s %9s %9s %9s %10s %10s\n", "site", "files", "compress.",
              "identity", "br", "gzip", "br saved", "variants", "upload s", "upload s");
  std::printf("%-11s %6s %9s %10s %9s %9s %9s %9s %10s %10s\n", "", "", "files", "KiB", "KiB",
              "KiB", "", "KiB", "without", "with");
  // Per quality: the bytes of the compressible files' encodings (or the file when not smaller)
  // and the time taken, over every site.
  std::map<std::string, quality_totals> qualities;
  uint64_t candidates_bytes = 0;
  dp::runner::compress_options defaults;
  std::string largest;  // the compressible files end to end, up to the runner's cap
  int failed = 0;
  for (const auto& name : sites) {
    auto root = dp::test::source_dir() / "tests/fixtures/sites" / name;
    std::map<std::string, dp::test::git_file> files;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
      if (e.is_regular_file()) {
        files.emplace(e.path().lexically_relative(root).string(), read_file(e.path()));
      }
    }
    dp::test::git_repo repo(files);
    auto without = build(name, repo.url(), false, store.path(), work.path());
    auto with = build(name, repo.url(), true, store.path(), work.path());
    if (without.report.outcome != dp::runner::build_outcome::ready ||
        with.report.outcome != dp::runner::build_outcome::ready) {
      std::printf(
          "%-11s failed: %s\n", name.c_str(),
          (without.report.error.empty() ? with.report.error : without.report.error).c_str());
      ++failed;
      continue;
    }
    const std::string& id = with.id;
    auto m = dp::proto::parse_manifest(read_file(store.path() / dp::proto::manifest_key(id)));
    if (!m) {
      std::printf("%-11s manifest: %s\n", name.c_str(), m.error().message.c_str());
      ++failed;
      continue;
    }
    // The site's own files (a key whose ".br"/".gz" suffix names another listed file is a
    // variant) and what a client of each coding downloads for all of them.
    uint64_t identity = 0, br = 0, gzip = 0, variants = 0, site_files = 0, compressible = 0;
    auto size_of = [&](const std::string& key) -> std::optional<uint64_t> {
      auto it = m->files.find(key);
      return it == m->files.end() ? std::nullopt
                                  : std::optional<uint64_t>(static_cast<uint64_t>(it->second.size));
    };
    dp::runner::compress_options co;
    for (const auto& [key, e] : m->files) {
      bool variant = (key.ends_with(".br") || key.ends_with(".gz")) &&
                     m->files.contains(key.substr(0, key.size() - 3));
      if (variant) {
        variants += static_cast<uint64_t>(e.size);
        continue;
      }
      auto size = static_cast<uint64_t>(e.size);
      ++site_files;
      identity += size;
      br += size_of(key + ".br").value_or(size);
      gzip += size_of(key + ".gz").value_or(size);
      auto plan =
          dp::runner::plan_variants(key, size, 0, co, [](const std::string&) { return false; });
      if (!plan.any()) {
        continue;
      }
      ++compressible;
      candidates_bytes += size;
      std::string data = read_file(store.path() / dp::proto::output_key(id, key));
      if (largest.size() < defaults.max_bytes) {
        largest.append(data, 0, std::min<size_t>(data.size(), defaults.max_bytes - largest.size()));
      }
      auto measure = [&](const std::string& label, auto encode) {
        auto start = clock_type::now();
        std::string out = encode(data);
        auto& q = qualities[label];
        q.seconds += std::chrono::duration<double>(clock_type::now() - start).count();
        q.bytes += std::min(out.size(), data.size());
      };
      for (int quality : {5, 9, 11}) {
        measure("brotli " + std::to_string(quality),
                [&](const std::string& d) { return dp::runner::brotli_encode(d, quality); });
      }
      measure("gzip 9", [&](const std::string& d) { return dp::runner::gzip_encode(d, 9); });
    }
    std::printf("%-11s %6llu %9llu %10s %9s %9s %9s %9s %10.2f %10.2f\n", name.c_str(),
                static_cast<unsigned long long>(site_files),
                static_cast<unsigned long long>(compressible), kib(identity).c_str(),
                kib(br).c_str(), kib(gzip).c_str(), percent(identity - br, identity).c_str(),
                kib(variants).c_str(), seconds(without.report, "upload"),
                seconds(with.report, "upload"));
    std::fflush(stdout);  // a site takes minutes: show each row when it is done
  }
  std::printf("\n%-10s %14s %9s %10s\n", "encoding", "compressible", "of it", "CPU s");
  std::printf("%-10s %14s %9s %10s\n", "", "KiB", "", "(1 thread)");
  for (const auto& [label, q] : qualities) {
    std::printf("%-10s %14s %9s %10.2f\n", label.c_str(), kib(q.bytes).c_str(),
                percent(q.bytes, candidates_bytes).c_str(), q.seconds);
  }
  std::printf("%-10s %14s %9s\n", "identity", kib(candidates_bytes).c_str(), "100%");
  if (!largest.empty()) {
    // Copies with each byte XORed by the copy's number: as compressible as the original, but no
    // match across copies, which would make Brotli faster than on a real 8 MiB bundle.
    std::string one = largest;
    for (char k = 1; largest.size() < defaults.max_bytes; ++k) {
      for (char c : one) {
        if (largest.size() == defaults.max_bytes) {
          break;
        }
        largest.push_back(static_cast<char>(c ^ k));
      }
    }
    auto file = work.path() / "largest.js";
    std::ofstream(file, std::ios::binary) << largest;
    auto r = dp::test::run({"/usr/bin/time", "-f", "peak RSS %M KiB",
                            fs::read_symlink("/proc/self/exe").string(), "--file", file.string()},
                           {}, {}, std::chrono::minutes(5));
    std::printf("\n8 MiB file (bytes, variants, seconds), br 11 then gzip 9 in one thread:\n%s",
                r.output.c_str());
  }
  return failed == 0 ? 0 : 1;
}
