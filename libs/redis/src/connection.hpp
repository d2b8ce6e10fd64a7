// One hiredis async context on Asio: a posix::stream_descriptor over the context's socket, the five
// ev hooks arming async_wait, every hiredis call on the owner's executor. One object per TCP
// connection; a new connection is a new object.
#pragma once

#include "dp/core/config.hpp"
#include "dp/core/error.hpp"
#include "dp/redis/types.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

struct redisAsyncContext;

namespace dp::redis::detail {

// Receives a reply, or the error that ended the connection before the reply came.
using reply_fn = std::function<void(dp::result<reply>)>;

class connection : public std::enable_shared_from_this<connection> {
 public:
  // `push` receives every reply to the subscription commands sent by send_subscription():
  // confirmations and messages.
  connection(boost::asio::any_io_executor executor, reply_fn push = {});
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  // Resolves, connects and waits for the connection at most `timeout`.
  boost::asio::awaitable<dp::result<void>> open(const dp::config::redis_url& url,
                                                std::chrono::milliseconds timeout);
  bool is_open() const noexcept { return ctx_ != nullptr && connected_; }

  // Queues one command; `done` runs exactly once, possibly before send() returns.
  void send(const std::vector<std::string>& argv, reply_fn done);
  // (P)(UN)SUBSCRIBE: their replies go to the push handler, as many times as Redis sends them.
  void send_subscription(const std::vector<std::string>& argv);

  // Frees the context; commands still waiting get the error. `reason` (if any) is what they see.
  void close(std::string reason = {});
  // Resumes once the context is gone, whoever ended it.
  boost::asio::awaitable<void> wait_closed();

  const std::string& peer() const noexcept { return peer_; }
  // The error a command gets when the connection ends before its reply.
  dp::error lost_error() const;

 private:
  static void on_connect(const redisAsyncContext* ac, int status);
  static void on_reply(redisAsyncContext* ac, void* r, void* privdata);
  static void on_push(redisAsyncContext* ac, void* r, void* privdata);
  static void add_read(void* self);
  static void del_read(void* self);
  static void add_write(void* self);
  static void del_write(void* self);
  static void cleanup(void* self);

  // One direction of the socket as hiredis drives it: hiredis asks for it (add_read, add_write)
  // and takes it back (del_*); while it is wanted, one wait at a time is pending, and readiness
  // hands the context to hiredis (redisAsyncHandleRead or redisAsyncHandleWrite).
  struct direction {
    boost::asio::posix::stream_descriptor::wait_type wait;
    void (*handle)(redisAsyncContext*);
    bool wanted = false;
    bool armed = false;  // a wait is pending
  };
  void arm(direction connection::*which);

  boost::asio::any_io_executor executor_;
  boost::asio::posix::stream_descriptor socket_;
  boost::asio::steady_timer
      signal_;  // canceled when the connect finishes and when the context ends
  reply_fn push_;
  redisAsyncContext* ctx_ = nullptr;
  std::string peer_;
  std::string error_;
  bool connected_ = false;
  bool closed_ = false;  // close() was called
  direction read_;
  direction write_;
};

}  // namespace dp::redis::detail
