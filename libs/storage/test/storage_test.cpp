// Unit tests: STORAGE_URL parsing, the key rules, ranges, ETag matching and the file backend's
// confinement to its root. The behaviour both backends share is in conformance_itest.cpp.
#include <boost/asio.hpp>

#include <gtest/gtest.h>

#include <fstream>

#include "../src/backends.hpp"
#include "dp/core/id.hpp"
#include "dp/storage/object_store.hpp"
#include "dp/test/async.hpp"

namespace {

using namespace dp::storage;
namespace fs = std::filesystem;

TEST(storage_url, file) {
  auto u = parse_storage_url("file:///var/lib/dp/storage");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->kind, storage_url::scheme::file);
  EXPECT_EQ(u->root, "/var/lib/dp/storage");
  EXPECT_EQ(parse_storage_url("file:///a/../b")->root, "/b");
  EXPECT_FALSE(parse_storage_url("file://host/dir"));
  EXPECT_FALSE(parse_storage_url("file:relative"));
  EXPECT_FALSE(parse_storage_url("file:///dir?x=1"));
}

TEST(storage_url, s3) {
  auto u = parse_storage_url("s3://my-bucket?endpoint=http://127.0.0.1:4569&region=eu-west-1");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->kind, storage_url::scheme::s3);
  EXPECT_EQ(u->bucket, "my-bucket");
  EXPECT_EQ(u->endpoint, "http://127.0.0.1:4569");
  EXPECT_EQ(u->region, "eu-west-1");
  EXPECT_TRUE(u->path_style);  // custom endpoints default to path style
  auto aws = parse_storage_url("s3://my-bucket/sites/prod");
  ASSERT_TRUE(aws);
  EXPECT_EQ(aws->prefix, "sites/prod/");
  EXPECT_TRUE(aws->endpoint.empty());
  EXPECT_FALSE(aws->path_style);
  EXPECT_FALSE(parse_storage_url("s3://bkt?endpoint=http://h&path_style=false")->path_style);
}

TEST(storage_url, clear_errors) {
  auto ftp = parse_storage_url("ftp://x");
  ASSERT_FALSE(ftp);
  EXPECT_EQ(ftp.error().message, "scheme must be file:// or s3://");
  EXPECT_TRUE(ftp.error().is(dp::errc::invalid_argument));
  EXPECT_FALSE(parse_storage_url(""));
  EXPECT_FALSE(parse_storage_url("/just/a/path"));
  EXPECT_FALSE(parse_storage_url("s3://UPPER"));
  EXPECT_FALSE(parse_storage_url("s3://ab"));
  EXPECT_FALSE(parse_storage_url("s3://bucket?endpoint=ftp://h"));
  EXPECT_FALSE(parse_storage_url("s3://bucket?endpoint=http://h/path"));
  EXPECT_FALSE(parse_storage_url("s3://bucket?path_style=maybe"));
  auto unknown = parse_storage_url("s3://bucket?regoin=x");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("regoin"), std::string::npos);
}

TEST(keys, hostile_keys_are_rejected) {
  for (std::string k : std::vector<std::string>{
           "", "/abs", "..", "../x", "a/../../x", "a/./b", "a//b", "a\\b", "..\\x",
           std::string("a\0b", 3), "a\nb", ".dp-meta/x", "a/.dp-tmp-1", std::string(1025, 'a')}) {
    EXPECT_FALSE(validate_key(k)) << k;
  }
  for (std::string k : {"a", "a/b/c.html", "dir/", "with space", "unicode/\xc3\xa9t\xc3\xa9",
                        "plus+sign", "..a", "a..", ".hidden", "%2e%2e", "a/b.dp-x"}) {
    EXPECT_TRUE(validate_key(k)) << k;
  }
}

TEST(ranges, resolve) {
  auto r = [](std::optional<uint64_t> f, std::optional<uint64_t> l, uint64_t size) {
    return resolve_range({f, l}, size);
  };
  EXPECT_EQ(r(0, 9, 100), (std::pair<uint64_t, uint64_t>{0, 9}));
  EXPECT_EQ(r(90, std::nullopt, 100), (std::pair<uint64_t, uint64_t>{90, 99}));
  EXPECT_EQ(r(90, 200, 100), (std::pair<uint64_t, uint64_t>{90, 99}));
  EXPECT_EQ(r(std::nullopt, 10, 100), (std::pair<uint64_t, uint64_t>{90, 99}));
  EXPECT_EQ(r(std::nullopt, 500, 100), (std::pair<uint64_t, uint64_t>{0, 99}));
  EXPECT_FALSE(r(100, std::nullopt, 100));
  EXPECT_FALSE(r(5, 4, 100));
  EXPECT_FALSE(r(std::nullopt, 0, 100));
}

