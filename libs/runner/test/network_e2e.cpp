// The egress network from inside the sandbox, against the real npm registry: label e2e.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio.hpp>

#include "dp/runner/sandbox.hpp"
#include "dp/test/harness.hpp"

namespace asio = boost::asio;
using namespace dp::runner;

namespace {

std::vector<std::string> run_in_sandbox(const dp::test::temp_dir& work, network_mode mode,
                                        const std::string& script,
                                        dp::result<dp::process::exit_status>& status) {
  sandbox_options o;
  o.work_dir = work.path();
  o.env = sandbox_env(phase::install, o.mount_point, {}).value();
  o.network = mode;
  dp::process::options p;
  p.timeout = std::chrono::seconds(120);
  std::vector<std::string> lines;
  asio::io_context ioc;
  asio::co_spawn(
      ioc,
      run_sandboxed(std::move(o), {"bash", "-c", script}, std::move(p),
                    [&](dp::process::stream, std::string_view l) { lines.emplace_back(l); }),
      [&](std::exception_ptr, dp::result<dp::process::exit_status> s) { status = std::move(s); });
  ioc.run();
  return lines;
}

TEST(NetworkE2e, RegistryIsReachableThroughSlirp) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "the egress network needs a root runner";
  }
  dp::test::temp_dir work("dp-network-e2e");
  dp::result<dp::process::exit_status> status = dp::make_error(dp::errc::internal, "not run");
  // DNS through slirp's forwarder (not /etc/hosts), then the registry over HTTPS.
  auto lines = run_in_sandbox(
      work, network_mode::egress,
      "node -e \"require('dns').resolve4('registry.npmjs.org', (e, a) => "
      "console.log(e ? 'dns ' + e.code : 'dns ok'))\"; npm view is-number@7.0.0 version",
      status);
  ASSERT_TRUE(status) << status.error().message;
  std::string all;
  for (const auto& l : lines) {
    all += l + "\n";
  }
  EXPECT_TRUE(status->success()) << all;
  EXPECT_NE(all.find("dns ok\n"), std::string::npos) << all;
  EXPECT_NE(all.find("7.0.0\n"), std::string::npos) << all;
}

TEST(NetworkE2e, NoneReachesNoRegistry) {
  dp::test::temp_dir work("dp-network-e2e");
  dp::result<dp::process::exit_status> status = dp::make_error(dp::errc::internal, "not run");
  // Guarded like the integration tests: the request is made only once the route is closed.
  auto lines = run_in_sandbox(
      work, network_mode::none,
      "ip route get 198.51.100.1 >/dev/null 2>&1 && { echo routed; exit 99; }; "
      "npm view is-number@7.0.0 version --fetch-retries=0 >/dev/null 2>&1 || echo failed",
      status);
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_EQ(lines, (std::vector<std::string>{"failed"}));
}

}  // namespace
