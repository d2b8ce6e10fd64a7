#include "dp/dns/txt_resolver.hpp"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>

namespace dp::dns {
namespace {

namespace asio = boost::asio;

// A res_state of this lookup only (res_ninit reads /etc/resolv.conf), closed on every path.
struct resolver_state {
  struct __res_state state;
  bool open = false;
  resolver_state() { std::memset(&state, 0, sizeof state); }
  ~resolver_state() {
    if (open) {
      res_nclose(&state);
    }
  }
  resolver_state(const resolver_state&) = delete;
  resolver_state& operator=(const resolver_state&) = delete;
};

// The character-strings of one TXT record's data, joined (RFC 7208 3.3 reads them that way).
dp::result<std::string> txt_strings(const unsigned char* data, size_t size) {
  std::string out;
  size_t i = 0;
  while (i < size) {
    size_t n = data[i++];
    if (n > size - i) {
      return make_error(errc::protocol, "a TXT record's string runs past its data");
    }
    out.append(reinterpret_cast<const char*>(data + i), n);
    i += n;
  }
  return out;
}

// The socket address of `server`, or nullopt when its ip is not one of its family. IPv4 through
// inet_pton (strict: getaddrinfo would take "1.2.3"), IPv6 through getaddrinfo for a "%scope".
std::optional<sockaddr_storage> socket_address(const server_address& server) {
  sockaddr_storage out{};
  if (!server.ipv6) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(server.port);
    if (::inet_pton(AF_INET, server.ip.c_str(), &v4->sin_addr) != 1) {
      return std::nullopt;
    }
    return out;
  }
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_family = AF_INET6;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(server.ip.c_str(), std::to_string(server.port).c_str(), &hints, &found) != 0) {
    return std::nullopt;
  }
  std::memcpy(&out, found->ai_addr, sizeof(sockaddr_in6));
  ::freeaddrinfo(found);
  return out;
}

// Makes `server` the state's only name server. An IPv6 one goes where res_ninit puts those of
// resolv.conf: nsaddr_list[0].sin_family 0 and a malloc'ed sockaddr_in6 in _u._ext.nsaddrs[0],
// which glibc reads there (__res_get_nsaddr) and res_nclose frees. res_nclose frees only the
// first nscount slots, so the copies res_ninit made of resolv.conf's IPv6 servers go first.
bool use_only(struct __res_state& state, const server_address& server) {
  auto address = socket_address(server);
  if (!address) {
    return false;
  }
  for (auto*& slot : state._u._ext.nsaddrs) {
    std::free(slot);
    slot = nullptr;
  }
  state.nsaddr_list[0] = sockaddr_in{};
  if (server.ipv6) {
    auto* copy = static_cast<sockaddr_in6*>(std::malloc(sizeof(sockaddr_in6)));
    if (!copy) {
      return false;
    }
    std::memcpy(copy, &*address, sizeof(sockaddr_in6));
    state._u._ext.nsaddrs[0] = copy;
  } else {
    std::memcpy(&state.nsaddr_list[0], &*address, sizeof(sockaddr_in));
  }
  state.nscount = 1;
  return true;
}

dp::result<std::vector<std::string>> query(const std::string& name,
                                           const resolver_options& options) {
  resolver_state rs;
  if (res_ninit(&rs.state) != 0) {
    return make_error(errc::unavailable, "the system's resolver configuration cannot be read");
  }
  rs.open = true;
  rs.state.retrans = static_cast<int>(options.timeout.count());
  rs.state.retry = options.attempts;
  if (options.server && !use_only(rs.state, *options.server)) {
    return make_error(errc::invalid_argument,
                      "the DNS server " + options.server->ip + " is not a numeric address");
  }
  std::vector<unsigned char> answer(65536);
  int n = res_nquery(&rs.state, name.c_str(), ns_c_in, ns_t_txt, answer.data(),
                     static_cast<int>(answer.size()));
  if (n < 0) {
    switch (rs.state.res_h_errno) {
      case HOST_NOT_FOUND:  // NXDOMAIN
      case NO_DATA:         // the name exists without TXT
        return std::vector<std::string>{};
      case TRY_AGAIN:
        return make_error(errc::unavailable,
                          "no DNS server answered for " + name + " (timeout or server failure)");
      default:
        return make_error(errc::unavailable,
                          "the DNS query for " + name + " failed (refused, or not a valid name)");
    }
  }
  ns_msg msg;
  if (ns_initparse(answer.data(), n, &msg) != 0) {
    return make_error(errc::protocol, "the DNS answer for " + name + " cannot be read");
  }
  std::vector<std::string> records;
  for (int i = 0; i < ns_msg_count(msg, ns_s_an); ++i) {
    ns_rr rr;
    if (ns_parserr(&msg, ns_s_an, i, &rr) != 0) {
      return make_error(errc::protocol, "the DNS answer for " + name + " cannot be read");
    }
    if (ns_rr_type(rr) != ns_t_txt) {
      continue;  // the CNAMEs that led to it
    }
    auto text = txt_strings(ns_rr_rdata(rr), ns_rr_rdlen(rr));
    if (!text) {
      return text.error();
    }
    records.push_back(std::move(*text));
  }
  return records;
}

}  // namespace

dp::result<server_address> parse_server(std::string_view text) {
  auto bad = [&] {
    return make_error(errc::invalid_argument,
                      "'" + std::string(text) +
                          "' is not a DNS server address: an IPv4 address with an optional port "
                          "(a.b.c.d, a.b.c.d:port) or an IPv6 one (::1, [::1]:port)");
  };
  server_address out;
  std::string_view host = text;
  std::optional<std::string_view> port;
  if (text.starts_with('[')) {
    // [v6] or [v6]:port
    auto close = text.find(']');
    if (close == std::string_view::npos) {
      return bad();
    }
    host = text.substr(1, close - 1);
    auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (!rest.starts_with(':')) {
        return bad();
      }
      port = rest.substr(1);
    }
    out.ipv6 = true;
  } else if (auto colons = std::count(text.begin(), text.end(), ':'); colons == 1) {
    // a.b.c.d:port
    auto colon = text.find(':');
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  } else {
    // A bare address: IPv6 when it has colons.
    out.ipv6 = colons > 1;
  }
  if (port) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port->data(), port->data() + port->size(), value);
    if (port->empty() || ec != std::errc{} || end != port->data() + port->size() || value == 0 ||
        value > 65535) {
      return bad();
    }
    out.port = static_cast<uint16_t>(value);
  }
  out.ip = std::string(host);
  if (!socket_address(out)) {
    return bad();
  }
  return out;
}

txt_resolver::txt_resolver(resolver_options options) : options_(std::move(options)) {}

txt_resolver::~txt_resolver() {
  pool_.join();
}

asio::awaitable<dp::result<std::vector<std::string>>> txt_resolver::lookup(std::string name) {
  auto blocking = [name = std::move(name),
                   options = options_]() -> asio::awaitable<dp::result<std::vector<std::string>>> {
    co_return query(name, options);
  };
  // The caller resumes on its own executor once the pool's thread is done.
  co_return co_await asio::co_spawn(pool_, std::move(blocking), asio::use_awaitable);
}

}  // namespace dp::dns
