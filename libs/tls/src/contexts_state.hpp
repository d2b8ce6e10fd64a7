#pragma once
// Private to libs/tls: server_contexts' state, which the SNI callback reads.

#include <boost/asio/ssl/context.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "dp/tls/server_contexts.hpp"

namespace dp::tls {

struct server_contexts::state {
  state();
  std::shared_ptr<SSL_CTX> lookup(std::string_view host) const;

  boost::asio::ssl::context front;  // owns its SSL_CTX; never holds a certificate
  mutable std::mutex mu;
  std::map<std::string, std::shared_ptr<SSL_CTX>, std::less<>> by_name;
};

}  // namespace dp::tls
