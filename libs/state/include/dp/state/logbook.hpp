// Build logs in Redis: every event is XADDed to logbook:<id> (for replay) and PUBLISHed on
// logs:<id> (for live followers). The stream entry id is `<seq>-0`, so a replay from any seq is one
// XRANGE, and re-sending a batch after a lost connection is harmless (Redis refuses the ids it
// already has; followers drop repeated seqs).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dp/core/error.hpp"
#include "dp/proto/keys.hpp"
#include "dp/proto/types.hpp"

namespace dp::redis {
class client;
}

namespace dp::state {

struct log_writer_options {
  int64_t max_len = 100'000;                             // XADD MAXLEN ~
  std::chrono::seconds ttl{std::chrono::hours(24 * 7)};  // the logbook expires after the build
  size_t max_batch = 2'000;                              // events per pipeline
  std::chrono::milliseconds retry_min{100};
  std::chrono::milliseconds retry_max{2'000};
};

// Batches without a timer: while one pipeline is in flight, new lines wait in a buffer and go
// out together in the next, so a quiet build sends each line at once and a build printing
// 100,000 lines sends a few hundred pipelines. A failed pipeline is retried with backoff; lines are
// never dropped. Lives on its executor (the redis client's).
class log_writer {
 public:
  log_writer(boost::asio::any_io_executor executor, redis::client& redis, const proto::keys& keys,
             std::string deployment_id, int64_t first_seq = 1, log_writer_options opts = {});
  ~log_writer();
  log_writer(const log_writer&) = delete;
  log_writer& operator=(const log_writer&) = delete;

  // Assigns the next seq and queues the event. Never blocks.
  void write(proto::log_stream stream, std::string_view line);
  // The phase of the lines written from now on (none until the first call).
  void phase(proto::log_phase p);
  // Waits until everything written so far is stored; errc::timeout if Redis stays away longer.
  boost::asio::awaitable<dp::result<void>> flush(std::chrono::milliseconds timeout);

  int64_t next_seq() const noexcept;
  size_t buffered() const noexcept;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

// The seq a new writer continues from (a retried attempt appends to the same logbook).
boost::asio::awaitable<dp::result<int64_t>> next_log_seq(redis::client& redis,
                                                         const proto::keys& keys,
                                                         std::string_view deployment_id);

// Events with seq > after_seq, at most `max`, in order.
boost::asio::awaitable<dp::result<std::vector<proto::log_event>>> read_logbook(
    redis::client& redis, const proto::keys& keys, std::string_view deployment_id,
    int64_t after_seq, size_t max);

}  // namespace dp::state
