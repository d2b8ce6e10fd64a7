// fake_sts.py as a test's peer: STS AssumeRole on 127.0.0.1, answering with the given keys, and
// the requests it received.
#pragma once

#include <boost/json.hpp>

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <fstream>
#include <iterator>
#include <regex>

#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"

namespace dp::worker_test {

class fake_sts {
 public:
  fake_sts(const std::string& access_key, const std::string& secret_key)
      : process_(dp::test::process_options{
            .argv = {(dp::test::source_dir() / "libs/worker/test/fake_sts.py").string(),
                     dir_.path().string(), access_key, secret_key}}) {
    EXPECT_TRUE(dp::test::eventually([&] {
      static const std::regex listening(R"(listening on port (\d+))");
      std::string log = process_.log_text();
      std::smatch m;
      if (std::regex_search(log, m, listening)) {
        port_ = static_cast<uint16_t>(std::stoi(m[1].str()));
      }
      return port_ != 0;
    })) << process_.log_text();
  }

  std::string endpoint() const { return fmt::format("http://127.0.0.1:{}", port_); }

  // The requests so far, in order: {"path", "headers" (lower-case names), "form"}.
  std::vector<boost::json::object> requests() const {
    std::vector<boost::json::object> out;
    for (int n = 1;; ++n) {
      std::ifstream in(dir_.path() / fmt::format("request-{}.json", n));
      if (!in) {
        return out;
      }
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      out.push_back(boost::json::parse(text).as_object());
    }
  }

 private:
  dp::test::temp_dir dir_{"dp-fake-sts"};
  dp::test::child_process process_;
  uint16_t port_ = 0;
};

}  // namespace dp::worker_test
