// Fixtures for integration tests: real redis-server, s3rver and git repositories on loopback, in
// their own temporary directories, stopped and removed even when a test fails.
//
// The fixtures (temp_dir, child_process, redis_server, s3rver, git_repo) throw std::runtime_error
// when they cannot start: inside a test, GoogleTest reports that as a failure with the message
// (which carries the child's log). The probes (redis_command, http_request) return dp::result so
// a test can assert on failures too, e.g. that Redis is gone after kill().
#pragma once

#include "dp/core/error.hpp"

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dp::test {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class temp_dir {
 public:
  explicit temp_dir(std::string_view prefix = "dp-test");
  ~temp_dir();
  temp_dir(temp_dir&& other) noexcept;
  temp_dir& operator=(temp_dir&& other) noexcept;
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

// The repository root: $DP_SOURCE_DIR (set by dp_add_test), else the nearest parent of the
// current directory that holds package.json and CMakeLists.txt.
std::filesystem::path source_dir();

// The whole file, bytes as they are; empty when it cannot be read.
std::string read_file(const std::filesystem::path& path);

// A loopback TCP port that was free a moment ago (bind 127.0.0.1:0, read back, close).
std::uint16_t free_port();

// True once a TCP connection to host:port succeeds, false when `timeout` passes first.
bool wait_for_tcp(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout);

struct process_options {
  std::vector<std::string> argv;           // argv[0] is looked up in PATH unless it has a '/'
  std::map<std::string, std::string> env;  // added to (or replacing) the inherited environment
  std::filesystem::path cwd;               // empty: the test's working directory
  bool print_log_on_test_failure = true;   // see ~child_process
};

// A child process whose stdout and stderr go to a log file in its own temp dir, and which dies
// with the test process even if that crashes (PR_SET_PDEATHSIG; note Linux ties this to the
// thread that started it). It leads its own process group so stop() also ends its children.
class child_process {
 public:
  explicit child_process(process_options options);
  // Stops the process; if the current test has failed, prints the tail of its log to stderr.
  ~child_process();
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const noexcept { return pid_; }
  bool running();
  void signal(int signo);
  // SIGTERM, then SIGKILL after `timeout`; reaps the process. Returns as wait() does.
  int stop(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Blocks until the process ends. Returns its exit code, or 128 + the signal that ended it.
  int wait();

  std::string log_text() const;
  const std::filesystem::path& log_path() const noexcept { return log_path_; }

 private:
  void reap(int status);

  process_options options_;
  temp_dir log_dir_;
  std::filesystem::path log_path_;
  pid_t pid_ = -1;
  std::optional<int> exit_status_;
};

struct run_result {
  int exit_code = -1;  // as child_process::wait()
  std::string output;  // stdout and stderr, interleaved
};

// Runs a command to completion (killed after `timeout`) and returns its exit code and output.
run_result run(std::vector<std::string> argv, std::map<std::string, std::string> env = {},
               std::filesystem::path cwd = {},
               std::chrono::milliseconds timeout = std::chrono::seconds(60));

// How many processes on this machine have `needle` in their command line (its arguments joined by
// spaces): what a test asserts is 0 to show that a build left no process behind.
int processes_matching(std::string_view needle);

// The port a binary bound, read from the "<name> listening" line it logs with LOG_FORMAT=json
// (LOG_LEVEL info or lower): `field` ("listen", "admin") holds "host:port". Start the binary
// with its *_LISTEN=127.0.0.1:0 and ask this instead of racing on free_port(). Waits up to
// `timeout`; throws std::runtime_error (with the process's log) if the process exits first or
// the line does not come.
std::uint16_t reported_port(child_process& process, const std::string& field = "listen",
                            std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Sends one command to the Redis at 127.0.0.1:port over RESP and returns the reply: a simple or
// bulk string as is, an integer in decimal. A Redis error reply is errc::protocol with Redis's
// message, a nil reply errc::not_found, a failed connection errc::unavailable. Arrays are refused.
dp::result<std::string> redis_command(std::uint16_t port, const std::vector<std::string>& argv);

// True when a client of the Redis at 127.0.0.1:port is blocked in `command` (CLIENT LIST shows
// it with flag b and cmd=<command>, e.g. "blmove"): the moment a consumer waits on the queue.
bool redis_blocked_in(std::uint16_t port, const std::string& command);

struct http_response {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
};

// One HTTP/1.0 request to 127.0.0.1:port (connection closed after the response).
dp::result<http_response> http_request(std::uint16_t port, const std::string& method,
                                       const std::string& target, const std::string& body = {},
                                       const std::map<std::string, std::string>& headers = {});

// The same with a JSON body (Content-Type: application/json when `body` is not empty), as a
// client of the api-server sends it. A request that fails is a test failure and an empty
// response (status 0).
http_response json_request(std::uint16_t port, const std::string& method, const std::string& target,
                           const std::string& body = {});

// Debian's redis-server on a free loopback port, with its own directory and no persistence;
// with a password, its default user needs it (requirepass; redis_command() then answers NOAUTH).
class redis_server {
 public:
  explicit redis_server(std::string password = {});
  std::uint16_t port() const noexcept { return port_; }
  // "redis://127.0.0.1:<port>", or "redis://:<password>@127.0.0.1:<port>"
  std::string url() const;
  const std::filesystem::path& dir() const noexcept { return dir_.path(); }

  void kill();     // SIGKILL: as a crash looks to clients
  void stop();     // SIGTERM, then SIGKILL
  void restart();  // stops if running, starts again on the same port and directory
  bool running() { return process_ && process_->running(); }
  std::string log_text() const { return process_ ? process_->log_text() : std::string(); }

 private:
  bool start_on(std::uint16_t port, std::chrono::milliseconds timeout);

  temp_dir dir_;
  std::string password_;
  std::uint16_t port_ = 0;
  std::optional<child_process> process_;
};

// s3rver from the repository's node_modules (installed by deploy/setup.sh) on a free loopback
// port with its own directory, the given buckets created at start. It accepts any signature made
// with the access key below (it does not verify SigV4), and unsigned requests too.
class s3rver {
 public:
  explicit s3rver(std::vector<std::string> buckets = {"test"});
  std::uint16_t port() const noexcept { return port_; }
  std::string endpoint() const;  // "http://127.0.0.1:<port>"
  // "s3://<bucket>?endpoint=http://127.0.0.1:<port>&region=us-east-1&path_style=true"
  std::string storage_url(const std::string& bucket = "test") const;
  static std::string access_key() { return "S3RVER"; }
  static std::string secret_key() { return "S3RVER"; }
  const std::filesystem::path& dir() const noexcept { return dir_.path(); }
  std::string log_text() const { return process_ ? process_->log_text() : std::string(); }

 private:
  temp_dir dir_;
  std::uint16_t port_ = 0;
  std::optional<child_process> process_;
};

// Pebble, Let's Encrypt's test CA (Debian's `pebble`), on free loopback ports, with
// pebble-challtestsrv as its DNS server answering 127.0.0.1 for every name (and no AAAA): its
// validation of http-01 for any domain connects to 127.0.0.1:<http_port>, where the test puts
// the proxy. By default no nonce rejection, no sleep before validating, no reuse of
// authorizations. Its
// HTTPS listeners use a certificate made here whose trust anchor is ca_file().
class pebble {
 public:
  // `env` adds to or overrides Pebble's environment (e.g. PEBBLE_WFE_NONCEREJECT).
  explicit pebble(std::uint16_t http_port, std::map<std::string, std::string> env = {});
  std::string directory_url() const;  // "https://127.0.0.1:<port>/dir"
  const std::filesystem::path& ca_file() const noexcept { return ca_file_; }
  // The PEM of the root and of the intermediate that sign Pebble's certificates, read from its
  // management interface (they are made afresh at each start).
  std::string root_pem() const;
  std::string intermediate_pem() const;
  std::string log_text() const;

 private:
  bool start(std::uint16_t http_port, const std::filesystem::path& key,
             const std::map<std::string, std::string>& env);
  std::string management_get(const std::string& path) const;
  temp_dir dir_;
  std::filesystem::path ca_file_;
  std::uint16_t port_ = 0;
  std::uint16_t management_port_ = 0;
  std::optional<child_process> dns_;
  std::optional<child_process> process_;
};

// A DNS server on a loopback UDP port answering the TXT records a test sets
// (tests/harness/dns-txt.py, Python's standard library only). A name never set answers NXDOMAIN;
// a cleared one NOERROR without records. Answers read as a recursive resolver's.
class dns_server {
 public:
  // `host`: the loopback address it listens on, "127.0.0.1" or "::1".
  explicit dns_server(std::string host = "127.0.0.1");
  std::uint16_t port() const noexcept { return port_; }
  // "127.0.0.1:<port>" or "[::1]:<port>", what DNS_RESOLVER takes
  std::string address() const;
  // Adds a TXT record (one value) to `name` (no trailing dot).
  void add_txt(const std::string& name, const std::string& value);
  // `name` keeps existing, without TXT records.
  void clear_txt(const std::string& name);

 private:
  void write_records();
  temp_dir dir_;
  std::string host_;
  std::map<std::string, std::vector<std::string>> records_;
  std::uint16_t port_ = 0;
  std::optional<child_process> process_;
};

// One file of a git_repo commit; converts from a string for the common, non-executable case.
struct git_file {
  git_file(std::string c, bool exec = false) : content(std::move(c)), executable(exec) {}
  git_file(const char* c) : content(c) {}
  std::string content;
  bool executable = false;
};

// A real git repository on disk, branch main, made with a fixed author and without reading the
// user's or the system's git configuration.
class git_repo {
 public:
  explicit git_repo(const std::map<std::string, git_file>& files,
                    const std::string& message = "initial commit");
  // Writes (adds or overwrites) the files and commits them; returns the new HEAD.
  std::string commit(const std::map<std::string, git_file>& files, const std::string& message);

  const std::filesystem::path& path() const noexcept { return dir_.path(); }
  std::string url() const;  // "file://<path>"
  std::string head() const;

  // The environment the repository's git commands use (fixed identity, no global config);
  // pass it to run() for git commands of your own, such as a clone.
  static std::map<std::string, std::string> git_env();

 private:
  std::string git(std::vector<std::string> args) const;

  temp_dir dir_;
};

}  // namespace dp::test
