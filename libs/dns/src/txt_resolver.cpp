#include "dp/dns/txt_resolver.hpp"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <resolv.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <charconv>
#include <cstring>
#include <memory>

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

dp::result<std::vector<std::string>> query(const std::string& name,
                                           const resolver_options& options) {
  resolver_state rs;
  if (res_ninit(&rs.state) != 0) {
    return make_error(errc::unavailable, "the system's resolver configuration cannot be read");
  }
  rs.open = true;
  rs.state.retrans = static_cast<int>(options.timeout.count());
  rs.state.retry = options.attempts;
  if (options.server) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(options.server->port);
    ::inet_pton(AF_INET, options.server->ip.c_str(), &sa.sin_addr);
    rs.state.nsaddr_list[0] = sa;
    rs.state.nscount = 1;
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
  auto colon = text.rfind(':');
  auto bad = [&] {
    return make_error(errc::invalid_argument,
                      "'" + std::string(text) + "' is not an IPv4 address and port (a.b.c.d:port)");
  };
  if (colon == std::string_view::npos) {
    return bad();
  }
  server_address out;
  out.ip = std::string(text.substr(0, colon));
  in_addr addr;
  if (::inet_pton(AF_INET, out.ip.c_str(), &addr) != 1) {
    return bad();
  }
  auto port = text.substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc{} || end != port.data() + port.size() || value == 0 || value > 65535) {
    return bad();
  }
  out.port = static_cast<uint16_t>(value);
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
