#include "dp/tls/server_contexts.hpp"
#include "dp/core/clock.hpp"

#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <chrono>

#include "contexts_state.hpp"

namespace dp::tls {
namespace {

// Mozilla's "intermediate" TLS 1.2 list (forward secrecy, AEAD only); TLS 1.3 keeps OpenSSL's
// three suites.
constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr unsigned char session_context[] = "dp-proxy";

void apply_policy(SSL_CTX* ctx) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_cipher_list(ctx, tls12_ciphers);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_session_id_context(ctx, session_context, sizeof session_context - 1);
}

int on_server_name(SSL* ssl, int* alert, void* arg) {
  const auto* st = static_cast<const server_contexts::state*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  auto ctx = name ? st->lookup(name) : nullptr;
  if (!ctx) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  // The SSL takes its own reference: a later swap of this name leaves this handshake alone.
  SSL_set_SSL_CTX(ssl, ctx.get());
  return SSL_TLSEXT_ERR_OK;
}

// The staple lives as long as its SSL_CTX (ex_data), which a handshake may hold after a swap.
void free_staple(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<ocsp_staple*>(ptr);
}

int staple_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_staple);
  return index;
}

int on_status_request(SSL* ssl, void* arg) {
  const auto* staple = static_cast<const ocsp_staple*>(arg);
  auto now = dp::now_ms();
  if (now >= staple->next_update_ms) {
    return SSL_TLSEXT_ERR_NOACK;  // expired: no staple beats a stale one
  }
  // The SSL frees its copy.
  auto* copy = static_cast<unsigned char*>(OPENSSL_memdup(staple->der.data(), staple->der.size()));
  if (!copy ||
      SSL_set_tlsext_status_ocsp_resp(ssl, copy, static_cast<long>(staple->der.size())) != 1) {
    OPENSSL_free(copy);
    return SSL_TLSEXT_ERR_NOACK;
  }
  return SSL_TLSEXT_ERR_OK;
}

struct bio_deleter {
  void operator()(BIO* b) const { BIO_free_all(b); }
};

dp::result<std::shared_ptr<SSL_CTX>> load(std::string_view chain_pem, std::string_view key_pem,
                                          const std::optional<ocsp_staple>& staple) {
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_server_method()), &SSL_CTX_free);
  if (!ctx) {
    return make_error(errc::internal, "SSL_CTX_new failed");
  }
  apply_policy(ctx.get());
  std::unique_ptr<BIO, bio_deleter> chain(
      BIO_new_mem_buf(chain_pem.data(), static_cast<int>(chain_pem.size())));
  X509* leaf = PEM_read_bio_X509(chain.get(), nullptr, nullptr, nullptr);
  if (!leaf || SSL_CTX_use_certificate(ctx.get(), leaf) != 1) {
    X509_free(leaf);
    return make_error(errc::invalid_argument, "the certificate chain does not load");
  }
  X509_free(leaf);
  while (X509* extra = PEM_read_bio_X509(chain.get(), nullptr, nullptr, nullptr)) {
    SSL_CTX_add0_chain_cert(ctx.get(), extra);  // takes ownership
  }
  ERR_clear_error();  // the end of the chain reads as an error
  std::unique_ptr<BIO, bio_deleter> key(
      BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(key.get(), nullptr, nullptr, nullptr);
  bool ok = pkey && SSL_CTX_use_PrivateKey(ctx.get(), pkey) == 1 &&
            SSL_CTX_check_private_key(ctx.get()) == 1;
  EVP_PKEY_free(pkey);
  if (!ok) {
    return make_error(errc::invalid_argument, "the private key does not load or is not the leaf's");
  }
  if (staple) {
    auto* owned = new ocsp_staple(*staple);
    if (SSL_CTX_set_ex_data(ctx.get(), staple_index(), owned) != 1) {
      delete owned;
      return make_error(errc::internal, "SSL_CTX_set_ex_data failed");
    }
    SSL_CTX_set_tlsext_status_cb(ctx.get(), on_status_request);
    SSL_CTX_set_tlsext_status_arg(ctx.get(), owned);
  }
  return ctx;
}

}  // namespace

server_contexts::state::state() : front(boost::asio::ssl::context::tls_server) {
  SSL_CTX* f = front.native_handle();
  apply_policy(f);
  SSL_CTX_set_session_cache_mode(f, SSL_SESS_CACHE_SERVER);
  SSL_CTX_sess_set_cache_size(f, 20'000);
  // One TLS 1.3 ticket per handshake, not OpenSSL's two: a client resumes with one, and each
  // ticket costs a session serialization, a copy and an encryption (about 5% of a full
  // handshake's instructions, bench/tls_bench.sh).
  SSL_CTX_set_num_tickets(f, 1);
  SSL_CTX_set_tlsext_servername_callback(f, on_server_name);
  SSL_CTX_set_tlsext_servername_arg(f, this);
}

std::shared_ptr<SSL_CTX> server_contexts::state::lookup(std::string_view host) const {
  std::string name(host);
  for (auto& c : name) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  std::lock_guard lock(mu);
  if (auto it = by_name.find(name); it != by_name.end()) {
    return it->second;
  }
  auto dot = name.find('.');
  if (dot == std::string::npos || dot == 0) {
    return nullptr;
  }
  if (auto it = by_name.find("*" + name.substr(dot)); it != by_name.end()) {
    return it->second;
  }
  return nullptr;
}

server_contexts::server_contexts() : state_(std::make_unique<state>()) {}
server_contexts::~server_contexts() = default;

dp::result<void> server_contexts::set(std::string_view name, std::string_view chain_pem,
                                      std::string_view key_pem,
                                      const std::optional<ocsp_staple>& staple) {
  auto ctx = load(chain_pem, key_pem, staple);
  if (!ctx) {
    return ctx.error();
  }
  std::lock_guard lock(state_->mu);
  state_->by_name.insert_or_assign(std::string(name), std::move(*ctx));
  return {};
}

void server_contexts::remove(std::string_view name) {
  std::lock_guard lock(state_->mu);
  if (auto it = state_->by_name.find(name); it != state_->by_name.end()) {
    state_->by_name.erase(it);
  }
}

bool server_contexts::covers(std::string_view host) const {
  return state_->lookup(host) != nullptr;
}

std::vector<std::string> server_contexts::names() const {
  std::lock_guard lock(state_->mu);
  std::vector<std::string> out;
  for (const auto& [n, _] : state_->by_name) {
    out.push_back(n);
  }
  return out;
}

SSL_CTX* server_contexts::front() const noexcept {
  return state_->front.native_handle();
}

}  // namespace dp::tls
