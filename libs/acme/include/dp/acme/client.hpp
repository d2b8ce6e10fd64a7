// An RFC 8555 client: directory, account (ES256 key), order, HTTP-01 authorizations, finalize
// with a fresh P-256 key, certificate download. Requests go through the one http_client; the
// challenge answers go wherever the caller's challenge_responder puts them (the proxy serves
// them from Redis).
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "dp/acme/jose.hpp"
#include "dp/acme/messages.hpp"
#include "dp/core/error.hpp"
#include "dp/http_client/client.hpp"

namespace dp::acme {

struct client_options {
  std::string directory_url;  // e.g. https://acme-v02.api.letsencrypt.org/directory
  std::string contact_email;  // empty: an account without contact
  // Between polls of an authorization or order when the server sends no Retry-After.
  std::chrono::milliseconds poll_interval{1000};
  // A longer Retry-After while polling is shortened to this.
  std::chrono::seconds max_poll_interval{10};
  // An authorization or order still pending after this long fails the issuance.
  std::chrono::seconds poll_limit{300};
  std::chrono::milliseconds request_timeout{30000};
};

// Publishes HTTP-01 answers where the validation server will ask for them:
// http://<name>/.well-known/acme-challenge/<token> must answer key_authorization.
class challenge_responder {
 public:
  virtual ~challenge_responder() = default;
  virtual boost::asio::awaitable<dp::result<void>> publish(std::string token,
                                                           std::string key_authorization) = 0;
  virtual boost::asio::awaitable<dp::result<void>> withdraw(std::string token) = 0;
};

struct issued_certificate {
  std::string chain_pem;  // leaf first, then the issuer's chain
  std::string key_pem;    // the certificate's own P-256 key, PKCS#8
  std::chrono::system_clock::time_point not_after;
};

// One account on one ACME server. Not for concurrent use: one issuance at a time.
class client {
 public:
  client(http_client::client& http, ec_key account_key, client_options options);

  // Registers the account key (or finds its existing account) and returns the account URL.
  boost::asio::awaitable<dp::result<std::string>> account();
  // A certificate for `names` (DNS names; the first is the subject's CN), proving each by HTTP-01.
  boost::asio::awaitable<dp::result<issued_certificate>> issue(std::vector<std::string> names,
                                                               challenge_responder& responder);
  // When the last failure was the server's rateLimited (or a 503) with a Retry-After: how long
  // it asked to wait.
  std::optional<std::chrono::seconds> retry_after() const { return retry_after_; }

  const std::string& account_thumbprint() const { return thumbprint_; }

 private:
  struct reply {
    int status = 0;
    std::string location;
    std::optional<std::chrono::seconds> retry_after;
    std::string body;
  };

  boost::asio::awaitable<dp::result<void>> load_directory();
  boost::asio::awaitable<dp::result<std::string>> fresh_nonce();
  // A signed POST (payload "" is POST-as-GET), with a new nonce and again on badNonce. The
  // overload without `accept` forwards: g++ 12 mishandles a class-type default argument of a
  // coroutine called from a coroutine.
  boost::asio::awaitable<dp::result<reply>> post(std::string url, std::string payload,
                                                 std::string what, std::string accept);
  boost::asio::awaitable<dp::result<reply>> post(std::string url, std::string payload,
                                                 std::string what);
  boost::asio::awaitable<dp::result<authorization>> validate(std::string url,
                                                             challenge_responder& responder);
  // POST-as-GET `url` until the order leaves `waiting_status`.
  boost::asio::awaitable<dp::result<order>> poll_order(std::string url, order current,
                                                       std::string waiting_status);
  boost::asio::awaitable<void> pause(std::optional<std::chrono::seconds> retry_after);

  http_client::client& http_;
  ec_key key_;
  client_options options_;
  std::string thumbprint_;
  std::optional<directory> directory_;
  std::string account_url_;
  std::string nonce_;
  std::optional<std::chrono::seconds> retry_after_;
};

}  // namespace dp::acme
