// Values shared by the Redis client and subscriber: connection options, typed replies and pub/sub
// messages. Plain types: no hiredis and no Asio here.
#pragma once

#include "dp/core/config.hpp"

#include <chrono>
#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dp::redis {

// What the variadic command helpers accept as one argument: anything viewable as bytes.
template <class T>
concept argument = std::convertible_to<const T&, std::string_view>;

struct options {
  dp::config::redis_url url;  // AUTH (user, password) and SELECT db on every (re)connect
  std::chrono::milliseconds connect_timeout{2000};  // TCP connect plus AUTH and SELECT
  std::chrono::milliseconds command_timeout{
      5000};                                     // default per exec()/pipeline(), waiting included
  std::chrono::milliseconds reconnect_min{100};  // first retry delay, doubled up to reconnect_max
  std::chrono::milliseconds reconnect_max{5000};
};

// One RESP reply. Strings are binary safe (NUL bytes included).
class reply {
 public:
  enum class kind { nil, string, integer, status, error, array };

  reply() = default;                                                    // nil
  reply(kind k, std::string text) : kind_(k), str_(std::move(text)) {}  // string, status, error
  explicit reply(std::int64_t n) : kind_(kind::integer), int_(n) {}
  explicit reply(std::vector<reply> elements)
      : kind_(kind::array), elements_(std::move(elements)) {}

  kind type() const noexcept { return kind_; }
  bool is_nil() const noexcept { return kind_ == kind::nil; }
  bool is_string() const noexcept { return kind_ == kind::string; }
  bool is_integer() const noexcept { return kind_ == kind::integer; }
  bool is_status() const noexcept { return kind_ == kind::status; }
  bool is_error() const noexcept { return kind_ == kind::error; }
  bool is_array() const noexcept { return kind_ == kind::array; }

  // The bytes of a string, status or error reply; empty for the other kinds.
  const std::string& as_string() const& noexcept { return str_; }
  std::string as_string() && noexcept { return std::move(str_); }
  // The value of an integer reply; 0 for the other kinds (check type() when unsure).
  std::int64_t as_integer() const noexcept { return int_; }
  // The elements of an array reply; empty for the other kinds.
  const std::vector<reply>& elements() const& noexcept { return elements_; }
  std::vector<reply> elements() && noexcept { return std::move(elements_); }

 private:
  kind kind_ = kind::nil;
  std::string str_;
  std::int64_t int_ = 0;
  std::vector<reply> elements_;
};

enum class message_kind {
  data,  // a published message
  // Messages may have been lost just before this point: the connection was re-established (and
  // every subscription renewed) or the buffer was full. A consumer that needs every message
  // replays from its own log (e.g. the logbook stream) when it sees a gap.
  gap,
};

struct message {
  message_kind kind = message_kind::data;
  std::string pattern;  // the matching pattern for PSUBSCRIBE deliveries, empty for SUBSCRIBE
  std::string channel;
  std::string payload;
};

}  // namespace dp::redis
