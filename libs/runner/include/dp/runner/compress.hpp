// Precompressed variants of a deployment's files, written at upload so the proxy serves Brotli and
// gzip without compressing per request (nginx's gzip_static/brotli_static, done once per build).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dp/core/error.hpp"

namespace dp::runner {

struct compress_options {
  bool enabled = true;
  // Below this the saving is a few hundred bytes of one packet; above max_bytes a file is served
  // as it is: compression reads the whole file into memory.
  uint64_t min_bytes = 1024;
  uint64_t max_bytes = uint64_t{8} << 20;
  // bench/compress_bench.sh on the fixtures: Brotli 11 is 8% smaller than 9 and 10% smaller
  // than 5, at 4.7x and 32x their CPU; files are compressed once and served many times, so 11,
  // for the first best_quality_bytes of a deployment (every fixture fits). On 8 MiB of
  // JavaScript, 11 takes 11 s of CPU and 100 MiB, 9 takes 0.5 s (gzip 9: 0.6 s): past them a large
  // site gets fast_brotli_quality, ~25 s on 2 threads at worst, and past max_total_bytes nothing.
  int brotli_quality = 11;
  int fast_brotli_quality = 9;
  uint64_t best_quality_bytes = uint64_t{8} << 20;
  uint64_t max_total_bytes = uint64_t{256} << 20;
  int gzip_level = 9;
  // A variant is kept only when it is at least this much smaller than the file.
  unsigned min_saving_percent = 5;
  // Files compressed at the same time (each holds the file, its variants and Brotli's window).
  unsigned threads = 2;
};

// By the file's content type: HTML, CSS, JavaScript, JSON and source maps, SVG, XML, plain text
// formats, WebAssembly, TTF/OTF/EOT fonts. Not images, audio, video, archives or WOFF/WOFF2 (they
// are compressed already). Names ending in .br or .gz are never compressed again.
bool is_compressible(std::string_view key) noexcept;

// Which variants a listed file should get: compressible, of a size in [min_bytes, max_bytes],
// within the deployment's max_total_bytes, and without a variant of that coding in the output (the
// user's own x.br or x.gz wins); and at which Brotli quality.
struct variant_plan {
  bool br = false;
  bool gzip = false;
  int brotli_quality = 11;
  bool any() const noexcept { return br || gzip; }
};
// `has_key` says whether the output lists a key; `planned` is what the deployment's earlier
// plans took (the sizes of the files planned with any()).
template <class HasKey>
variant_plan plan_variants(std::string_view key, uint64_t size, uint64_t planned,
                           const compress_options& o, HasKey has_key) {
  variant_plan p;
  if (!o.enabled || size < o.min_bytes || size > o.max_bytes || !is_compressible(key) ||
      planned + size > o.max_total_bytes) {
    return p;
  }
  std::string k(key);
  p.br = !has_key(k + ".br");
  p.gzip = !has_key(k + ".gz");
  p.brotli_quality =
      planned + size <= o.best_quality_bytes ? o.brotli_quality : o.fast_brotli_quality;
  return p;
}

std::string brotli_encode(std::string_view data, int quality);
std::string gzip_encode(std::string_view data, int level);

struct variant {
  std::string suffix;  // ".br" or ".gz": the variant's key is the file's plus this
  std::string data;
  std::string sha256;  // lowercase hex
};

// The planned variants of `data`, each kept only when min_saving_percent smaller. CPU-bound: the
// runner calls it on a thread pool.
std::vector<variant> make_variants(std::string_view data, variant_plan plan,
                                   const compress_options& o);

// Reads a file of `size` bytes (at most max_bytes) from an open descriptor: the one
// buildplan::open_output_file checked to be the validated inode.
dp::result<std::string> read_file(int fd, uint64_t size);

}  // namespace dp::runner
