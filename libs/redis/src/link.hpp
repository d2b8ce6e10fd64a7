// The reconnecting side shared by client and subscriber: one connection at a time, opened lazily,
// AUTH and SELECT on every connect, backoff with jitter between attempts, and batches of commands
// that wait (bounded by their timeout) for a connection, then for their replies.
#pragma once

#include "connection.hpp"

#include <boost/asio/steady_timer.hpp>

#include <deque>
#include <optional>
#include <random>

namespace dp::redis::detail {

class link : public std::enable_shared_from_this<link> {
 public:
  // Runs on every new connection after AUTH and SELECT, before queued commands are sent;
  // `reconnect` is false the first time.
  using ready_fn = std::function<void(connection& c, bool reconnect)>;

  link(boost::asio::any_io_executor executor, options opts, reply_fn push = {},
       ready_fn ready = {});

  // Sends the commands back to back once connected and returns every reply (errors included).
  // Static with a shared_ptr: the owner may be destroyed while a caller waits.
  static boost::asio::awaitable<dp::result<std::vector<reply>>> run(
      std::shared_ptr<link> self, std::vector<std::vector<std::string>> commands,
      std::chrono::milliseconds timeout);

  void start();  // starts the connection loop unless it runs
  void close();
  bool closed() const noexcept { return closed_; }
  // The ready connection, or null while (re)connecting (or once it failed, before the loop knows).
  connection* current() const noexcept { return conn_ && conn_->is_open() ? conn_.get() : nullptr; }
  const options& opts() const noexcept { return opts_; }
  const boost::asio::any_io_executor& executor() const noexcept { return executor_; }
  std::uint64_t reconnects() const noexcept { return reconnects_; }

 private:
  struct batch;

  boost::asio::awaitable<void> loop();
  boost::asio::awaitable<dp::result<void>> handshake(const std::shared_ptr<connection>& c);
  static void send(const std::shared_ptr<batch>& b, const std::shared_ptr<connection>& c);
  boost::asio::awaitable<dp::result<std::vector<reply>>> wait(std::shared_ptr<batch> b,
                                                              std::chrono::milliseconds timeout);

  boost::asio::any_io_executor executor_;
  options opts_;
  reply_fn push_;
  ready_fn ready_;
  std::shared_ptr<connection> conn_;          // ready for commands
  std::shared_ptr<connection> opening_;       // being connected, so close() can end it
  std::deque<std::shared_ptr<batch>> queue_;  // waiting for a connection
  boost::asio::steady_timer backoff_;
  std::string last_error_;  // why the last attempt failed, for the errors of waiting commands
  std::minstd_rand random_;
  std::uint64_t reconnects_ = 0;
  bool started_ = false;
  bool closed_ = false;
};

}  // namespace dp::redis::detail
