#include "dp/state/protection.hpp"

#include <gtest/gtest.h>

namespace dp::state {
namespace {

TEST(protection, hash_verifies_only_its_password) {
  auto h = hash_password("correct horse");
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_TRUE(h->starts_with("pbkdf2-sha256$100000$"));
  EXPECT_EQ(h->find("correct"), std::string::npos);
  EXPECT_TRUE(verify_password("correct horse", *h));
  EXPECT_FALSE(verify_password("correct hors", *h));
  EXPECT_FALSE(verify_password("", *h));
  // Salted: the same password hashes differently each time.
  EXPECT_NE(*h, *hash_password("correct horse"));
}

TEST(protection, malformed_stored_hash_matches_nothing) {
  for (const std::string& stored : std::vector<std::string>{
           "", "plain", "pbkdf2-sha256$", "pbkdf2-sha256$x$00$00", "pbkdf2-sha256$1$zz$00",
           "pbkdf2-sha256$1$00$00", "pbkdf2-sha256$0$00$" + std::string(64, '0')}) {
    EXPECT_FALSE(verify_password("", stored)) << stored;
  }
}

TEST(protection, basic_authorization) {
  // RFC 7617's example.
  auto c = parse_basic_authorization("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "Aladdin");
  EXPECT_EQ(c->password, "open sesame");
  auto colon = parse_basic_authorization("basic dTpwOnE=");  // u:p:q, scheme in any case
  ASSERT_TRUE(colon);
  EXPECT_EQ(colon->username, "u");
  EXPECT_EQ(colon->password, "p:q");
  EXPECT_FALSE(parse_basic_authorization("Bearer QWxhZGRpbjpvcGVuIHNlc2FtZQ=="));
  EXPECT_FALSE(parse_basic_authorization("Basic"));
  EXPECT_FALSE(parse_basic_authorization("Basic bm9jb2xvbg=="));  // "nocolon"
  EXPECT_FALSE(parse_basic_authorization("Basic !!!!"));
}

TEST(protection, scope_covers_previews_or_all) {
  using proto::protection_scope;
  EXPECT_FALSE(protects(protection_scope::off, "site", "site--main"));
  EXPECT_FALSE(protects(protection_scope::previews, "site", "site"));
  EXPECT_TRUE(protects(protection_scope::previews, "site", "site--feature"));
  EXPECT_TRUE(protects(protection_scope::previews, "site", "site--0123abcd"));
  EXPECT_TRUE(protects(protection_scope::all, "site", "site"));
}

}  // namespace
}  // namespace dp::state
