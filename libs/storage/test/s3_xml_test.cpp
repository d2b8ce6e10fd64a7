// Unit tests of the S3 XML helpers (src/s3_xml.hpp): escaping, tag scanning, ListObjectsV2 pages
// (prefix, truncation), the DeleteObjects body and S3 error answers. No S3 needed.
#include <gtest/gtest.h>

#include "../src/s3_xml.hpp"

namespace {

using namespace dp::storage;

TEST(s3_xml, escape_round_trips) {
  const std::string text = "a&b<c>d\"e'f";
  EXPECT_EQ(xml_escape(text), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
  EXPECT_EQ(xml_unescape(xml_escape(text)), text);
  EXPECT_EQ(xml_escape("plain/key.txt"), "plain/key.txt");
}

TEST(s3_xml, unescape_numeric_references_as_utf8) {
  EXPECT_EQ(xml_unescape("&#65;&#x42;"), "AB");
  EXPECT_EQ(xml_unescape("&#xe9;"), "\xc3\xa9");             // é: two bytes
  EXPECT_EQ(xml_unescape("&#x20ac;"), "\xe2\x82\xac");       // €: three bytes
  EXPECT_EQ(xml_unescape("&#x1F600;"), "\xf0\x9f\x98\x80");  // 😀: four bytes
  EXPECT_EQ(xml_unescape("&#13;"), "\r");                    // S3 escapes CR in keys
}

TEST(s3_xml, unescape_keeps_what_it_does_not_know) {
  EXPECT_EQ(xml_unescape("a & b"), "a & b");      // no ';' after it: a lone '&'
  EXPECT_EQ(xml_unescape("&nbsp;x"), "&nbsp;x");  // not an XML entity
  EXPECT_EQ(xml_unescape("tail&"), "tail&");
}

TEST(s3_xml, next_walks_repeated_tags) {
  std::string_view doc = "<R><K>one</K><X/><K>two</K><K></K></R>";
  size_t pos = 0;
  auto a = xml_next(doc, "K", pos);
  auto b = xml_next(doc, "K", pos);
  auto c = xml_next(doc, "K", pos);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(*a, "one");
  EXPECT_EQ(*b, "two");
  EXPECT_EQ(*c, "");
  EXPECT_FALSE(xml_next(doc, "K", pos));
  size_t unclosed = 0;
  EXPECT_FALSE(xml_next("<K>never closed", "K", unclosed));
}

TEST(s3_xml, value_is_unescaped_and_empty_when_absent) {
  std::string_view doc = "<Error><Code>NoSuchKey</Code><Key>a&amp;b</Key></Error>";
  EXPECT_EQ(xml_value(doc, "Code"), "NoSuchKey");
  EXPECT_EQ(xml_value(doc, "Key"), "a&b");
  EXPECT_EQ(xml_value(doc, "Message"), "");
}

TEST(s3_xml, numbers_and_times) {
  EXPECT_EQ(to_u64("12345"), 12345u);
  EXPECT_EQ(to_u64(""), 0u);
  EXPECT_EQ(to_u64("x1"), 0u);
  auto t = parse_time("2024-03-01T12:30:45.000Z", "%Y-%m-%dT%H:%M:%S");
  EXPECT_EQ(std::chrono::system_clock::to_time_t(t), 1709296245);
  auto h = parse_time("Fri, 01 Mar 2024 12:30:45 GMT", "%a, %d %b %Y %H:%M:%S");
  EXPECT_EQ(h, t);
  EXPECT_EQ(parse_time("not a date", "%Y-%m-%dT%H:%M:%S"), std::chrono::system_clock::time_point{});
}

TEST(s3_xml, list_page_strips_the_store_prefix) {
  std::string_view doc =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
      "<ListBucketResult><Name>bucket</Name><Prefix>site/a</Prefix><KeyCount>3</KeyCount>"
      "<IsTruncated>false</IsTruncated>"
      "<Contents><Key>site/a/index.html</Key><LastModified>2024-03-01T12:30:45.000Z"
      "</LastModified><ETag>&quot;9f86d081&quot;</ETag><Size>120</Size></Contents>"
      "<Contents><Key>site/a/x&amp;y.js</Key><LastModified>2024-03-01T12:30:46.000Z"
      "</LastModified><ETag>\"abc\"</ETag><Size>7</Size></Contents>"
      "<Contents><Key>other/a/z</Key><Size>1</Size></Contents>"
      "</ListBucketResult>";
  auto page = parse_list_page(doc, "site/", "a");
  ASSERT_TRUE(page) << page.error().message;
  ASSERT_EQ(page->objects.size(), 2u);  // a key outside the store's prefix is not ours
  EXPECT_EQ(page->objects[0].key, "a/index.html");
  EXPECT_EQ(page->objects[0].size, 120u);
  EXPECT_EQ(page->objects[0].etag, "\"9f86d081\"");
  EXPECT_EQ(std::chrono::system_clock::to_time_t(page->objects[0].last_modified), 1709296245);
  EXPECT_EQ(page->objects[1].key, "a/x&y.js");
  EXPECT_TRUE(page->next_token.empty());
}

TEST(s3_xml, list_page_truncated_carries_its_token) {
  std::string_view doc =
      "<ListBucketResult><IsTruncated>true</IsTruncated>"
      "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
      "<Contents><Key>k</Key><Size>1</Size></Contents></ListBucketResult>";
  auto page = parse_list_page(doc, "", "");
  ASSERT_TRUE(page) << page.error().message;
  EXPECT_EQ(page->objects.size(), 1u);
  EXPECT_EQ(page->next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
}

TEST(s3_xml, list_page_truncated_without_token_is_an_error) {
  auto page = parse_list_page(
      "<ListBucketResult><IsTruncated>true</IsTruncated>"
      "</ListBucketResult>",
      "site/", "__outputs/x/");
  ASSERT_FALSE(page);
  EXPECT_TRUE(page.error().is(dp::errc::protocol));
  EXPECT_NE(page.error().message.find("'__outputs/x/'"), std::string::npos);
  EXPECT_NE(page.error().message.find("truncated without a token"), std::string::npos);
}

TEST(s3_xml, empty_list_page) {
  auto page =
      parse_list_page("<ListBucketResult><KeyCount>0</KeyCount></ListBucketResult>", "", "none/");
  ASSERT_TRUE(page);
  EXPECT_TRUE(page->objects.empty());
  EXPECT_TRUE(page->next_token.empty());
}

TEST(s3_xml, delete_objects_body_escapes_keys) {
  std::vector<object_info> objects(2);
  objects[0].key = "a/<b>.html";
  objects[1].key = "c&d";
  EXPECT_EQ(delete_objects_body(objects, "p/"),
            "<Delete><Quiet>true</Quiet>"
            "<Object><Key>p/a/&lt;b&gt;.html</Key></Object>"
            "<Object><Key>p/c&amp;d</Key></Object>"
            "</Delete>");
}

TEST(s3_xml, status_error_maps_status_and_names_s3_code) {
  auto e = status_error("GET", "a/b.txt", 404,
                        "<Error><Code>NoSuchKey</Code><Message>The specified key does not "
                        "exist.</Message><BucketName>secret-bucket</BucketName></Error>");
  EXPECT_TRUE(e.is(dp::errc::not_found));
  EXPECT_EQ(e.message, "S3 GET 'a/b.txt': HTTP 404 NoSuchKey");
  EXPECT_EQ(e.message.find("secret-bucket"), std::string::npos);  // never the bucket or body

  auto no_body = status_error("HEAD", "k", 403, "");
  EXPECT_TRUE(no_body.is(dp::errc::forbidden));
  EXPECT_EQ(no_body.message, "S3 HEAD 'k': HTTP 403");

  EXPECT_TRUE(status_error("PUT", "k", 503, "<Error><Code>SlowDown</Code></Error>")
                  .is(dp::errc::unavailable));
  EXPECT_TRUE(status_error("PUT", "k", 412, "").is(dp::errc::conflict));
  EXPECT_TRUE(status_error("GET", "k", 416, "").is(dp::errc::invalid_argument));
  EXPECT_TRUE(status_error("GET", "k", 401, "").is(dp::errc::unauthorized));
  EXPECT_TRUE(status_error("GET", "k", 302, "").is(dp::errc::protocol));
}

}  // namespace
