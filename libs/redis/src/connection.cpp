#include "connection.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

namespace dp::redis::detail {

namespace asio = boost::asio;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

// A hiredis reply as a dp::redis::reply (copies the bytes).
reply to_reply(const void* redis_reply) {
  const auto* r = static_cast<const redisReply*>(redis_reply);
  switch (r->type) {
    case REDIS_REPLY_STRING:
      return reply(reply::kind::string, std::string(r->str, r->len));
    case REDIS_REPLY_STATUS:
      return reply(reply::kind::status, std::string(r->str, r->len));
    case REDIS_REPLY_ERROR:
      return reply(reply::kind::error, std::string(r->str, r->len));
    case REDIS_REPLY_INTEGER:
      return reply(static_cast<std::int64_t>(r->integer));
    case REDIS_REPLY_ARRAY: {
      std::vector<reply> elements;
      elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) {
        elements.push_back(to_reply(r->element[i]));
      }
      return reply(std::move(elements));
    }
    default:
      return reply();
  }
}

}  // namespace

connection::connection(asio::any_io_executor executor, reply_fn push)
    : executor_(executor),
      socket_(executor),
      signal_(executor),
      push_(std::move(push)),
      read_{asio::posix::stream_descriptor::wait_read, &redisAsyncHandleRead},
      write_{asio::posix::stream_descriptor::wait_write, &redisAsyncHandleWrite} {}

connection::~connection() {
  if (ctx_ != nullptr) {
    redisAsyncFree(ctx_);
  }
}

asio::awaitable<dp::result<void>> connection::open(const dp::config::redis_url& url,
                                                   std::chrono::milliseconds timeout) {
  peer_ = fmt::format("{}:{}", url.host, url.port);
  // hiredis would resolve a name with a blocking getaddrinfo on this thread: resolve here instead.
  asio::ip::tcp::resolver resolver(executor_);
  auto [ec, endpoints] =
      co_await resolver.async_resolve(url.host, std::to_string(url.port), nothrow);
  if (ec || endpoints.empty()) {
    co_return dp::make_error(ec, fmt::format("resolve redis host {}", url.host));
  }
  if (closed_ || !error_.empty()) {  // closed while resolving
    co_return lost_error();
  }
  const std::string ip = endpoints.begin()->endpoint().address().to_string();
  redisAsyncContext* ac = redisAsyncConnect(ip.c_str(), url.port);
  if (ac == nullptr) {
    co_return dp::make_error(errc::internal, "connect to redis {}: out of memory", peer_);
  }
  boost::system::error_code assign_ec;
  if (ac->err == 0) {
    socket_.assign(ac->c.fd, assign_ec);
  }
  if (ac->err != 0 || assign_ec) {
    std::string why = ac->err != 0 ? ac->errstr : assign_ec.message();
    redisAsyncFree(ac);
    co_return dp::make_error(errc::unavailable, "connect to redis {}: {}", peer_, why);
  }
  ctx_ = ac;
  ac->data = this;
  ac->ev.data = this;
  ac->ev.addRead = &add_read;
  ac->ev.delRead = &del_read;
  ac->ev.addWrite = &add_write;
  ac->ev.delWrite = &del_write;
  ac->ev.cleanup = &cleanup;
  // Arms the first write wait: writability is how a non-blocking connect reports completion.
  redisAsyncSetConnectCallback(ac, &on_connect);

  signal_.expires_after(timeout);
  co_await signal_.async_wait(nothrow);
  if (is_open()) {
    signal_.expires_at(asio::steady_timer::time_point::max());
    co_return dp::result<void>();
  }
  std::string why =
      error_.empty() ? fmt::format("no connection within {} ms", timeout.count()) : error_;
  close(why);
  co_return dp::make_error(errc::unavailable, "connect to redis {}: {}", peer_, why);
}

void connection::send(const std::vector<std::string>& argv, reply_fn done) {
  if (!is_open()) {
    done(lost_error());
    return;
  }
  // Always the argv form with lengths: binary safe, nothing is ever parsed as a format string.
  std::vector<const char*> args;
  std::vector<size_t> lengths;
  args.reserve(argv.size());
  lengths.reserve(argv.size());
  for (const auto& a : argv) {
    args.push_back(a.data());
    lengths.push_back(a.size());
  }
  auto* fn = new reply_fn(std::move(done));
  if (redisAsyncCommandArgv(ctx_, &on_reply, fn, static_cast<int>(args.size()), args.data(),
                            lengths.data()) != REDIS_OK) {
    std::unique_ptr<reply_fn> owned(fn);
    (*owned)(dp::make_error(errc::unavailable, "redis {}: the connection is closing", peer_));
  }
}

