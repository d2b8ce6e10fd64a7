// fake_sts.py as a test's peer: STS AssumeRole on 127.0.0.1, answering with the given keys, and
// the requests it received: {"path", "headers" (lower-case names), "form"}.
#pragma once

#include "recording_peer.hpp"

namespace dp::worker_test {

class fake_sts : public recording_peer {
 public:
  fake_sts(const std::string& access_key, const std::string& secret_key)
      : recording_peer("fake_sts.py", {access_key, secret_key}) {}
};

}  // namespace dp::worker_test
