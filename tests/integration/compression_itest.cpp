// Precompressed variants end to end (issue 19, item 6): the build-runner binary builds the
// plain-html fixture from a git repository, writing Brotli and gzip variants beside its
// compressible files, and the proxy binary serves them by Accept-Encoding: curl --compressed gets
// the page back, a Range is a range of the encoded bytes, and each variant has its own ETag.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include "dp/proto/json.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"

namespace {

namespace fs = std::filesystem;

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The fixture's files as a repository's (it has nothing to install or build).
std::map<std::string, dp::test::git_file> fixture(const fs::path& dir) {
  std::map<std::string, dp::test::git_file> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) {
      files.emplace(e.path().lexically_relative(dir).string(), read(e.path()));
    }
  }
  return files;
}

class Compression : public ::testing::Test {
 protected:
  void SetUp() override {
    site_ = dp::test::source_dir() / "tests/fixtures/sites/plain-html";
    dp::test::git_repo repo(fixture(site_));
    auto built = dp::test::run({DP_BUILD_RUNNER, "build"},
                               {{"REDIS_URL", redis_.url()},
                                {"STORAGE_URL", "file://" + storage_.path().string()},
                                {"ALLOWED_GIT_PROTOCOLS", "file"},
                                {"TMPDIR", work_.path().string()},
                                {"GIT_REPOSITORY_URL", repo.url()},
                                {"PROJECT_ID", "shop"}},
                               {}, std::chrono::seconds(120));
    ASSERT_EQ(built.exit_code, 0) << built.output;
    auto id = dp::test::redis_command(redis_.port(), {"GET", "dp:alias:shop"});
    ASSERT_TRUE(id) << id.error().message;
    id_ = *id;
    proxy_.emplace(
        dp::test::process_options{.argv = {PROXY_BIN},
                                  .env = {{"REDIS_URL", redis_.url()},
                                          {"STORAGE_URL", "file://" + storage_.path().string()},
                                          {"BASE_DOMAIN", "localhost"},
                                          {"LOG_FORMAT", "json"},
                                          {"PROXY_LISTEN", "127.0.0.1:0"},
                                          {"ADMIN_LISTEN", "127.0.0.1:0"}}});
    port_ = dp::test::reported_port(*proxy_);
  }

  dp::test::http_response get(const std::string& target,
                              std::map<std::string, std::string> headers = {},
                              const std::string& method = "GET") {
    headers.emplace("host", "shop.localhost");
    auto r = dp::test::http_request(port_, method, target, {}, headers);
    EXPECT_TRUE(r) << target;
    return r ? *r : dp::test::http_response{};
  }

  std::string object(const std::string& path) {
    return read(storage_.path() / dp::proto::output_key(id_, path));
  }

  // curl with the given options; its stdout.
  std::string curl(std::vector<std::string> args) {
    args.insert(args.begin(), {"curl", "-sS", "--max-time", "10", "-H", "Host: shop.localhost"});
    auto r = dp::test::run(std::move(args));
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return r.output;
  }

