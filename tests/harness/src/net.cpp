// Loopback probes: free ports, "is it listening", and just enough RESP and HTTP/1.0 to check that
// a peer really answers. Blocking sockets with timeouts: simplicity beats speed in a fixture.
#include "dp/test/harness.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <strings.h>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace dp::test {

namespace {

constexpr auto io_timeout = std::chrono::seconds(10);

struct unique_fd {
  int fd = -1;
  explicit unique_fd(int f) : fd(f) {}
  ~unique_fd() {
    if (fd >= 0) {
      ::close(fd);
    }
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
};

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

dp::error sys_error(std::string_view what, std::uint16_t port) {
  return dp::make_error(dp::errc::unavailable, "{} 127.0.0.1:{}: {}", what, port,
                        std::strerror(errno));
}

// A connected blocking socket to 127.0.0.1:port whose reads and writes time out.
dp::result<int> connect_loopback(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return sys_error("socket for", port);
  }
  timeval tv{std::chrono::duration_cast<std::chrono::seconds>(io_timeout).count(), 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr = loopback(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    auto e = sys_error("connect to", port);
    ::close(fd);
    return e;
  }
  return fd;
}

dp::result<void> send_all(int fd, std::string_view data, std::uint16_t port) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return sys_error("send to", port);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

// Buffered reads of CRLF lines and exact byte counts, as RESP needs.
class reader {
 public:
  reader(int fd, std::uint16_t port) : fd_(fd), port_(port) {}

  dp::result<std::string> line() {
    for (;;) {
      if (auto pos = buf_.find("\r\n"); pos != std::string::npos) {
        std::string l = buf_.substr(0, pos);
        buf_.erase(0, pos + 2);
        return l;
      }
      if (auto r = fill(); !r) {
        return r.error();
      }
    }
  }

  dp::result<std::string> exact(std::size_t n) {
    while (buf_.size() < n) {
      if (auto r = fill(); !r) {
        return r.error();
      }
    }
    std::string out = buf_.substr(0, n);
    buf_.erase(0, n);
    return out;
  }

 private:
  dp::result<void> fill() {
    char chunk[4096];
    ssize_t n;
    do {
      n = ::recv(fd_, chunk, sizeof chunk, 0);
    } while (n < 0 && errno == EINTR);
    if (n == 0) {
      return dp::make_error(dp::errc::unavailable, "127.0.0.1:{} closed the connection", port_);
    }
    if (n < 0) {
      return sys_error("receive from", port_);
    }
    buf_.append(chunk, static_cast<std::size_t>(n));
    return {};
  }