TEST(etags, if_none_match) {
  EXPECT_TRUE(etag_matches("\"abc\"", "\"abc\""));
  EXPECT_TRUE(etag_matches("\"x\", \"abc\"", "\"abc\""));
  EXPECT_TRUE(etag_matches("W/\"abc\"", "\"abc\""));
  EXPECT_TRUE(etag_matches("*", "\"abc\""));
  EXPECT_FALSE(etag_matches("\"abd\"", "\"abc\""));
  EXPECT_FALSE(etag_matches("abc", "\"abc\""));
}

TEST(content_types, by_extension) {
  EXPECT_EQ(content_type_for("a/index.HTML"), "text/html; charset=utf-8");
  EXPECT_EQ(content_type_for("x.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(content_type_for("noext"), "application/octet-stream");
  EXPECT_EQ(content_type_for("dir.d/file"), "application/octet-stream");
}

struct file_store_test : ::testing::Test {
  fs::path base = fs::temp_directory_path() / ("dp-storage-" + dp::random_hex(6));
  fs::path root = base / "root";
  boost::asio::io_context ioc;
  std::shared_ptr<object_store> store;

  void SetUp() override {
    fs::create_directories(base);
    storage_url u;
    u.root = root;
    store = open_storage(ioc.get_executor(), u, {}).value();
  }
  void TearDown() override {
    store.reset();
    fs::remove_all(base);
  }
};

TEST_F(file_store_test, hostile_keys_never_leave_the_root) {
  // A file next to the root that an escaping key would reach.
  std::ofstream(base / "secret") << "do not touch";
  for (std::string k :
       std::vector<std::string>{"../secret", "a/../../secret", "/etc/passwd", "..\\secret",
                                std::string("x\0/../../secret", 15)}) {
    auto put = dp::test::run_async(ioc, store->put_buffer(k, "pwned", {}));
    ASSERT_FALSE(put) << k;
    EXPECT_TRUE(put.error().is(dp::errc::invalid_argument));
    EXPECT_FALSE(dp::test::run_async(ioc, store->get(k)));
    EXPECT_FALSE(dp::test::run_async(ioc, store->remove(k)));
    EXPECT_FALSE(store->local_path(k));
  }
  std::ifstream in(base / "secret");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, "do not touch");
  EXPECT_FALSE(fs::exists(base / "pwned"));
}

TEST_F(file_store_test, write_is_atomic_and_leaves_no_temp_files) {
  ASSERT_TRUE(dp::test::run_async(ioc, store->put_buffer("a/b.txt", std::string(100000, 'x'), {})));
  ASSERT_TRUE(dp::test::run_async(ioc, store->put_buffer("a/b.txt", "short", {})));
  for (auto& e : fs::recursive_directory_iterator(root)) {
    EXPECT_FALSE(e.path().filename().string().starts_with(".dp-tmp-")) << e.path();
  }
  EXPECT_EQ(*store->local_path("a/b.txt"), root / "a/b.txt");
  EXPECT_EQ(fs::file_size(root / "a/b.txt"), 5u);
  // The metadata tree is not listed as keys.
  auto all = dp::test::run_async(ioc, store->list(""));
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].key, "a/b.txt");
}

TEST_F(file_store_test, key_that_is_also_a_prefix_is_a_conflict) {
  ASSERT_TRUE(dp::test::run_async(ioc, store->put_buffer("a", "file", {})));
  auto r = dp::test::run_async(ioc, store->put_buffer("a/b", "under a file", {}));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(dp::errc::conflict)) << r.error().message;
}

TEST_F(file_store_test, delete_removes_empty_directories) {
  ASSERT_TRUE(dp::test::run_async(ioc, store->put_buffer("d/e/f", "x", {})));
  ASSERT_TRUE(dp::test::run_async(ioc, store->remove("d/e/f")));
  EXPECT_FALSE(fs::exists(root / "d"));
  EXPECT_TRUE(dp::test::run_async(ioc, store->remove("d/e/f")));  // deleting a missing key is fine
}

}  // namespace
