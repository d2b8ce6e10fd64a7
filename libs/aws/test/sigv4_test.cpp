// SigV4 against AWS's published vectors: the aws-sig-v4-test-suite (service "service",
// us-east-1, AKIDEXAMPLE, 2015-08-30T12:36:00Z) and the S3 API reference examples. s3rver does
// not check signatures, so these vectors are the only proof that signing is right.
#include "dp/aws/sigv4.hpp"
#include "dp/aws/crypto.hpp"

#include <gtest/gtest.h>

namespace {

using namespace dp::aws;
using namespace std::chrono;

const std::string suite_token =
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPf"
    "IeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7"
    "WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8"
    "FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

system_clock::time_point at(int y, int mo, int d, int h, int mi) {
  return sys_days{year{y} / mo / d} + hours{h} + minutes{mi};
}

signature suite(std::string_view method, std::string_view path, query_list query = {},
                header_list extra = {}, std::string payload = {}, std::string token = {},
                uri_style style = uri_style::standard) {
  credentials creds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token, {}};
  header_list headers{{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}};
  headers.insert(headers.end(), extra.begin(), extra.end());
  std::string hash = sha256_hex(payload);
  request req{method, path, style, std::move(query), std::move(headers), hash};
  return sign(req, creds, {"us-east-1", "service", at(2015, 8, 30, 12, 36)});
}

std::string auth(std::string_view signed_headers, std::string_view sig) {
  return "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
         "SignedHeaders=" +
         std::string(signed_headers) + ", Signature=" + std::string(sig);
}

