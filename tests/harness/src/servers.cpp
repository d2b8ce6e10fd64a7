// The real peers: redis-server, s3rver, Pebble and a DNS server, each on loopback with its own
// directory.
#include "dp/test/harness.hpp"

#include <csignal>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>
#include <boost/json.hpp>

namespace dp::test {

namespace {

constexpr auto start_timeout = std::chrono::seconds(20);
constexpr auto poll_interval = std::chrono::milliseconds(10);

}  // namespace

redis_server::redis_server(std::string password)
    : dir_("dp-redis"), password_(std::move(password)) {
  // free_port() can race with another test taking the same port: try a few.
  std::string failures;
  for (int attempt = 0; attempt < 5; ++attempt) {
    std::uint16_t port = free_port();
    if (start_on(port, start_timeout)) {
      port_ = port;
      return;
    }
    failures += fmt::format("--- port {} ---\n{}\n", port, log_text());
  }
  throw std::runtime_error("redis-server did not start:\n" + failures);
}

bool redis_server::start_on(std::uint16_t port, std::chrono::milliseconds timeout) {
  process_.reset();
  std::vector<std::string> argv{"redis-server",
                                "--port",
                                std::to_string(port),
                                "--bind",
                                "127.0.0.1",
                                "--dir",
                                dir_.path().string(),
                                "--save",
                                "",
                                "--appendonly",
                                "no",
                                "--daemonize",
                                "no"};
  if (!password_.empty()) {
    argv.insert(argv.end(), {"--requirepass", password_});
  }
  process_.emplace(process_options{std::move(argv)});
  // Ready when INFO answers with our pid: a PONG alone could come from someone else's server
  // that holds the port we failed to bind. With a password, when AUTH with it succeeds (INFO
  // needs a login first, and nobody else's server knows this password).
  const std::string our_pid = fmt::format("process_id:{}\r\n", process_->pid());
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!process_->running()) {
      return false;
    }
    if (!password_.empty()) {
      if (auto ok = redis_command(port, {"AUTH", password_}); ok && *ok == "OK") {
        return true;
      }
    } else if (auto info = redis_command(port, {"INFO", "server"});
               info && info->find(our_pid) != std::string::npos) {
      return true;
    }
    std::this_thread::sleep_for(poll_interval);
  }
  process_->stop();
  return false;
}

std::string redis_server::url() const {
  if (!password_.empty()) {
    return fmt::format("redis://:{}@127.0.0.1:{}", password_, port_);
  }
  return fmt::format("redis://127.0.0.1:{}", port_);
}

void redis_server::kill() {
  if (process_) {
    process_->signal(SIGKILL);
    process_->wait();
  }
}

void redis_server::stop() {
  if (process_) {
    process_->stop();
  }
}

