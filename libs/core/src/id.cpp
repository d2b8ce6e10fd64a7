#include "dp/core/id.hpp"
#include "dp/core/clock.hpp"

#include <sys/random.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <system_error>

namespace dp {
namespace {

constexpr char alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";

int decode_char(char c) noexcept {
  for (int i = 0; i < 32; ++i) {
    if (alphabet[i] == c) {
      return i;
    }
  }
  return -1;
}

}  // namespace

void secure_random_bytes(void* out, size_t n) {
  auto* p = static_cast<uint8_t*>(out);
  while (n > 0) {
    ssize_t got = ::getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw std::system_error(errno, std::generic_category(), "getrandom");
    }
    p += got;
    n -= static_cast<size_t>(got);
  }
}

std::string make_deployment_id(uint64_t unix_ms, const uint8_t (&random)[10]) {
  // 128 bits = 48 time bits + 80 random bits, emitted 5 bits at a time from the top
  // (26 characters carry 130 bits; the first character holds the top 3 bits only).
  uint8_t bytes[16];
  for (int i = 0; i < 6; ++i) {
    bytes[i] = static_cast<uint8_t>(unix_ms >> (8 * (5 - i)));
  }
  std::memcpy(bytes + 6, random, 10);
  std::string out(deployment_id_length, '0');
  for (size_t c = 0; c < deployment_id_length; ++c) {
    // Bit offset of this character within a 130-bit big-endian field (2 leading zero bits).
    int value = 0;
    for (int b = 0; b < 5; ++b) {
      int bit = static_cast<int>(c) * 5 + b - 2;
      int v = bit < 0 ? 0 : (bytes[bit / 8] >> (7 - bit % 8)) & 1;
      value = (value << 1) | v;
    }
    out[c] = alphabet[value];
  }
  return out;
}

std::string new_deployment_id() {
  static std::mutex mutex;
  static uint64_t last_ms = 0;
  static uint8_t last_random[10];
  uint64_t now = static_cast<uint64_t>(dp::now_ms());
  std::lock_guard lock(mutex);
  if (now <= last_ms) {
    // Same (or an earlier, after a clock step) millisecond: keep the order by incrementing.
    now = last_ms;
    for (int i = 9; i >= 0; --i) {
      if (++last_random[i] != 0) {
        break;
      }
    }
  } else {
    last_ms = now;
    secure_random_bytes(last_random, sizeof last_random);
  }
  return make_deployment_id(now, last_random);
}

bool is_deployment_id(std::string_view s) noexcept {
  if (s.size() != deployment_id_length || s[0] > '7') {
    return false;
  }
  for (char c : s) {
    if (decode_char(c) < 0) {
      return false;
    }
  }
  return true;
}

std::string_view short_id(std::string_view deployment_id) noexcept {
  if (deployment_id.size() < 8) {
    return deployment_id;
  }
  // The last 8 characters: the low 40 random bits, which also differ between ids made in the
  // same millisecond (those increment the random part).
  return deployment_id.substr(deployment_id.size() - 8);
}

std::string immutable_alias(std::string_view project, std::string_view deployment_id) {
  auto id = short_id(deployment_id);
  constexpr size_t dns_label_max = 63;
  std::string_view sep = project.size() + 2 + id.size() <= dns_label_max ? "--" : "-";
  std::string out;
  out.reserve(project.size() + sep.size() + id.size());
  out.append(project).append(sep).append(id);
  return out;
}

uint64_t deployment_id_time_ms(std::string_view id) noexcept {
  if (!is_deployment_id(id)) {
    return 0;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < 10; ++i) {
    v = (v << 5) | static_cast<uint64_t>(decode_char(id[i]));
  }
  return v;  // 10 characters carry 50 bits: 2 leading zero bits, then the 48 time bits
}

std::string random_hex(size_t bytes) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string raw(bytes, '\0');
  secure_random_bytes(raw.data(), bytes);
  std::string out;
  out.reserve(bytes * 2);
  for (unsigned char c : raw) {
    out += hex[c >> 4];
    out += hex[c & 0xF];
  }
  return out;
}

}  // namespace dp
