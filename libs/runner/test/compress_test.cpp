#include "dp/runner/compress.hpp"

#include <brotli/decode.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <random>
#include <set>

namespace {

using dp::runner::compress_options;
using dp::runner::is_compressible;
using dp::runner::make_variants;
using dp::runner::plan_variants;
using dp::runner::variant_plan;

std::string unbrotli(const std::string& in) {
  std::string out(1 << 20, '\0');
  size_t n = out.size();
  EXPECT_EQ(BrotliDecoderDecompress(in.size(), reinterpret_cast<const uint8_t*>(in.data()), &n,
                                    reinterpret_cast<uint8_t*>(out.data())),
            BROTLI_DECODER_RESULT_SUCCESS);
  out.resize(n);
  return out;
}

std::string gunzip(const std::string& in) {
  z_stream zs{};
  EXPECT_EQ(inflateInit2(&zs, 15 + 16), Z_OK);
  std::string out(1 << 20, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  inflateEnd(&zs);
  return out;
}

std::string page(size_t bytes) {
  std::string s;
  for (int i = 0; s.size() < bytes; ++i) {
    s += "<li class=\"item\"><a href=\"/posts/" + std::to_string(i) + "\">Post " +
         std::to_string(i) + "</a></li>\n";
  }
  s.resize(bytes);
  return s;
}

auto lists(std::set<std::string> keys) {
  return [keys = std::move(keys)](const std::string& k) { return keys.contains(k); };
}

TEST(compress, compressible_by_content_type) {
  for (const char* k : {"index.html", "a/app.js", "x.mjs", "style.css", "data.json", "app.js.map",
                        "logo.svg", "feed.xml", "rss.rss", "robots.txt", "site.webmanifest",
                        "m.wasm", "f.ttf", "f.otf", "f.eot", "favicon.ico", "README.md"}) {
    EXPECT_TRUE(is_compressible(k)) << k;
  }
  for (const char* k : {"photo.png", "a.jpg", "a.webp", "a.avif", "f.woff", "f.woff2", "a.zip",
                        "app.js.br", "app.js.gz", "v.mp4", "noextension", "a.pdf"}) {
    EXPECT_FALSE(is_compressible(k)) << k;
  }
}

TEST(compress, threshold_and_size_cap) {
  compress_options o;
  auto none = lists({});
  EXPECT_FALSE(plan_variants("app.js", o.min_bytes - 1, 0, o, none).any());
  auto p = plan_variants("app.js", o.min_bytes, 0, o, none);
  EXPECT_TRUE(p.br && p.gzip);
  EXPECT_TRUE(plan_variants("app.js", o.max_bytes, 0, o, none).any());
  EXPECT_FALSE(plan_variants("app.js", o.max_bytes + 1, 0, o, none).any());
  EXPECT_FALSE(plan_variants("photo.png", 100000, 0, o, none).any());
  o.enabled = false;
  EXPECT_FALSE(plan_variants("app.js", 100000, 0, o, none).any());
}

TEST(compress, budget_per_deployment) {
  compress_options o;
  auto none = lists({});
  uint64_t mib = 1 << 20;
  // Brotli 11 for the first best_quality_bytes, then the fast quality, then nothing.
  EXPECT_EQ(plan_variants("a.js", 4 * mib, 0, o, none).brotli_quality, 11);
  EXPECT_NE(o.fast_brotli_quality, 11);
  EXPECT_EQ(plan_variants("a.js", 4 * mib, o.best_quality_bytes - 4 * mib, o, none).brotli_quality,
            11);
  auto fast = plan_variants("a.js", 4 * mib, o.best_quality_bytes - mib, o, none);
  EXPECT_TRUE(fast.br && fast.gzip);
  EXPECT_EQ(fast.brotli_quality, o.fast_brotli_quality);
  EXPECT_TRUE(plan_variants("a.js", 4 * mib, o.max_total_bytes - 4 * mib, o, none).any());
  EXPECT_FALSE(plan_variants("a.js", 4 * mib, o.max_total_bytes - mib, o, none).any());
  // The quality planned is the one used.
  std::string html = page(20000);
  auto q11 = make_variants(html, {.br = true, .gzip = false, .brotli_quality = 11}, o);
  auto q1 = make_variants(html, {.br = true, .gzip = false, .brotli_quality = 1}, o);
  ASSERT_EQ(q11.size(), 1u);
  ASSERT_EQ(q1.size(), 1u);
  EXPECT_LT(q11[0].data.size(), q1[0].data.size());
  EXPECT_EQ(unbrotli(q1[0].data), html);
}

TEST(compress, a_variant_the_user_shipped_wins) {
  compress_options o;
  auto p = plan_variants("app.js", 5000, 0, o, lists({"app.js", "app.js.br"}));
  EXPECT_FALSE(p.br);
  EXPECT_TRUE(p.gzip);
  p = plan_variants("app.js", 5000, 0, o, lists({"app.js", "app.js.br", "app.js.gz"}));
  EXPECT_FALSE(p.any());
}

TEST(compress, variants_decode_to_the_file) {
  compress_options o;
  std::string html = page(20000);
  auto v = make_variants(html, {.br = true, .gzip = true}, o);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].suffix, ".br");
  EXPECT_EQ(unbrotli(v[0].data), html);
  EXPECT_EQ(v[1].suffix, ".gz");
  EXPECT_EQ(gunzip(v[1].data), html);
  EXPECT_LT(v[0].data.size(), v[1].data.size());
  EXPECT_NE(v[0].sha256, v[1].sha256);
  EXPECT_EQ(v[0].sha256.size(), 64u);
  // The same bytes give the same variants, so a redeploy keeps its ETags.
  auto again = make_variants(html, {.br = true, .gzip = true}, o);
  EXPECT_EQ(again[0].sha256, v[0].sha256);
  EXPECT_EQ(again[1].sha256, v[1].sha256);
  // Only what was planned.
  auto gz = make_variants(html, {.br = false, .gzip = true}, o);
  ASSERT_EQ(gz.size(), 1u);
  EXPECT_EQ(gz[0].suffix, ".gz");
}

TEST(compress, smaller_only) {
  compress_options o;
  // Random bytes do not compress: no variant is kept.
  std::mt19937 rng(7);
  std::string noise(8000, '\0');
  for (auto& c : noise) {
    c = static_cast<char>(rng());
  }
  EXPECT_TRUE(make_variants(noise, {.br = true, .gzip = true}, o).empty());
  // A saving under min_saving_percent is not worth a second representation.
  std::string mostly = noise + page(300);
  o.min_saving_percent = 5;
  EXPECT_TRUE(make_variants(mostly, {.br = true, .gzip = true}, o).empty());
  o.min_saving_percent = 0;
  EXPECT_FALSE(make_variants(mostly, {.br = true, .gzip = false}, o).empty());
}

}  // namespace
