// The wall clock as every record, event, expiry and log line holds it.
#pragma once

#include <chrono>
#include <cstdint>

namespace dp {

// Milliseconds since the Unix epoch of `t`.
inline int64_t epoch_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// Milliseconds since the Unix epoch, now.
inline int64_t now_ms() {
  return epoch_ms(std::chrono::system_clock::now());
}

}  // namespace dp
