// A stand-in HTTP peer of a test (fake_sts.py, fake_forge.py): a Python script on 127.0.0.1 that
// prints "listening on port N" and writes each request it receives to <dir>/request-<n>.json.
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

class recording_peer {
 public:
  // `script` in libs/worker/test, run as `script <dir> args...`.
  recording_peer(const std::string& script, std::vector<std::string> args)
      : process_(dp::test::process_options{.argv = argv(script, std::move(args))}) {
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

  // The requests so far, in order, as the script wrote them.
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
  std::vector<std::string> argv(const std::string& script, std::vector<std::string> args) const {
    std::vector<std::string> out{(dp::test::source_dir() / "libs/worker/test" / script).string(),
                                 dir_.path().string()};
    out.insert(out.end(), args.begin(), args.end());
    return out;
  }

  dp::test::temp_dir dir_{"dp-recording-peer"};
  dp::test::child_process process_;
  uint16_t port_ = 0;
};

}  // namespace dp::worker_test