void connection::send_subscription(const std::vector<std::string>& argv) {
  if (!is_open()) {
    return;  // the subscriber renews every subscription on the next connection
  }
  std::vector<const char*> args;
  std::vector<size_t> lengths;
  for (const auto& a : argv) {
    args.push_back(a.data());
    lengths.push_back(a.size());
  }
  // hiredis calls on_push for every reply of the subscription, so no per-call state is passed.
  redisAsyncCommandArgv(ctx_, &on_push, nullptr, static_cast<int>(args.size()), args.data(),
                        lengths.data());
}

void connection::close(std::string reason) {
  closed_ = true;
  if (error_.empty()) {
    error_ = std::move(reason);
  }
  if (ctx_ != nullptr) {
    redisAsyncFree(ctx_);  // runs the pending callbacks with no reply, then cleanup()
  }
}

asio::awaitable<void> connection::wait_closed() {
  while (ctx_ != nullptr) {
    co_await signal_.async_wait(nothrow);
  }
}

dp::error connection::lost_error() const {
  if (closed_ && error_.empty()) {
    return dp::make_error(errc::canceled, "connection to redis {} closed", peer_);
  }
  return dp::make_error(errc::unavailable, "connection to redis {} lost: {}", peer_,
                        error_.empty() ? std::string("unknown error") : error_);
}

void connection::on_connect(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<connection*>(ac->data);
  if (status == REDIS_OK) {
    self->connected_ = true;
  } else if (self->error_.empty()) {
    self->error_ = ac->errstr;
  }
  self->signal_.cancel();
}

void connection::on_reply(redisAsyncContext* ac, void* r, void* privdata) {
  std::unique_ptr<reply_fn> done(static_cast<reply_fn*>(privdata));
  auto* self = static_cast<connection*>(ac->data);
  if (r != nullptr) {
    (*done)(to_reply(r));
    return;
  }
  // No reply: hiredis is freeing the context and flushing its callbacks.
  if (self->error_.empty() && ac->err != 0) {
    self->error_ = ac->errstr;
  }
  (*done)(self->lost_error());
}

void connection::on_push(redisAsyncContext* ac, void* r, void* /*privdata*/) {
  auto* self = static_cast<connection*>(ac->data);
  if (r != nullptr && self->push_) {
    self->push_(to_reply(r));
  }
}

void connection::add_read(void* p) {
  static_cast<connection*>(p)->read_.wanted = true;
  static_cast<connection*>(p)->arm(&connection::read_);
}

void connection::del_read(void* p) {
  static_cast<connection*>(p)->read_.wanted = false;
}

void connection::add_write(void* p) {
  static_cast<connection*>(p)->write_.wanted = true;
  static_cast<connection*>(p)->arm(&connection::write_);
}

void connection::del_write(void* p) {
  static_cast<connection*>(p)->write_.wanted = false;
}

void connection::cleanup(void* p) {
  auto* self = static_cast<connection*>(p);
  if (self->error_.empty() && self->ctx_ != nullptr && self->ctx_->err != 0) {
    self->error_ = self->ctx_->errstr;
  }
  self->ctx_ = nullptr;
  self->connected_ = false;
  // hiredis closes the socket itself: take it back from Asio without closing it (this also
  // cancels the pending waits, whose handlers keep this object alive until they run).
  self->socket_.release();
  self->signal_.cancel();
}

// The handlers hold a shared_ptr: a wait may complete after the context is gone.
void connection::arm(direction connection::*which) {
  auto& d = this->*which;
  if (d.armed || ctx_ == nullptr) {
    return;
  }
  d.armed = true;
  socket_.async_wait(
      d.wait, [self = shared_from_this(), which](const boost::system::error_code& ec) {
        auto& dir = (*self).*which;
        dir.armed = false;
        if (ec == asio::error::operation_aborted || self->ctx_ == nullptr || !dir.wanted) {
          return;
        }
        dir.handle(self->ctx_);  // may free the context
        if (dir.wanted) {
          self->arm(which);
        }
      });
}

}  // namespace dp::redis::detail
