// TXT lookups through the system's resolver (glibc's res_nquery, /etc/resolv.conf), or through
// one given server, run on a thread pool of their own so the caller's event loop never blocks.
//
//   lookup(name)  the TXT records of `name`, each record's strings joined; empty when the name
//                 has none or does not exist. errc::unavailable when no server answered (timeout,
//                 SERVFAIL), errc::protocol for an answer that cannot be read.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "dp/core/error.hpp"

namespace dp::dns {

// The one server asked instead of /etc/resolv.conf's: an IPv4 or IPv6 address, with a port
// (53 when none is given): "a.b.c.d", "a.b.c.d:port", "::1", "[::1]:port". A port after an IPv6
// address needs the brackets ("::1:53" is the address ::1:53); a link-local one may name its
// interface ("[fe80::1%eth0]:53"). errc::invalid_argument, saying the accepted forms, otherwise.
struct server_address {
  std::string ip;  // without brackets
  uint16_t port = 53;
  bool ipv6 = false;
};
dp::result<server_address> parse_server(std::string_view text);

struct resolver_options {
  std::optional<server_address> server;  // none: the system's configuration
  std::chrono::seconds timeout{2};       // per attempt
  int attempts = 2;
};

class txt_resolver {
 public:
  explicit txt_resolver(resolver_options options);
  ~txt_resolver();
  txt_resolver(const txt_resolver&) = delete;
  txt_resolver& operator=(const txt_resolver&) = delete;

  boost::asio::awaitable<dp::result<std::vector<std::string>>> lookup(std::string name);

 private:
  resolver_options options_;
  // Two threads: a lookup blocks its thread for at most timeout * attempts.
  boost::asio::thread_pool pool_{2};
};

}  // namespace dp::dns
