// The s3-reverse-proxy as a library: serves every deployment at <label>.<base domain> (and custom
// domains) from object storage, with an admin listener for /metrics and /healthz.
//
// Host -> alias:<label> (cached; invalidated by alias events on events:deployments and route
// events on events:routes, a gap drops the whole cache, a short TTL is the backstop) -> deployment
// id -> its manifest (fetched once, cached by count) -> the resolved file -> a small-file LRU
// cache, a sendfile from the file backend, or a stream from S3.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "dp/aws/sigv4.hpp"
#include "dp/core/config.hpp"
#include "dp/core/error.hpp"
#include "dp/http/server.hpp"
#include "dp/proto/keys.hpp"
#include "dp/redis/types.hpp"
#include "dp/storage/object_store.hpp"
#include "dp/storage/url.hpp"
#include "dp/tls/platform_key.hpp"

namespace boost::asio {
class io_context;
}

namespace dp::proxy {

struct options {
  // Listen address, threads and Beast's parser limits: a visitor sends GET and HEAD, so small
  // headers and (almost) no body.
  dp::http::server_options server{.header_limit = 8 * 1024, .body_limit = 1024};
  dp::config::host_port admin_listen{"127.0.0.1", 0};
  std::string base_domain = "localhost";
  dp::redis::options redis;
  dp::proto::keys keys;
  dp::storage::storage_url storage;  // opened by start(), on the proxy's backend strand
  dp::aws::credentials credentials;
  dp::storage::store_options store;
  size_t cache_bytes = 256u << 20;       // 0 disables the file cache
  size_t cache_object_limit = 1u << 20;  // larger files are never cached
  // Files above this go out with sendfile: the file store's own files (not cached), and cached
  // S3 objects, which are kept in memfds. Below it, a write from memory costs less.
  size_t sendfile_min_bytes = 16u << 10;
  size_t manifest_cache_count = 1024;
  std::chrono::milliseconds alias_ttl{2000};  // backstop when an event is lost
  // After an alias switches, a fingerprinted (immutable) file that the new deployment lacks is
  // served from the previous one for this long: pages loaded before the switch keep working.
  std::chrono::seconds previous_assets_grace{3600};
  size_t max_path_bytes = 1024;
  // Failed Basic-Auth guesses (the project's protection and a site's Basic-Auth rules) per client
  // address (an IPv6 /64) before it is answered 429 for the rest of the window: each guess
  // costs a password hash.
  uint32_t auth_failures = 10;
  std::chrono::seconds auth_window{60};
  bool access_log = true;
  // HTTPS: a TLS listener (none when unset), the platform key that opens the certificates in
  // the store (none: only the files below), and a certificate from files (PEM) for the names it
  // lists, typically "*.<base_domain>". Once a certificate covers a host, plain HTTP requests for
  // it are redirected (308) to https, except ACME's /.well-known/acme-challenge/.
  std::optional<dp::config::host_port> tls_listen;
  std::optional<dp::tls::platform_key> platform_key;
  std::string tls_cert_file;
  std::string tls_key_file;
};

class proxy {
 public:
  proxy(boost::asio::io_context& ioc, options opts);
  ~proxy();
  proxy(const proxy&) = delete;
  proxy& operator=(const proxy&) = delete;

  // Binds both listeners and starts following events:deployments.
  dp::result<void> start();
  uint16_t port() const;
  uint16_t admin_port() const;
  uint16_t tls_port() const;  // 0 without a TLS listener
  // Stops both listeners (draining requests in flight) and the event follower.
  void stop(std::chrono::milliseconds drain = std::chrono::seconds(10),
            std::function<void()> done = {});
  // Runs the io_context on options.server.threads threads until stopped.
  void run();

  // The Prometheus text /metrics serves.
  std::string metrics_text() const;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace dp::proxy