  std::string url(const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  dp::test::redis_server redis_;
  dp::test::temp_dir storage_{"dp-compress-storage"};
  dp::test::temp_dir work_{"dp-compress-work"};
  fs::path site_;
  std::string id_;
  std::optional<dp::test::child_process> proxy_;
  uint16_t port_ = 0;
};

TEST_F(Compression, TheBuildWritesVariantsOfCompressibleFilesOnly) {
  auto m = dp::proto::parse_manifest(read(storage_.path() / dp::proto::manifest_key(id_)));
  ASSERT_TRUE(m) << m.error().message;
  // style.css (5 KB), 404.html and LICENSE.txt (just over 1 KiB) get both; index.html (868 bytes)
  // is under the threshold; icon.png is an image.
  for (const char* f : {"css/style.css", "404.html", "LICENSE.txt"}) {
    EXPECT_TRUE(m->files.contains(std::string(f) + ".br")) << f;
    EXPECT_TRUE(m->files.contains(std::string(f) + ".gz")) << f;
  }
  for (const char* f : {"index.html.br", "index.html.gz", "icon.png.br", "favicon.ico.br"}) {
    EXPECT_FALSE(m->files.contains(f)) << f;
  }
}

TEST_F(Compression, CurlCompressedGetsBrotliAndThePage) {
  std::string css = read(site_ / "css/style.css");
  // -D - prints the head (lowercased here) before the body curl decoded.
  auto fetch = [&](std::vector<std::string> args) {
    args.insert(args.end(), {"--compressed", "-D", "-", url("/css/style.css")});
    std::string out = curl(std::move(args));
    size_t end = out.find("\r\n\r\n");
    std::string head = out.substr(0, end);
    std::transform(head.begin(), head.end(), head.begin(), ::tolower);
    return std::pair{head, end == out.npos ? std::string() : out.substr(end + 4)};
  };
  auto [head, body] = fetch({});
  EXPECT_NE(head.find("\r\ncontent-encoding: br\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nvary: accept-encoding"), std::string::npos) << head;
  EXPECT_EQ(body, css) << "curl did not decode the page";
  // A client without Brotli: gzip, which curl decodes too.
  std::tie(head, body) = fetch({"-H", "Accept-Encoding: gzip"});
  EXPECT_NE(head.find("\r\ncontent-encoding: gzip\r\n"), std::string::npos) << head;
  EXPECT_EQ(body, css);
}

TEST_F(Compression, EachVariantHasItsOwnETagLengthAndRanges) {
  std::string br = object("css/style.css.br");
  std::string gz = object("css/style.css.gz");
  auto rb = get("/css/style.css", {{"accept-encoding", "gzip, deflate, br"}});
  auto rg = get("/css/style.css", {{"accept-encoding", "gzip"}});
  auto ri = get("/css/style.css", {{"accept-encoding", "br;q=0, gzip;q=0"}});
  EXPECT_EQ(rb.body, br);
  EXPECT_EQ(rb.headers["content-length"], std::to_string(br.size()));
  EXPECT_EQ(rg.body, gz);
  EXPECT_EQ(ri.body, read(site_ / "css/style.css"));
  EXPECT_EQ(ri.headers.count("content-encoding"), 0u);
  EXPECT_EQ(ri.headers["vary"], "Accept-Encoding");
  std::set<std::string> etags{rb.headers["etag"], rg.headers["etag"], ri.headers["etag"]};
  EXPECT_EQ(etags.size(), 3u);
  // identity;q=0 with br acceptable: br.
  EXPECT_EQ(get("/css/style.css", {{"accept-encoding", "br, identity;q=0"}}).body, br);

  // A Range is over the encoded bytes, as nginx's gzip_static answers it.
  auto part = get("/css/style.css", {{"accept-encoding", "br"}, {"range", "bytes=10-109"}});
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.headers["content-encoding"], "br");
  EXPECT_EQ(part.headers["content-range"], "bytes 10-109/" + std::to_string(br.size()));
  EXPECT_EQ(part.body, br.substr(10, 100));
  auto tail = get("/css/style.css", {{"accept-encoding", "gzip"}, {"range", "bytes=-20"}});
  EXPECT_EQ(tail.status, 206);
  EXPECT_EQ(tail.body, gz.substr(gz.size() - 20));
  auto past = get("/css/style.css", {{"accept-encoding", "br"},
                                     {"range", "bytes=" + std::to_string(br.size()) + "-"}});
  EXPECT_EQ(past.status, 416);
  EXPECT_EQ(past.headers["content-range"], "bytes */" + std::to_string(br.size()));

  // If-None-Match per variant: the br ETag is fresh for a br request only.
  auto fresh =
      get("/css/style.css", {{"accept-encoding", "br"}, {"if-none-match", rb.headers["etag"]}});
  EXPECT_EQ(fresh.status, 304);
  EXPECT_EQ(fresh.headers["vary"], "Accept-Encoding");
  EXPECT_EQ(fresh.headers["etag"], rb.headers["etag"]);
  EXPECT_EQ(
      get("/css/style.css", {{"accept-encoding", "gzip"}, {"if-none-match", rb.headers["etag"]}})
          .status,
      200);
  EXPECT_EQ(get("/css/style.css", {{"if-none-match", ri.headers["etag"]}}).status, 304);

  // HEAD: the variant's head, nothing fetched.
  auto head = get("/css/style.css", {{"accept-encoding", "br"}}, "HEAD");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers["content-length"], std::to_string(br.size()));
  EXPECT_EQ(head.headers["content-encoding"], "br");
  EXPECT_TRUE(head.body.empty());

  // The static site's 404 page comes compressed too, with its status.
  auto missing = get("/nowhere", {{"accept-encoding", "br"}});
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.headers["content-encoding"], "br");
  EXPECT_EQ(missing.body, object("404.html.br"));
  // Under the threshold: one representation, no Vary.
  auto home = get("/", {{"accept-encoding", "br"}});
  EXPECT_EQ(home.status, 200);
  EXPECT_EQ(home.headers.count("content-encoding"), 0u);
  EXPECT_EQ(home.headers.count("vary"), 0u);
}

}  // namespace
