// Sealing with the platform key, and reading certificates (pure functions).
#include <gtest/gtest.h>

#include "dp/core/clock.hpp"
#include "dp/test/certificates.hpp"
#include "dp/test/harness.hpp"
#include "dp/tls/certificate.hpp"
#include "dp/tls/platform_key.hpp"

namespace {

constexpr std::string_view hex_a =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
constexpr std::string_view hex_b =
    "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

TEST(tls_platform_key, seals_and_opens_under_the_same_key_and_context_only) {
  auto a = dp::tls::platform_key::from_hex(hex_a);
  auto b = dp::tls::platform_key::from_hex(hex_b);
  ASSERT_TRUE(a && b);
  auto sealed = a->seal("-----BEGIN PRIVATE KEY-----\nsecret", "shop.example.com");
  ASSERT_TRUE(sealed);
  EXPECT_TRUE(sealed->starts_with("v1:"));
  EXPECT_EQ(sealed->find("secret"), std::string::npos);
  auto opened = a->open(*sealed, "shop.example.com");
  ASSERT_TRUE(opened);
  EXPECT_EQ(*opened, "-----BEGIN PRIVATE KEY-----\nsecret");
  EXPECT_TRUE(a->open(*sealed, "other.example.com").error().is(dp::errc::forbidden));
  EXPECT_TRUE(b->open(*sealed, "shop.example.com").error().is(dp::errc::forbidden));
  std::string altered = *sealed;
  altered[10] = altered[10] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(a->open(altered, "shop.example.com"));
  // Two seals of the same text differ (a fresh nonce each).
  EXPECT_NE(*sealed, *a->seal("-----BEGIN PRIVATE KEY-----\nsecret", "shop.example.com"));
}

TEST(tls_platform_key, refuses_a_key_that_is_not_64_hex_digits) {
  EXPECT_TRUE(dp::tls::platform_key::from_hex("abc").error().is(dp::errc::invalid_argument));
  EXPECT_FALSE(dp::tls::platform_key::from_hex(std::string(64, 'g')));
}

TEST(tls_certificate, reads_names_and_expiry_and_checks_the_key) {
  dp::test::temp_dir dir;
  auto a =
      dp::test::make_certificate(dir.path(), "a", {"shop.example.com", "www.shop.example.com"});
  auto b = dp::test::make_certificate(dir.path(), "b", {"other.example.com"});
  auto facts = dp::tls::inspect(a.chain_pem, a.key_pem);
  ASSERT_TRUE(facts) << facts.error().message;
  EXPECT_EQ(facts->dns_names,
            (std::vector<std::string>{"shop.example.com", "www.shop.example.com"}));
  auto now_ms = dp::now_ms();
  EXPECT_GT(facts->not_after_ms, now_ms + 29LL * 24 * 3600 * 1000);
  EXPECT_LT(facts->not_after_ms, now_ms + 31LL * 24 * 3600 * 1000);
  EXPECT_TRUE(dp::tls::inspect(a.chain_pem, b.key_pem).error().is(dp::errc::invalid_argument));
  EXPECT_FALSE(dp::tls::inspect("not pem", a.key_pem));
  EXPECT_FALSE(dp::tls::inspect(a.chain_pem, "not pem"));
}

TEST(tls_certificate, a_wildcard_covers_one_label) {
  EXPECT_TRUE(dp::tls::name_covers("*.example.com", "shop.example.com"));
  EXPECT_FALSE(dp::tls::name_covers("*.example.com", "a.shop.example.com"));
  EXPECT_FALSE(dp::tls::name_covers("*.example.com", "example.com"));
  EXPECT_TRUE(dp::tls::name_covers("example.com", "example.com"));
  EXPECT_FALSE(dp::tls::name_covers("example.com", "www.example.com"));
}

}  // namespace