void redis_server::restart() {
  stop();
  // The port was ours a moment ago; retry briefly in case something grabbed it meanwhile.
  const auto deadline = std::chrono::steady_clock::now() + start_timeout;
  while (!start_on(port_, start_timeout)) {
    if (std::chrono::steady_clock::now() >= deadline) {
      throw std::runtime_error(
          fmt::format("redis-server did not restart on port {}:\n{}", port_, log_text()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

s3rver::s3rver(std::vector<std::string> buckets) : dir_("dp-s3rver") {
  const auto bin = source_dir() / "node_modules" / ".bin" / "s3rver";
  if (!std::filesystem::exists(bin)) {
    throw std::runtime_error(fmt::format("{} is missing: run deploy/setup.sh", bin.string()));
  }
  // Port 0 and read the port back from its log: no window in which another test can take it.
  std::vector<std::string> argv{bin.string(), "-d", dir_.path().string(), "-a", "127.0.0.1",
                                "-p",         "0"};
  for (const auto& b : buckets) {
    argv.insert(argv.end(), {"--configure-bucket", b});
  }
  process_.emplace(process_options{std::move(argv)});

  const std::string banner = "S3rver listening on 127.0.0.1:";
  const auto deadline = std::chrono::steady_clock::now() + start_timeout;
  while (std::chrono::steady_clock::now() < deadline && process_->running()) {
    std::string log = process_->log_text();
    if (auto pos = log.find(banner); pos != std::string::npos) {
      port_ = static_cast<std::uint16_t>(std::stoi(log.substr(pos + banner.size())));
      break;
    }
    std::this_thread::sleep_for(poll_interval);
  }
  if (port_ == 0) {
    throw std::runtime_error("s3rver did not start:\n" + log_text());
  }
  // The banner comes after the buckets are made; one request proves it answers HTTP.
  std::string target = "/";
  if (!buckets.empty()) {
    target += buckets.front();
  }
  auto r = http_request(port_, "GET", target);
  if (!r || r->status != 200) {
    throw std::runtime_error(fmt::format("s3rver on port {} does not answer: {}\n{}", port_,
                                         r ? fmt::format("HTTP {}", r->status) : r.error().message,
                                         log_text()));
  }
}

std::string s3rver::endpoint() const {
  return fmt::format("http://127.0.0.1:{}", port_);
}

std::string s3rver::storage_url(const std::string& bucket) const {
  return fmt::format("s3://{}?endpoint={}&region=us-east-1&path_style=true", bucket, endpoint());
}

pebble::pebble(std::uint16_t http_port, std::map<std::string, std::string> env)
    : dir_("dp-pebble") {
  // Pebble's own HTTPS listeners need a certificate; a self-signed one for 127.0.0.1 is also
  // the trust anchor clients are given.
  ca_file_ = dir_.path() / "cert.pem";
  const auto key = dir_.path() / "key.pem";
  auto made =
      run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-nodes", "-subj", "/CN=pebble", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
           "-days", "2", "-keyout", key.string(), "-out", ca_file_.string()});
  if (made.exit_code != 0) {
    throw std::runtime_error("openssl could not make Pebble's certificate:\n" + made.output);
  }
  // The caller's values win (insert keeps them).
  env.insert(
      {{"PEBBLE_VA_NOSLEEP", "1"}, {"PEBBLE_WFE_NONCEREJECT", "0"}, {"PEBBLE_AUTHZREUSE", "0"}});
  // Neither program can report a port it chose, so free_port() for each, which another test can
  // take before they bind it: try a few.
  std::string failures;
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (start(http_port, key, env)) {
      return;
    }
    failures += fmt::format("--- attempt {} ---\n{}\n", attempt + 1, log_text());
  }
  throw std::runtime_error("pebble did not start:\n" + failures);
}

bool pebble::start(std::uint16_t http_port, const std::filesystem::path& key,
                   const std::map<std::string, std::string>& env) {
  process_.reset();
  dns_.reset();
  const std::uint16_t dns_port = free_port();
  dns_.emplace(process_options{
      {"pebble-challtestsrv", "-dns01", fmt::format("127.0.0.1:{}", dns_port), "-http01", "",
       "-https01", "", "-tlsalpn01", "", "-management", fmt::format("127.0.0.1:{}", free_port()),
       "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""}});
  port_ = free_port();
  management_port_ = free_port();
  const auto config = dir_.path() / "pebble.json";
  std::ofstream(config) << fmt::format(
      R"({{"pebble":{{"listenAddress":"127.0.0.1:{}","managementListenAddress":"127.0.0.1:{}",)"
      R"("certificate":"{}","privateKey":"{}","httpPort":{},"tlsPort":{},)"
      R"("ocspResponderURL":"","externalAccountBindingRequired":false}}}})",
      port_, management_port_, ca_file_.string(), key.string(), http_port, free_port());
  process_.emplace(process_options{
      {"pebble", "-config", config.string(), "-dnsserver", fmt::format("127.0.0.1:{}", dns_port)},
      env});
  if (!wait_for_tcp("127.0.0.1", port_, start_timeout) ||
      !wait_for_tcp("127.0.0.1", management_port_, start_timeout) ||
      !wait_for_tcp("127.0.0.1", dns_port, start_timeout)) {
    return false;
  }
  // Ours when both HTTPS listeners present this certificate, and once both programs still run
  // after that: one that lost a port to another process exits.
  for (auto port : {port_, management_port_}) {
    auto r = run({"curl", "-sS", "-o", "/dev/null", "--cacert", ca_file_.string(),
                  fmt::format("https://127.0.0.1:{}/", port)});
    if (r.exit_code != 0) {
      return false;
    }
  }
  return process_->running() && dns_->running();
}

dns_server::dns_server(std::string host) : dir_("dp-dns"), host_(std::move(host)) {
  write_records();
  process_.emplace(process_options{{(source_dir() / "tests/harness/dns-txt.py").string(),
                                    (dir_.path() / "records.json").string(), host_}});
  port_ = reported_port(*process_, "listen", start_timeout);
}

std::string dns_server::address() const {
  return host_.find(':') == std::string::npos ? fmt::format("{}:{}", host_, port_)
                                              : fmt::format("[{}]:{}", host_, port_);
}

// The server reads the file at each query: written aside and renamed, it is never seen half done.
void dns_server::write_records() {
  boost::json::object o;
  for (const auto& [name, values] : records_) {
    boost::json::array a;
    for (const auto& v : values) {
      a.emplace_back(v);
    }
    o[name] = std::move(a);
  }
  const auto next = dir_.path() / "records.json.next";
  std::ofstream(next) << boost::json::serialize(o);
  std::filesystem::rename(next, dir_.path() / "records.json");
}

void dns_server::add_txt(const std::string& name, const std::string& value) {
  records_[name].push_back(value);
  write_records();
}

void dns_server::clear_txt(const std::string& name) {
  records_[name].clear();
  write_records();
}

std::string pebble::directory_url() const {
  return fmt::format("https://127.0.0.1:{}/dir", port_);
}

std::string pebble::management_get(const std::string& path) const {
  auto r = run({"curl", "-sSf", "--cacert", ca_file_.string(),
                fmt::format("https://127.0.0.1:{}{}", management_port_, path)});
  if (r.exit_code != 0) {
    throw std::runtime_error(fmt::format("pebble's {} failed: {}", path, r.output));
  }
  return r.output;
}

std::string pebble::root_pem() const {
  return management_get("/roots/0");
}

std::string pebble::intermediate_pem() const {
  return management_get("/intermediates/0");
}

std::string pebble::log_text() const {
  return (dns_ ? dns_->log_text() : std::string()) +
         (process_ ? process_->log_text() : std::string());
}

}  // namespace dp::test
