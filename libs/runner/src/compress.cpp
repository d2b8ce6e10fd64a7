#include "dp/runner/compress.hpp"

#include <brotli/encode.h>
#include <openssl/evp.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>

#include "dp/buildplan/content_type.hpp"

namespace dp::runner {
namespace {

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    hex.push_back(digits[md[i] >> 4]);
    hex.push_back(digits[md[i] & 15]);
  }
  return hex;
}

}  // namespace

bool is_compressible(std::string_view key) noexcept {
  std::string_view type = buildplan::content_type(key);
  type = type.substr(0, type.find(';'));
  if (type.starts_with("text/")) {
    return true;
  }
  // JSON and XML families: manifest+json, ld+json, atom+xml, rss+xml, xhtml+xml, svg+xml.
  if (type.ends_with("json") || type.ends_with("xml")) {
    return true;
  }
  return type == "application/wasm" || type == "font/ttf" || type == "font/otf" ||
         type == "application/vnd.ms-fontobject" || type == "image/x-icon";
}

std::string brotli_encode(std::string_view data, int quality) {
  std::string out(BrotliEncoderMaxCompressedSize(data.size()), '\0');
  size_t n = out.size();
  if (out.empty() ||
      BrotliEncoderCompress(quality, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_GENERIC, data.size(),
                            reinterpret_cast<const uint8_t*>(data.data()), &n,
                            reinterpret_cast<uint8_t*>(out.data())) != BROTLI_TRUE) {
    return {};
  }
  out.resize(n);
  return out;
}

std::string gzip_encode(std::string_view data, int level) {
  z_stream zs{};
  // 15 + 16: a gzip wrapper (with mtime 0, so equal inputs give equal bytes and ETags).
  if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK) {
    return {};
  }
  std::string out(deflateBound(&zs, static_cast<uLong>(data.size())), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  size_t n = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) {
    return {};
  }
  out.resize(n);
  return out;
}

std::vector<variant> make_variants(std::string_view data, variant_plan plan,
                                   const compress_options& o) {
  std::vector<variant> out;
  // Kept when at most (100 - min_saving_percent)% of the file.
  auto keep = [&](std::string encoded, std::string suffix) {
    if (!encoded.empty() && encoded.size() * 100 <= data.size() * (100 - o.min_saving_percent)) {
      std::string sum = sha256_hex(encoded);
      out.push_back(variant{std::move(suffix), std::move(encoded), std::move(sum)});
    }
  };
  if (plan.br) {
    keep(brotli_encode(data, plan.brotli_quality), ".br");
  }
  if (plan.gzip) {
    keep(gzip_encode(data, o.gzip_level), ".gz");
  }
  return out;
}

dp::result<std::string> read_file(int fd, uint64_t size) {
  std::string data(size, '\0');
  size_t got = 0;
  while (got < data.size()) {
    ssize_t n = ::read(fd, data.data() + got, data.size() - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return dp::make_error(boost::system::error_code(errno, boost::system::generic_category()),
                            "read");
    }
    if (n == 0) {
      break;
    }
    got += static_cast<size_t>(n);
  }
  if (got != size) {
    return dp::make_error(dp::errc::conflict, "the file changed size after validation");
  }
  return data;
}

}  // namespace dp::runner
