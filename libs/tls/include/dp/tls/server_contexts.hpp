// The proxy's certificates in memory: one OpenSSL server context per certificate name, chosen by
// SNI (the exact name, then "*.<parent>"). A new or renewed certificate replaces its name's
// context atomically: handshakes already under way keep the context they picked, and
// connections already open are not touched.
//
// Every context speaks TLS 1.2 and 1.3 only, with forward-secret AEAD ciphers (Mozilla's
// "intermediate" list) and no renegotiation. Session resumption: the session cache and the
// ticket keys are those of the front context every handshake starts on, so a session resumes
// whichever name's context served it.
//
// OCSP stapling: a name's context given a response staples it to every handshake that asks
// (status_request) until the response's nextUpdate, and to none after it.
//
// Thread-safe: set/remove from any thread, lookups from every handshake.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dp/core/error.hpp"

typedef struct ssl_ctx_st SSL_CTX;

namespace dp::tls {

// A DER OCSP response that check_ocsp_response passed for the chain it is stapled with.
struct ocsp_staple {
  std::string der;
  int64_t next_update_ms = 0;  // stapled strictly before this time only
};

class server_contexts {
 public:
  server_contexts();
  ~server_contexts();
  server_contexts(const server_contexts&) = delete;
  server_contexts& operator=(const server_contexts&) = delete;

  // Builds the name's context from PEM (leaf first), stapling `staple` when given;
  // errc::invalid_argument when the pair does not load (the previous context, if any, stays).
  dp::result<void> set(std::string_view name, std::string_view chain_pem, std::string_view key_pem,
                       const std::optional<ocsp_staple>& staple = std::nullopt);
  void remove(std::string_view name);
  // Whether a handshake for `host` finds a certificate (exact, or a wildcard one label up).
  bool covers(std::string_view host) const;
  std::vector<std::string> names() const;

  // The context handshakes start on (the proxy's HTTPS server gets it): its SNI callback
  // switches to the name's context and refuses (a fatal unrecognized_name alert, so the
  // handshake fails) a name it has not. Valid while this object lives.
  SSL_CTX* front() const noexcept;

  struct state;  // src/contexts_state.hpp: the SNI callback reads it

 private:
  std::unique_ptr<state> state_;
};

}  // namespace dp::tls
