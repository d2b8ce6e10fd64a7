// The s3 backend without keys, signing with temporary ones from a container credentials endpoint
// (what an ECS task role provides), against a real s3rver, opened directly and as the services
// open it from their settings. The endpoint is a static file served by python3's http.server.
#include <boost/asio.hpp>

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <fstream>
#include <regex>

#include "dp/storage/from_settings.hpp"
#include "dp/storage/object_store.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"

namespace {

using namespace dp::storage;
namespace asio = boost::asio;

class ContainerCredentials : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(dir_.path() / "creds")
        << fmt::format(R"({{"AccessKeyId":"{}","SecretAccessKey":"{}","Token":"session",)"
                       R"("Expiration":"2099-01-01T00:00:00Z"}})",
                       dp::test::s3rver::access_key(), dp::test::s3rver::secret_key());
    // On port 0; http.server says which one it bound ("Serving HTTP on 127.0.0.1 port 45678 ..."),
    // unbuffered (-u), once it listens.
    dp::test::process_options o;
    o.argv = {"python3", "-u",        "-m",          "http.server",       "0",
              "--bind",  "127.0.0.1", "--directory", dir_.path().string()};
    server_.emplace(o);
    ASSERT_TRUE(dp::test::eventually([&] {
      static const std::regex serving(R"(Serving HTTP on \S+ port (\d+) )");
      std::string log = server_->log_text();
      std::smatch m;
      if (std::regex_search(log, m, serving)) {
        port_ = static_cast<uint16_t>(std::stoi(m[1].str()));
      }
      return port_ != 0;
    })) << server_->log_text();
  }

  std::string endpoint(const std::string& path) const {
    return fmt::format("http://127.0.0.1:{}{}", port_, path);
  }

  // Puts then reads back one object; the error message when anything fails.
  std::string round_trip(const std::string& endpoint_path) {
    store_options opts;
    opts.max_attempts = 1;
    opts.credentials_endpoint = dp::aws::container_endpoint{endpoint(endpoint_path), ""};
    return round_trip(
        open_storage(ioc_.get_executor(), parse_storage_url(s3_.storage_url()).value(), {}, opts));
  }

  std::string round_trip(dp::result<std::shared_ptr<object_store>> store) {
    if (!store) {
      return store.error().message;
    }
    return dp::test::run_async(ioc_, [&]() -> asio::awaitable<std::string> {
      put_options put_opts;  // named: g++ 12 mishandles a braced temporary here
      auto put = co_await (*store)->put_buffer("a.txt", "hello", put_opts);
      if (!put) {
        co_return put.error().message;
      }
      auto got = co_await (*store)->get("a.txt");
      if (!got) {
        co_return got.error().message;
      }
      auto body = co_await got->read_all();
      co_return body ? *body : body.error().message;
    }());
  }

  dp::test::s3rver s3_;
  dp::test::temp_dir dir_{"dp-creds"};
  uint16_t port_ = 0;
  std::optional<dp::test::child_process> server_;
  asio::io_context ioc_;
};

TEST_F(ContainerCredentials, SignsWithFetchedKeys) {
  EXPECT_EQ(round_trip("/creds"), "hello");
}

// What the api-server and build-runner call: STORAGE_URL and AWS_CONTAINER_CREDENTIALS_FULL_URI
// from the shared settings, no keys.
TEST_F(ContainerCredentials, TheServicesOpenTheStoreFromTheirSettings) {
  dp::settings::common common;
  common.storage = parse_storage_url(s3_.storage_url()).value();
  common.aws_credentials.container_full_uri = endpoint("/creds");
  EXPECT_EQ(round_trip(storage_from_settings(ioc_.get_executor(), common)), "hello");
}

TEST_F(ContainerCredentials, AMissingEndpointIsAClearError) {
  auto message = round_trip("/nothing-here");
  EXPECT_NE(message.find("container credentials: HTTP 404"), std::string::npos) << message;
}

}  // namespace
