// Runs one deployctl command against the API and returns the process's exit code.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

#include "dp/cli/args.hpp"

namespace dp::cli {

enum exit_code : int { exit_ok = 0, exit_failed = 1, exit_bad_input = 2, exit_unreachable = 3 };

struct options {
  std::string api_url = "http://127.0.0.1:9000";  // no trailing slash needed
  std::string token;                              // empty: no Authorization header
  bool color = false;
  std::chrono::milliseconds request_timeout{30'000};
  // Reconnects of a log stream that ended before the deployment did, in a row.
  int stream_retries = 10;
  std::chrono::milliseconds retry_delay{1000};
  // deploy <directory>: the archive's limit before it is sent (the API has its own).
  uint64_t max_archive_bytes = 100ull * 1024 * 1024;
};

// Output goes to `out` (results, logs) and `err` (one-line errors); runs its own io_context.
int run(const command& cmd, const options& opts, std::FILE* out, std::FILE* err);

}  // namespace dp::cli
