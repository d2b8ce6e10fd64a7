// server_contexts' OCSP staple in real OpenSSL handshakes (client and server in memory, over a
// BIO pair): stapled while before nextUpdate, not after it, and not for a name given none.
#include <gtest/gtest.h>

#include <openssl/ssl.h>

#include <chrono>

#include "dp/core/clock.hpp"
#include "dp/test/harness.hpp"
#include "dp/test/ocsp.hpp"
#include "dp/tls/ocsp.hpp"
#include "dp/tls/server_contexts.hpp"

namespace {

using dp::now_ms;

// One handshake for `host` asking for a staple; the DER stapled ("" when none).
std::string stapled(SSL_CTX* front, const std::string& host) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> client_ctx(SSL_CTX_new(TLS_client_method()),
                                                               &SSL_CTX_free);
  SSL* client = SSL_new(client_ctx.get());
  SSL* server = SSL_new(front);
  BIO* client_bio = nullptr;
  BIO* server_bio = nullptr;
  BIO_new_bio_pair(&client_bio, 0, &server_bio, 0);
  SSL_set_bio(client, client_bio, client_bio);
  SSL_set_bio(server, server_bio, server_bio);
  SSL_set_tlsext_host_name(client, host.c_str());
  SSL_set_tlsext_status_type(client, TLSEXT_STATUSTYPE_ocsp);
  SSL_set_connect_state(client);
  SSL_set_accept_state(server);
  bool client_done = false, server_done = false;
  for (int i = 0; i < 20 && !(client_done && server_done); ++i) {
    client_done = client_done || SSL_do_handshake(client) == 1;
    server_done = server_done || SSL_do_handshake(server) == 1;
  }
  EXPECT_TRUE(client_done && server_done) << host;
  const unsigned char* der = nullptr;
  long n = SSL_get_tlsext_status_ocsp_resp(client, &der);
  std::string out = der && n > 0 ? std::string(reinterpret_cast<const char*>(der), n) : "";
  SSL_free(client);
  SSL_free(server);
  return out;
}

TEST(tls_server_contexts, staples_a_response_until_its_next_update_only) {
  dp::test::temp_dir dir;
  dp::test::test_ca ca(dir.path(), "Test CA", "http://127.0.0.1:9");
  auto shop = ca.issue("shop", {"shop.example.com"});
  auto blog = ca.issue("blog", {"blog.example.com"});
  auto response = ca.respond(*dp::tls::ocsp_request(shop.chain_pem));
  auto validity = dp::tls::check_ocsp_response(shop.chain_pem, response, now_ms());
  ASSERT_TRUE(validity) << validity.error().message;

  dp::tls::server_contexts contexts;
  ASSERT_TRUE(contexts.set("shop.example.com", shop.chain_pem, shop.key_pem,
                           dp::tls::ocsp_staple{response, validity->next_update_ms}));
  ASSERT_TRUE(contexts.set("blog.example.com", blog.chain_pem, blog.key_pem));
  EXPECT_EQ(stapled(contexts.front(), "shop.example.com"), response);
  EXPECT_EQ(stapled(contexts.front(), "blog.example.com"), "");

  // Past nextUpdate (here: a staple that says it ended a moment ago), nothing is stapled.
  ASSERT_TRUE(contexts.set("shop.example.com", shop.chain_pem, shop.key_pem,
                           dp::tls::ocsp_staple{response, now_ms() - 1}));
  EXPECT_EQ(stapled(contexts.front(), "shop.example.com"), "");
}

}  // namespace