  int fd_;
  std::uint16_t port_;
  std::string buf_;
};

}  // namespace

std::uint16_t free_port() {
  unique_fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr = loopback(0);
  socklen_t len = sizeof addr;
  if (s.fd < 0 || ::bind(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(s.fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::runtime_error(fmt::format("free_port: {}", std::strerror(errno)));
  }
  return ntohs(addr.sin_port);
}

bool wait_for_tcp(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addrs = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &addrs) != 0) {
    return false;
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(addrs, &::freeaddrinfo);
  do {
    for (addrinfo* a = addrs; a != nullptr; a = a->ai_next) {
      // Non-blocking connect so an unreachable host cannot hold us past the deadline.
      unique_fd s(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      if (s.fd < 0) {
        continue;
      }
      if (::connect(s.fd, a->ai_addr, a->ai_addrlen) == 0) {
        return true;
      }
      if (errno != EINPROGRESS) {
        continue;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{s.fd, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof err;
      if (::poll(&p, 1, static_cast<int>(std::max<long>(left.count(), 0))) == 1 &&
          ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
        return true;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

dp::result<std::string> redis_command(std::uint16_t port, const std::vector<std::string>& argv) {
  auto fd = connect_loopback(port);
  if (!fd) {
    return fd.error();
  }
  unique_fd s(*fd);
  std::string request = fmt::format("*{}\r\n", argv.size());
  for (const auto& a : argv) {
    request += fmt::format("${}\r\n{}\r\n", a.size(), a);
  }
  if (auto r = send_all(s.fd, request, port); !r) {
    return r.error();
  }
  reader in(s.fd, port);
  auto head = in.line();
  if (!head) {
    return head.error();
  }
  if (head->empty()) {
    return dp::make_error(dp::errc::protocol, "empty RESP reply from 127.0.0.1:{}", port);
  }
  std::string rest = head->substr(1);
  switch ((*head)[0]) {
    case '+':
    case ':':
      return rest;
    case '-':
      return dp::make_error(dp::errc::protocol, "{}", rest);
    case '$': {
      long len = 0;
      auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), len);
      if (ec != std::errc() || ptr != rest.data() + rest.size()) {
        return dp::make_error(dp::errc::protocol, "bad RESP length '{}'", rest);
      }
      if (len < 0) {
        return dp::make_error(dp::errc::not_found, "nil reply to {}", argv.at(0));
      }
      auto body = in.exact(static_cast<std::size_t>(len) + 2);
      if (!body) {
        return body.error();
      }
      body->resize(static_cast<std::size_t>(len));
      return body;
    }
    default:
      return dp::make_error(dp::errc::protocol, "unsupported RESP reply '{}' to {}", *head,
                            argv.at(0));
  }
}

dp::result<http_response> http_request(std::uint16_t port, const std::string& method,
                                       const std::string& target, const std::string& body,
                                       const std::map<std::string, std::string>& headers) {
  auto fd = connect_loopback(port);
  if (!fd) {
    return fd.error();
  }
  unique_fd s(*fd);
  std::string request = fmt::format("{} {} HTTP/1.0\r\n", method, target);
  // The caller's Host (a site on the proxy) replaces the loopback one.
  bool has_host = std::any_of(headers.begin(), headers.end(), [](const auto& h) {
    return h.first.size() == 4 && ::strncasecmp(h.first.c_str(), "host", 4) == 0;
  });
  if (!has_host) {
    request += fmt::format("Host: 127.0.0.1:{}\r\n", port);
  }
  if (!headers.contains("Content-Length")) {
    request += fmt::format("Content-Length: {}\r\n", body.size());
  }
  for (const auto& [name, value] : headers) {
    request += fmt::format("{}: {}\r\n", name, value);
  }
  request += "\r\n" + body;
  if (auto r = send_all(s.fd, request, port); !r) {
    return r.error();
  }

  // HTTP/1.0: the response ends when the server closes the connection.
  std::string raw;
  char chunk[16384];
  for (;;) {
    ssize_t n = ::recv(s.fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return sys_error("receive from", port);
    }
    if (n == 0) {
      break;
    }
    raw.append(chunk, static_cast<std::size_t>(n));
  }

  auto end = raw.find("\r\n\r\n");
  int status = 0;
  if (end == std::string::npos || std::sscanf(raw.c_str(), "HTTP/%*d.%*d %d", &status) != 1) {
    return dp::make_error(dp::errc::protocol, "not an HTTP response from 127.0.0.1:{}: '{}'", port,
                          raw.substr(0, 200));
  }
  http_response response;
  response.status = status;
  response.body = raw.substr(end + 4);
  std::size_t pos = raw.find("\r\n") + 2;
  while (pos < end) {
    std::size_t eol = raw.find("\r\n", pos);
    std::string line = raw.substr(pos, eol - pos);
    pos = eol + 2;
    auto colon = line.find(':');
    if (colon == std::string::npos) {
      continue;
    }
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::size_t v = line.find_first_not_of(' ', colon + 1);
    response.headers[name] = v == std::string::npos ? std::string() : line.substr(v);
  }
  return response;
}

http_response json_request(std::uint16_t port, const std::string& method, const std::string& target,
                           const std::string& body) {
  std::map<std::string, std::string> headers;
  if (!body.empty()) {
    headers["content-type"] = "application/json";
  }
  auto r = http_request(port, method, target, body, headers);
  EXPECT_TRUE(r) << method << " " << target << ": " << (r ? "" : r.error().message);
  return r ? *r : http_response{};
}

bool redis_blocked_in(std::uint16_t port, const std::string& command) {
  auto clients = redis_command(port, {"CLIENT", "LIST"});
  if (!clients) {
    return false;
  }
  // One client per line: "id=7 addr=... flags=b ... cmd=blmove ...".
  std::string_view rest = *clients;
  while (!rest.empty()) {
    auto eol = rest.find('\n');
    std::string line(rest.substr(0, eol));
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
    line += ' ';
    auto flags = line.find(" flags=");
    if (flags != std::string::npos && line.find(" cmd=" + command + " ") != std::string::npos &&
        line.substr(flags + 7, line.find(' ', flags + 7) - flags - 7).find('b') !=
            std::string::npos) {
      return true;
    }
  }
  return false;
}

namespace {

// The `field` of a JSON log line whose message ends in " listening", or nothing.
std::optional<std::string> listening_field(std::string_view line, const std::string& field) {
  boost::system::error_code ec;
  auto v = boost::json::parse(line, ec);
  if (ec || !v.is_object()) {
    return std::nullopt;
  }
  const auto& o = v.as_object();
  const auto* msg = o.if_contains("msg");
  const auto* value = o.if_contains(field);
  if (!msg || !msg->is_string() || !value || !value->is_string() ||
      !msg->as_string().ends_with(" listening")) {
    return std::nullopt;
  }
  return std::string(value->as_string());
}

}  // namespace

std::uint16_t reported_port(child_process& process, const std::string& field,
                            std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    // Read the log before asking whether the process runs: a line written just before it
    // exited is still seen.
    bool was_running = process.running();
    std::string log = process.log_text();
    std::string_view rest = log;
    while (!rest.empty()) {
      auto eol = rest.find('\n');
      if (eol == std::string_view::npos) {
        break;  // a line still being written
      }
      if (auto address = listening_field(rest.substr(0, eol), field)) {
        auto colon = address->rfind(':');
        std::uint16_t port = 0;
        auto tail = std::string_view(*address).substr(colon == std::string::npos ? 0 : colon + 1);
        auto [end, err] = std::from_chars(tail.data(), tail.data() + tail.size(), port);
        if (colon == std::string::npos || err != std::errc() || end != tail.data() + tail.size() ||
            port == 0) {
          throw std::runtime_error(
              fmt::format("reported_port: \"{}\" is not host:port with a port\n{}", *address, log));
        }
        return port;
      }
      rest = rest.substr(eol + 1);
    }
    if (!was_running) {
      throw std::runtime_error(fmt::format(
          "reported_port: the process exited before logging its {} address\n{}", field, log));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      throw std::runtime_error(fmt::format(
          "reported_port: no JSON \"listening\" line with {} within {} ms (is LOG_FORMAT=json "
          "set?)\n{}",
          field, timeout.count(), log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace dp::test