TEST(sigv4_suite, get_vanilla) {
  auto s = suite("GET", "/");
  EXPECT_EQ(s.canonical_request,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
  EXPECT_EQ(
      s.authorization,
      auth("host;x-amz-date", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
  // x-amz-date came from the request, so only authorization is added.
  ASSERT_EQ(s.headers_to_add.size(), 1u);
  EXPECT_EQ(s.headers_to_add[0].first, "authorization");
}

TEST(sigv4_suite, query_order) {
  auto s = suite("GET", "/", {{"Param1", "value2"}, {"Param1", "Value1"}});
  EXPECT_EQ(s.canonical_query, "Param1=Value1&Param1=value2");
  EXPECT_EQ(s.signature, "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1");
  EXPECT_EQ(suite("GET", "/", {{"Param2", "value2"}, {"Param1", "value1"}}).signature,
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
  std::string unreserved = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  EXPECT_EQ(suite("GET", "/", {{unreserved, unreserved}}).signature,
            "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197");
  EXPECT_EQ(suite("GET", "/", {{"\xe1\x88\xb4", "bar"}}).signature,
            "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04");
  EXPECT_EQ(suite("GET", "/", {{"Param1", "value1"}}).signature,
            "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb");
}

TEST(sigv4_suite, paths) {
  EXPECT_EQ(suite("GET", "/" + std::string("-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklm"
                                           "nopqrstuvwxyz"))
                .signature,
            "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f");
  auto utf8 = suite("GET", "/\xe1\x88\xb4");
  EXPECT_EQ(utf8.canonical_uri, "/%E1%88%B4");
  EXPECT_EQ(utf8.signature, "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
  auto space = suite("GET", "/example space/");
  EXPECT_EQ(space.canonical_uri, "/example%20space/");
  EXPECT_EQ(space.string_to_sign.substr(space.string_to_sign.rfind('\n') + 1),
            "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86");
  EXPECT_EQ(space.signature, "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741");
}

TEST(sigv4_suite, normalize_path) {
  const std::string slash = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
  for (auto p : {"/example/..", "/example1/example2/../..", "//", "/./"}) {
    EXPECT_EQ(suite("GET", p).signature, slash) << p;
    EXPECT_EQ(suite("GET", p).canonical_uri, "/") << p;
  }
  EXPECT_EQ(suite("GET", "//example//").canonical_uri, "/example/");
  EXPECT_EQ(suite("GET", "//example//").signature,
            "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84");
  EXPECT_EQ(suite("GET", "/./example").signature,
            "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5");
  // Already-encoded wire paths are encoded again for non-S3 services.
  EXPECT_EQ(suite("GET", "/a%20b").canonical_uri, "/a%2520b");
}

TEST(sigv4_suite, unnormalized_s3_style) {
  // S3 keeps slashes and dot segments: they are part of the key.
  EXPECT_EQ(suite("GET", "//example//", {}, {}, {}, {}, uri_style::s3).signature,
            "87cca117541a147f6df867677d98a7d80dff226d2bfca9e4ffa899665623c7e5");
  EXPECT_EQ(suite("GET", "/example1/example2/../..", {}, {}, {}, {}, uri_style::s3).signature,
            "dc33e0856fd4baca4d7aa2146c38958283844764f38c74252a333df5e613003b");
}

TEST(sigv4_suite, headers) {
  EXPECT_EQ(suite("GET", "/", {},
                  {{"My-Header1", "value2"}, {"My-Header1", "value2"}, {"My-Header1", "value1"}})
                .signature,
            "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea");
  auto trim = suite("GET", "/", {}, {{"My-Header1", " value1"}, {"My-Header2", "\"a   b   c\""}});
  EXPECT_NE(trim.canonical_request.find("my-header1:value1\nmy-header2:\"a b c\"\n"),
            std::string::npos);
  EXPECT_EQ(trim.signature, "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736");
  EXPECT_EQ(suite("GET", "/", {},
                  {{"My-Header1", "value4"},
                   {"My-Header1", "value1"},
                   {"My-Header1", "value3"},
                   {"My-Header1", "value2"}})
                .signature,
            "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01");
  EXPECT_EQ(suite("POST", "/", {}, {{"My-Header1", "value1"}}).signature,
            "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c");
  EXPECT_EQ(suite("POST", "/", {}, {{"My-Header1", "VALUE1"}}).signature,
            "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d");
}

TEST(sigv4_suite, post) {
  EXPECT_EQ(suite("POST", "/").signature,
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
  EXPECT_EQ(suite("POST", "/", {{"Param1", "value1"}}).signature,
            "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11");
  auto form = suite("POST", "/", {}, {{"Content-Type", "application/x-www-form-urlencoded"}},
                    "Param1=value1");
  EXPECT_EQ(form.authorization,
            auth("content-type;host;x-amz-date",
                 "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"));
  EXPECT_EQ(
      suite("POST", "/", {}, {{"Content-Type", "application/x-www-form-urlencoded; charset=utf8"}},
            "Param1=value1")
          .signature,
      "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe");
}

TEST(sigv4_suite, session_token_is_signed) {
  auto s = suite("POST", "/", {}, {}, {}, suite_token);
  EXPECT_EQ(s.authorization,
            auth("host;x-amz-date;x-amz-security-token",
                 "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"));
  ASSERT_EQ(s.headers_to_add.size(), 2u);
  EXPECT_EQ(s.headers_to_add[1].first, "x-amz-security-token");
  EXPECT_EQ(s.headers_to_add[1].second, suite_token);
}

// The S3 API reference, "Signature Calculations for the Authorization Header".
const credentials s3_creds{
    "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", {}, "us-east-1"};
const scope s3_scope{"us-east-1", "s3", at(2013, 5, 24, 0, 0)};

TEST(sigv4_s3, get_object_with_range) {
  request req{"GET",
              "/test.txt",
              uri_style::s3,
              {},
              {{"Host", "examplebucket.s3.amazonaws.com"}, {"Range", "bytes=0-9"}}};
  auto s = sign(req, s3_creds, s3_scope);
  EXPECT_EQ(
      s.canonical_request,
      "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
      "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
      "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(s.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  // The signer adds what it signed: date and content hash.
  header_list want{{"authorization", s.authorization},
                   {"x-amz-date", "20130524T000000Z"},
                   {"x-amz-content-sha256", std::string(empty_payload_sha256)}};
  EXPECT_EQ(s.headers_to_add, want);
}

TEST(sigv4_s3, put_object_key_encoded_once) {
  std::string hash = sha256_hex("Welcome to Amazon S3.");
  EXPECT_EQ(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  request req{"PUT",
              "/test$file.text",
              uri_style::s3,
              {},
              {{"Host", "examplebucket.s3.amazonaws.com"},
               {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
               {"x-amz-storage-class", "REDUCED_REDUNDANCY"}},
              hash};
  auto s = sign(req, s3_creds, s3_scope);
  EXPECT_EQ(s.canonical_uri, "/test%24file.text");
  EXPECT_EQ(s.string_to_sign.substr(s.string_to_sign.rfind('\n') + 1),
            "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
  EXPECT_EQ(s.signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
  // The same key given pre-encoded signs identically: no double encoding for S3.
  req.path = "/test%24file.text";
  req.style = uri_style::s3_encoded;
  EXPECT_EQ(sign(req, s3_creds, s3_scope).signature, s.signature);
}

TEST(sigv4_s3, list_objects_query) {
  request req{"GET",
              "/",
              uri_style::s3,
              {{"max-keys", "2"}, {"prefix", "J"}},
              {{"Host", "examplebucket.s3.amazonaws.com"}}};
  auto s = sign(req, s3_creds, s3_scope);
  EXPECT_EQ(s.canonical_query, "max-keys=2&prefix=J");
  EXPECT_EQ(s.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
  request lifecycle{
      "GET", "/", uri_style::s3, {{"lifecycle", ""}}, {{"Host", "examplebucket.s3.amazonaws.com"}}};
  EXPECT_EQ(sign(lifecycle, s3_creds, s3_scope).signature,
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(sigv4_s3, unsigned_payload) {
  request req{"PUT", "/k", uri_style::s3, {}, {{"Host", "h"}}, unsigned_payload};
  auto s = sign(req, s3_creds, s3_scope);
  EXPECT_TRUE(s.canonical_request.ends_with("\nUNSIGNED-PAYLOAD"));
  EXPECT_NE(s.canonical_request.find("x-amz-content-sha256:UNSIGNED-PAYLOAD\n"), std::string::npos);
}

TEST(sigv4_s3, presigned_url) {
  // S3 reference, "Authenticating Requests: Using Query Parameters".
  request req{"GET", "/test.txt", uri_style::s3, {}, {{"Host", "examplebucket.s3.amazonaws.com"}}};
  auto s = presign(req, s3_creds, s3_scope, hours{24});
  EXPECT_EQ(s.signature, "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
  EXPECT_EQ(s.canonical_query,
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2F"
            "us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&"
            "X-Amz-SignedHeaders=host&X-Amz-Signature="
            "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

TEST(uri_encode, aws_rules) {
  EXPECT_EQ(uri_encode("a b+c/d", false), "a%20b%2Bc/d");
  EXPECT_EQ(uri_encode("a/b", true), "a%2Fb");
  EXPECT_EQ(uri_encode("100%", false), "100%25");
  EXPECT_EQ(uri_encode("\xd0\xba", false), "%D0%BA");
  EXPECT_EQ(uri_encode("A-z_0.9~", true), "A-z_0.9~");
  EXPECT_EQ(uri_encode("=&?#*", true), "%3D%26%3F%23%2A");
}

TEST(crypto, hashes) {
  EXPECT_EQ(sha256_hex(""), std::string(empty_payload_sha256));
  sha256_hasher h;
  h.update("Welcome to ");
  h.update("Amazon S3.");
  EXPECT_EQ(h.finish_hex(), "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  EXPECT_EQ(h.finish_hex(), std::string(empty_payload_sha256));  // starts over
  EXPECT_EQ(md5_base64(""), "1B2M2Y8AsgTpgAmY7PhCfg==");
  // RFC 4231 test case 2.
  EXPECT_EQ(hex(hmac_sha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(credentials, from_environment) {
  dp::config::environment env{{"AWS_ACCESS_KEY_ID", "AK"},
                              {"AWS_SECRET_ACCESS_KEY", "SK"},
                              {"AWS_SESSION_TOKEN", "T"},
                              {"AWS_DEFAULT_REGION", "eu-west-1"}};
  auto c = credentials_from(env);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->access_key, "AK");
  EXPECT_EQ(c->secret_key, "SK");
  EXPECT_EQ(c->session_token, "T");
  EXPECT_EQ(c->region, "eu-west-1");
  env["AWS_REGION"] = "us-west-2";
  EXPECT_EQ(credentials_from(env)->region, "us-west-2");
  EXPECT_FALSE(credentials_from({})->has_keys());
  auto half = credentials_from({{"AWS_ACCESS_KEY_ID", "AK"}});
  ASSERT_FALSE(half);
  EXPECT_TRUE(half.error().is(dp::errc::invalid_argument));
}

}  // namespace
