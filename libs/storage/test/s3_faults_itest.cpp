// The S3 store against network faults: a TCP relay in front of a real s3rver hangs up on the
// first connections as soon as a request arrives, with no response. Retries must survive that,
// re-sending a file body from its start, and give up after max_attempts with a clear error.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <boost/asio.hpp>

#include <fmt/format.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "dp/aws/sigv4.hpp"
#include "dp/storage/object_store.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace dp::storage;
using namespace std::chrono_literals;

// Hangs up on the first `drop` connections after reading from them once; relays the others to
// 127.0.0.1:<upstream> byte for byte. Blocking sockets and a thread per direction: a test tool.
class dropping_relay {
 public:
  dropping_relay(uint16_t upstream, int drop) : upstream_(upstream), drop_(drop) {
    acceptor_.open(tcp::v4());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind({asio::ip::address_v4::loopback(), 0});
    acceptor_.listen();
    threads_.emplace_back([this] { accept_loop(); });
  }
  ~dropping_relay() {
    stopping_ = true;
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);  // wakes the blocking accept
    {
      std::lock_guard lock(mu_);
      for (auto& s : sockets_) {
        ::shutdown(s->native_handle(), SHUT_RDWR);  // wakes the pumps
      }
    }
    for (auto& t : threads_) {
      t.join();
    }
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  int connections() const { return accepted_; }

 private:
  void accept_loop() {
    for (;;) {
      auto down = std::make_shared<tcp::socket>(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(*down, ec);
      if (ec || stopping_) {
        return;
      }
      if (accepted_++ < drop_) {
        char buf[4096];
        down->read_some(asio::buffer(buf), ec);
        down->close(ec);
        continue;
      }
      auto up = std::make_shared<tcp::socket>(ioc_);
      up->connect({asio::ip::address_v4::loopback(), upstream_}, ec);
      std::lock_guard lock(mu_);
      sockets_.push_back(down);
      sockets_.push_back(up);
      threads_.emplace_back([down, up] { pump(*down, *up); });
      threads_.emplace_back([down, up] { pump(*up, *down); });
    }
  }
  static void pump(tcp::socket& from, tcp::socket& to) {
    std::vector<char> buf(64 * 1024);
    boost::system::error_code ec;
    for (;;) {
      size_t n = from.read_some(asio::buffer(buf), ec);
      if (ec || asio::write(to, asio::buffer(buf.data(), n), ec) != n || ec) {
        break;
      }
    }
    ::shutdown(to.native_handle(), SHUT_WR);
  }

  asio::io_context ioc_;
  tcp::acceptor acceptor_{ioc_};
  uint16_t upstream_;
  int drop_;
  std::atomic<int> accepted_{0};
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::vector<std::shared_ptr<tcp::socket>> sockets_;
  std::vector<std::thread> threads_;  // the accept loop is the first; it alone adds pumps
};

class s3_faults : public ::testing::Test {
 protected:
  // A store that reaches s3rver through a relay dropping its first `drop` connections.
  std::shared_ptr<object_store> open_through_relay(int drop, int max_attempts) {
    relay_.emplace(s3_.port(), drop);
    auto url = parse_storage_url(s3_.storage_url()).value();
    url.endpoint = fmt::format("http://127.0.0.1:{}", relay_->port());
    dp::aws::credentials creds{
        dp::test::s3rver::access_key(), dp::test::s3rver::secret_key(), {}, "us-east-1"};
    store_options o;
    o.max_attempts = max_attempts;
    o.base_backoff = 10ms;
    auto store = open_storage(ioc_.get_executor(), url, creds, o);
    EXPECT_TRUE(store) << store.error().message;
    return store ? *store : nullptr;
  }

  template <class T>
  T run(asio::awaitable<T> a) {
    return dp::test::run_async(ioc_, std::move(a));
  }

  // Named arguments inside: g++ 12 miscompiles braced temporaries passed to a coroutine.
  dp::result<object_info> put_text(object_store& store, std::string key, std::string data) {
    put_options po;
    return run(store.put_buffer(std::move(key), std::move(data), std::move(po)));
  }

  dp::test::s3rver s3_;
  dp::test::temp_dir dir_{"dp-s3-faults"};
  std::optional<dropping_relay> relay_;  // declared before ioc_: outlives the store's sockets
  asio::io_context ioc_;
};

TEST_F(s3_faults, retries_survive_dropped_connections) {
  auto store = open_through_relay(2, 4);
  ASSERT_TRUE(store);
  std::string key = "a/buffer.txt";
  auto put = put_text(*store, key, "from memory");
  EXPECT_TRUE(put) << put.error().message;
  EXPECT_EQ(relay_->connections(), 3);  // two hung up on, the third carried it
  // A file body that a dropped attempt had started to send goes again from its start.
  store = open_through_relay(1, 4);
  std::string content(3 << 20, 'x');
  for (size_t i = 0; i < content.size(); i += 4096) {
    content[i] = static_cast<char>('a' + (i / 4096) % 26);
  }
  auto file = dir_.path() / "body.bin";
  std::ofstream(file, std::ios::binary) << content;
  std::string file_key = "a/file.bin";
  put_options po;
  auto put_file = run(store->put_file(file_key, file, po));
  EXPECT_TRUE(put_file) << put_file.error().message;
  EXPECT_GE(relay_->connections(), 2);
  auto got = run(store->get(file_key));
  ASSERT_TRUE(got) << got.error().message;
  auto body = run(got->read_all());
  ASSERT_TRUE(body);
  EXPECT_TRUE(*body == content);
  auto first = run(store->get(key));
  ASSERT_TRUE(first);
  EXPECT_EQ(run(first->read_all()).value(), "from memory");
}

TEST_F(s3_faults, a_peer_that_always_hangs_up_fails_after_max_attempts) {
  auto store = open_through_relay(1000, 3);
  ASSERT_TRUE(store);
  std::string key = "b/never.txt";
  auto put = put_text(*store, key, "x");
  ASSERT_FALSE(put);
  EXPECT_TRUE(put.error().is(dp::errc::unavailable)) << put.error().message;
  EXPECT_EQ(relay_->connections(), 3);
  auto got = run(store->get(key));
  ASSERT_FALSE(got);
  EXPECT_TRUE(got.error().is(dp::errc::unavailable)) << got.error().message;
  EXPECT_EQ(relay_->connections(), 6);
}

}  // namespace
