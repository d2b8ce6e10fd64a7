#include "../src/credentials.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace dp::proxy {
namespace {

// A full set forgets the credential used longest ago: one in steady use stays verified (no KDF)
// while thousands of others come and go.
TEST(verified_credentials, a_hot_credential_survives_while_thousands_come_and_go) {
  verified_credentials verified;
  const std::string hash = "pbkdf2-sha256$600000$salt$hash";
  verified.add(hash, "Basic aG90OnNlY3JldA==");
  const size_t others = 3 * verified_credentials::capacity;
  for (size_t i = 0; i < others; ++i) {
    verified.add(hash, fmt::format("Basic other-{}", i));
    if (i % 100 == 0) {
      EXPECT_TRUE(verified.contains(hash, "Basic aG90OnNlY3JldA==")) << "after " << i;
    }
  }
  EXPECT_TRUE(verified.contains(hash, "Basic aG90OnNlY3JldA=="));
  // Bounded: the oldest others went, the newest stayed.
  EXPECT_FALSE(verified.contains(hash, "Basic other-0"));
  EXPECT_TRUE(verified.contains(hash, fmt::format("Basic other-{}", others - 1)));
  // Another stored hash (a changed password) does not match the same header.
  EXPECT_FALSE(verified.contains("pbkdf2-sha256$600000$salt$other", "Basic aG90OnNlY3JldA=="));
}

}  // namespace
}  // namespace dp::proxy
