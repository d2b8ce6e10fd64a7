// The proxy library on port 0 against a real redis-server and both storage backends (a file
// directory and s3rver), with deployments the test uploads itself.
#include <gtest/gtest.h>

#include <boost/asio.hpp>

#include <fmt/format.h>

#include <cstdlib>
#include <thread>

#include "dp/aws/crypto.hpp"
#include "dp/core/id.hpp"
#include "dp/proto/json.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/proxy/proxy.hpp"
#include "dp/redis/client.hpp"
#include "dp/siteconfig/siteconfig.hpp"
#include "dp/state/protection.hpp"
#include "dp/state/records.hpp"
#include "dp/storage/object_store.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"
#include "dp/test/options.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

struct reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// One HTTP/1.1 request with `Connection: close`, written byte for byte as given (the harness
// client adds its own Host, and hostile targets must reach the server untouched).
reply fetch(uint16_t port, const std::string& host, const std::string& target,
            std::map<std::string, std::string> headers = {}, const std::string& method = "GET") {
  asio::io_context ioc;
  asio::ip::tcp::socket sock(ioc);
  sock.connect({asio::ip::make_address("127.0.0.1"), port});
  std::string req =
      fmt::format("{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", method, target, host);
  for (const auto& [k, v] : headers) {
    req += fmt::format("{}: {}\r\n", k, v);
  }
  req += "\r\n";
  asio::write(sock, asio::buffer(req));
  std::string raw;
  boost::system::error_code ec;
  asio::read(sock, asio::dynamic_buffer(raw), ec);
  reply r;
  size_t end = raw.find("\r\n\r\n");
  if (end == raw.npos) {
    return r;
  }
  r.body = raw.substr(end + 4);
  std::string_view head(raw.data(), end);
  r.status = std::stoi(std::string(head.substr(9, 3)));
  for (size_t pos = head.find("\r\n"); pos != head.npos;) {
    size_t next = head.find("\r\n", pos + 2);
    std::string_view line = head.substr(pos + 2, next == head.npos ? head.npos : next - pos - 2);
    size_t colon = line.find(':');
    std::string name(line.substr(0, colon));
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    r.headers[name] = std::string(line.substr(line.find_first_not_of(' ', colon + 1)));
    pos = next;
  }
  return r;
}

using dp::test::eventually;
using dp::test::run_async;

struct file {
  std::string path;
  std::string content;
  std::string content_type;
  std::string cache_control = "public, max-age=60";
};

std::string big_content() {
  std::string s(2 << 20, '\0');
  for (size_t i = 0; i < s.size(); ++i) {
    s[i] = static_cast<char>('a' + (i * 7) % 26);
  }
  return s;
}

// Above the sendfile threshold and below the cache's object limit: cached, and sent with sendfile.
std::string mid_content() {
  std::string s(100 << 10, '\0');
  for (size_t i = 0; i < s.size(); ++i) {
    s[i] = static_cast<char>('A' + (i * 11) % 26);
  }
  return s;
}

std::vector<file> site_files() {
  return {{"index.html", "<h1>home</h1>", "text/html; charset=utf-8"},
          {"about.html", "<h1>about</h1>", "text/html; charset=utf-8"},
          {"docs/index.html", "<h1>docs</h1>", "text/html; charset=utf-8"},
          {"404.html", "<h1>custom 404</h1>", "text/html; charset=utf-8"},
          {"app.js", "console.log('plain')", "text/javascript; charset=utf-8"},
          {"app.js.br", "BROTLI-BYTES", "application/octet-stream"},
          {"app.js.gz", "GZIP-BYTES", "application/octet-stream"},
          {"style.css", "body{color:red}", "text/css; charset=utf-8"},
          {"mid.bin", mid_content(), "application/octet-stream"},
          {"big.bin", big_content(), "application/octet-stream"}};
}

class proxy_test : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "s3") {
      s3_.emplace();
      auto url = dp::storage::parse_storage_url(s3_->storage_url());
      ASSERT_TRUE(url);
      storage_url_ = *url;
      creds_.access_key = dp::test::s3rver::access_key();
      creds_.secret_key = dp::test::s3rver::secret_key();
      creds_.region = "us-east-1";
    } else {
      storage_url_.kind = dp::storage::storage_url::scheme::file;
      storage_url_.root = dir_.path();
    }
    redis_opts_ = dp::test::redis_options(redis_);
    static_id_ = deploy("site", dp::proto::serve_mode::static_files, site_files(), true);
    spa_id_ = deploy("spa", dp::proto::serve_mode::spa, site_files(), true);

    dp::proxy::options o;
    o.base_domain = "example.test";
    o.redis = redis_opts_;
    o.storage = storage_url_;
    o.credentials = creds_;
    o.access_log = false;
    // No TTL backstop within a test: a switch the proxy sees came through the events channel.
    o.alias_ttl = std::chrono::hours(1);
    proxy_.emplace(ioc_, o);
    auto started = proxy_->start();
    ASSERT_TRUE(started) << started.error().message;
    thread_ = std::thread([this] { proxy_->run(); });
  }

  void TearDown() override {
    if (proxy_) {
      proxy_->stop(1s, [this] { ioc_.stop(); });
    }
    if (thread_.joinable()) {
      thread_.join();
    }
  }

  // Uploads files (and the manifest unless told not to), records the deployment, then points
  // alias:<project> at it unless `live` is false (a deployment only a promote serves).
  // `rules`: the compiled site rules (siteconfig's JSON form) to upload beside the manifest.
  std::string deploy(const std::string& project, dp::proto::serve_mode mode,
                     const std::vector<file>& files, bool with_manifest, bool live = true,
                     const std::string& rules = "") {
    dp::proto::deployment d;
    d.id = dp::new_deployment_id();
    d.project = project;
    d.status = dp::proto::deployment_status::ready;
    d.created_at = 1764000009000;
    d.alias = project + "-" + std::string(dp::short_id(d.id));
    run_async([&](asio::io_context& ioc) -> asio::awaitable<void> {
      auto st = dp::storage::open_storage(ioc.get_executor(), storage_url_, creds_);
      EXPECT_TRUE(st);
      if (!st) {
        co_return;
      }
      dp::proto::manifest m;
      m.deployment_id = d.id;
      m.created_at = d.created_at;
      m.mode = mode;
      for (const auto& f : files) {
        dp::storage::put_options po;
        po.content_type = f.content_type;
        // Named arguments: g++ 12 miscompiles temporaries inside a co_await expression.
        std::string key = dp::proto::output_key(d.id, f.path);
        std::string content = f.content;
        auto put = co_await (*st)->put_buffer(std::move(key), std::move(content), std::move(po));
        EXPECT_TRUE(put) << put.error().message;
        m.files[f.path] = dp::proto::manifest_entry{static_cast<int64_t>(f.content.size()),
                                                    dp::aws::sha256_hex(f.content), f.content_type,
                                                    f.cache_control};
      }
      if (!rules.empty()) {
        std::string key = dp::proto::output_key(d.id, dp::proto::rules_name);
        std::string text = rules;
        dp::storage::put_options po;
        auto put = co_await (*st)->put_buffer(std::move(key), std::move(text), std::move(po));
        EXPECT_TRUE(put);
        m.rules = std::string(dp::proto::rules_name);
      }
      if (with_manifest) {
        std::string key = dp::proto::manifest_key(d.id);
        std::string text = dp::proto::to_json(m);
        dp::storage::put_options po;
        auto put = co_await (*st)->put_buffer(std::move(key), std::move(text), std::move(po));
        EXPECT_TRUE(put);
      }
      dp::redis::client redis(ioc.get_executor(), redis_opts_);
      dp::state::records records(redis, dp::proto::keys{});
      // The record (go-live needs one) names the deployment's alias "<project>--<id>"; these
      // tests serve it under the older "<project>-<id>" as well.
      auto legacy_alias = d.alias;
      EXPECT_TRUE(co_await records.record_deployment(d));
      d.alias = legacy_alias;
      if (live) {
        EXPECT_TRUE(co_await records.go_live(d));
      }
      redis.close();
    });
    return d.id;
  }

  void promote(const std::string& label, const std::string& id) {
    run_async([&](asio::io_context& ioc) -> asio::awaitable<void> {
      dp::redis::client redis(ioc.get_executor(), redis_opts_);
      dp::state::records records(redis, dp::proto::keys{});
      auto r = co_await records.set_alias(label, label, id);
      EXPECT_TRUE(r);
      redis.close();
    });
  }

  // A counter or gauge from the admin listener's /metrics, e.g. `dp_proxy_cache_hits_total`.
  uint64_t metric(const std::string& series) {
    auto text = fetch(proxy_->admin_port(), "127.0.0.1", "/metrics").body;
    size_t at = text.find("\n" + series + " ");
    EXPECT_NE(at, std::string::npos) << series;
    return at == std::string::npos ? 0 : std::stoull(text.substr(at + series.size() + 2));
  }

  reply get(const std::string& target, std::map<std::string, std::string> headers = {},
            const std::string& host = "site.example.test") {
    return fetch(proxy_->port(), host, target, std::move(headers));
  }

  dp::test::redis_server redis_;
  std::optional<dp::test::s3rver> s3_;
  dp::test::temp_dir dir_{"dp-proxy"};
  dp::storage::storage_url storage_url_;
  dp::aws::credentials creds_;
  dp::redis::options redis_opts_;
  std::string static_id_;
  std::string spa_id_;
  asio::io_context ioc_;
  std::optional<dp::proxy::proxy> proxy_;
  std::thread thread_;
};

TEST_P(proxy_test, serves_files_with_their_headers) {
  auto r = get("/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "<h1>home</h1>");
  EXPECT_EQ(r.header("content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(r.header("cache-control"), "public, max-age=60");
  EXPECT_EQ(r.header("etag"), "\"" + dp::aws::sha256_hex("<h1>home</h1>") + "\"");
  EXPECT_EQ(r.header("last-modified"), "Mon, 24 Nov 2025 16:00:09 GMT");
  EXPECT_EQ(r.header("x-content-type-options"), "nosniff");
  auto css = get("/style.css");
  EXPECT_EQ(css.status, 200);
  EXPECT_EQ(css.header("content-type"), "text/css; charset=utf-8");
  // The second read of a small file comes from the cache, with the same bytes.
  EXPECT_EQ(get("/style.css").body, "body{color:red}");
  auto big = get("/big.bin");
  EXPECT_EQ(big.status, 200);
  EXPECT_TRUE(big.body == big_content());
  auto head = fetch(proxy_->port(), "site.example.test", "/big.bin", {}, "HEAD");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("content-length"), std::to_string(2 << 20));
  EXPECT_TRUE(head.body.empty());
  // The immutable alias, with an upper-case host and a port.
  auto immutable =
      get("/about", {}, "SITE-" + std::string(dp::short_id(static_id_)) + ".Example.Test:8000");
  EXPECT_EQ(immutable.status, 200);
  EXPECT_EQ(immutable.body, "<h1>about</h1>");
}

TEST_P(proxy_test, conditional_requests) {
  auto first = get("/style.css");
  auto etag = first.header("etag");
  auto r = get("/style.css", {{"If-None-Match", etag}});
  EXPECT_EQ(r.status, 304);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(r.header("etag"), etag);
  EXPECT_EQ(get("/style.css", {{"If-None-Match", "\"other\", W/" + etag}}).status, 304);
  EXPECT_EQ(get("/style.css", {{"If-None-Match", "\"other\""}}).status, 200);
  EXPECT_EQ(get("/style.css", {{"If-Modified-Since", "Mon, 24 Nov 2025 16:00:09 GMT"}}).status,
            304);
  EXPECT_EQ(get("/style.css", {{"If-Modified-Since", "Mon, 24 Nov 2025 15:00:00 GMT"}}).status,
            200);
}

TEST_P(proxy_test, byte_ranges) {
  auto r = get("/big.bin", {{"Range", "bytes=100-199"}});
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.header("content-range"), fmt::format("bytes 100-199/{}", 2 << 20));
  EXPECT_EQ(r.body, big_content().substr(100, 100));
  auto tail = get("/big.bin", {{"Range", "bytes=-10"}});
  EXPECT_EQ(tail.status, 206);
  EXPECT_EQ(tail.body, big_content().substr((2 << 20) - 10));
  auto small = get("/style.css", {{"Range", "bytes=5-"}});
  EXPECT_EQ(small.status, 206);
  EXPECT_EQ(small.body, "color:red}");
  auto bad = get("/style.css", {{"Range", "bytes=100-"}});
  EXPECT_EQ(bad.status, 416);
  EXPECT_EQ(bad.header("content-range"), "bytes */15");
  auto multi = get("/style.css", {{"Range", "bytes=0-1,3-4"}});
  EXPECT_EQ(multi.status, 200);
  EXPECT_EQ(multi.body, "body{color:red}");
}

TEST_P(proxy_test, methods_other_than_get_and_head) {
  for (const std::string& m : std::vector<std::string>{"POST", "PUT", "DELETE", "OPTIONS"}) {
    auto r = fetch(proxy_->port(), "site.example.test", "/", {{"Content-Length", "0"}}, m);
    EXPECT_EQ(r.status, 405) << m;
    EXPECT_EQ(r.header("allow"), "GET, HEAD");
  }
}

TEST_P(proxy_test, static_and_spa_not_found) {
  auto r = get("/no/such/page");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, "<h1>custom 404</h1>");
  auto spa = get("/dashboard/settings", {}, "spa.example.test");
  EXPECT_EQ(spa.status, 200);
  EXPECT_EQ(spa.body, "<h1>home</h1>");
  auto asset = get("/missing.js", {}, "spa.example.test");
  EXPECT_EQ(asset.status, 404);
}

TEST_P(proxy_test, clean_urls_and_redirects) {
  EXPECT_EQ(get("/about").body, "<h1>about</h1>");
  auto r = get("/about.html?x=1&y=2");
  EXPECT_EQ(r.status, 308);
  EXPECT_EQ(r.header("location"), "/about?x=1&y=2");
  auto dir = get("/docs");
  EXPECT_EQ(dir.status, 308);
  EXPECT_EQ(dir.header("location"), "/docs/");
  EXPECT_EQ(get("/docs/").body, "<h1>docs</h1>");
}

// SvelteKit and Next.js static exports write blog.html beside a folder blog/ without an index.
TEST_P(proxy_test, page_beside_a_folder_without_an_index) {
  deploy("kit", dp::proto::serve_mode::static_files,
         {{"index.html", "<h1>home</h1>", "text/html; charset=utf-8"},
          {"blog.html", "<h1>blog</h1>", "text/html; charset=utf-8"},
          {"blog/first-post.html", "<h1>first</h1>", "text/html; charset=utf-8"}},
         true);
  EXPECT_EQ(get("/blog", {}, "kit.example.test").body, "<h1>blog</h1>");
  auto slash = get("/blog/?page=2", {}, "kit.example.test");
  EXPECT_EQ(slash.status, 308);
  EXPECT_EQ(slash.header("location"), "/blog?page=2");
  EXPECT_EQ(get("/blog/first-post", {}, "kit.example.test").body, "<h1>first</h1>");
}

// A deployment the retention policy pruned: its files are gone, its record says so, and its
// immutable URL answers 410 Gone, whether or not the proxy had its manifest cached.
TEST_P(proxy_test, a_pruned_deployment_is_gone) {
  std::vector<file> files{{"index.html", "<h1>old</h1>", "text/html; charset=utf-8"},
                          {"app.js", "console.log(1)", "text/javascript"}};
  auto seen = deploy("old", dp::proto::serve_mode::static_files, files, true, false);
  auto unseen = deploy("old", dp::proto::serve_mode::static_files, files, true, false);
  auto host = [](const std::string& id) {
    return dp::immutable_alias("old", id) + ".example.test";
  };
  EXPECT_EQ(get("/", {}, host(seen)).body, "<h1>old</h1>");  // its manifest is cached now
  run_async([&](asio::io_context& ioc) -> asio::awaitable<void> {
    dp::redis::client redis(ioc.get_executor(), redis_opts_);
    dp::state::records records(redis, dp::proto::keys{});
    auto st = dp::storage::open_storage(ioc.get_executor(), storage_url_, creds_);
    EXPECT_TRUE(st);
    for (const auto& id : {seen, unseen}) {
      auto marked = co_await records.mark_pruned(id, "old");
      EXPECT_TRUE(marked && *marked);
      if (st) {
        std::string prefix = dp::proto::output_prefix(id);
        EXPECT_TRUE(co_await (*st)->remove_prefix(std::move(prefix)));
      }
    }
    redis.close();
  });
  auto r = get("/app.js", {}, host(seen));
  EXPECT_EQ(r.status, 410);
  EXPECT_EQ(r.body.find(seen), std::string::npos) << r.body;
  EXPECT_EQ(get("/", {}, host(unseen)).status, 410);
}

TEST_P(proxy_test, precompressed_variants) {
  auto br = get("/app.js", {{"Accept-Encoding", "gzip, br"}});
  EXPECT_EQ(br.status, 200);
  EXPECT_EQ(br.body, "BROTLI-BYTES");
  EXPECT_EQ(br.header("content-encoding"), "br");
  EXPECT_EQ(br.header("content-type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(br.header("vary"), "Accept-Encoding");
  auto gz = get("/app.js", {{"Accept-Encoding", "gzip, br;q=0"}});
  EXPECT_EQ(gz.body, "GZIP-BYTES");
  EXPECT_EQ(gz.header("content-encoding"), "gzip");
  EXPECT_NE(gz.header("etag"), br.header("etag"));
  auto plain = get("/app.js");
  EXPECT_EQ(plain.body, "console.log('plain')");
  EXPECT_EQ(plain.header("content-encoding"), "");
  EXPECT_EQ(plain.header("vary"), "Accept-Encoding");
}

TEST_P(proxy_test, hostile_requests) {
  for (const std::string& t : std::vector<std::string>{
           "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/docs%2f..%2f404.html", "/a%5c..%5cb",
           "/a%00.html", "/%zz", "/" + std::string(1100, 'a')}) {
    EXPECT_EQ(get(t).status, 400) << t;
  }
  EXPECT_EQ(get("/", {}, "bad_host!.example.test").status, 400);
  // The absolute-form's host wins over the Host header (RFC 9112 3.2.2).
  EXPECT_EQ(get("http://site.example.test/about", {}, "unknown.example.test").body,
            "<h1>about</h1>");
  EXPECT_EQ(get("http://unknown.example.test/about").status, 404);
  EXPECT_EQ(get("http://user@site.example.test/").status, 400);
  EXPECT_EQ(get("/", {}, "unknown.example.test").status, 404);
  EXPECT_EQ(get("/", {}, "a.b.example.test").status, 404);
  EXPECT_EQ(get("/", {}, "127.0.0.1").status, 404);
}

TEST_P(proxy_test, custom_domain) {
  ASSERT_TRUE(dp::test::redis_command(redis_.port(), {"SET", "dp:domain:www.shop.test", "spa"}));
  auto r = get("/", {}, "www.shop.test");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "<h1>home</h1>");
  EXPECT_EQ(get("/", {}, "www.other.test").status, 404);
}

// The alias TTL is an hour here, so only the event can make the switch visible. How fast it is
// (well under 100 ms) is measured by bench/proxy_bench.sh.
TEST_P(proxy_test, promote_takes_effect_through_the_event) {
  auto other = deploy("site", dp::proto::serve_mode::static_files,
                      {{"index.html", "<h1>next</h1>", "text/html; charset=utf-8"}}, true, false);
  ASSERT_EQ(get("/").body, "<h1>home</h1>");  // cached now
  promote("site", other);
  EXPECT_TRUE(eventually([&] { return get("/").body == "<h1>next</h1>"; }));
  promote("site", static_id_);  // a rollback is the same event
  EXPECT_TRUE(eventually([&] { return get("/").body == "<h1>home</h1>"; }));
  EXPECT_EQ(get("/").body, "<h1>home</h1>");
}

// Resolution happens against the manifest: a path it does not list never becomes a storage
// request, whatever the mode answers for it.
TEST_P(proxy_test, unknown_paths_never_reach_storage) {
  // Warm up: both manifests and the files their modes answer with: the custom 404 page, the
  // SPA's index.html, and its 404 page for a missing asset.
  ASSERT_EQ(get("/nothing-here").status, 404);
  ASSERT_EQ(get("/nothing-here", {}, "spa.example.test").status, 200);
  ASSERT_EQ(get("/nothing-here.js", {}, "spa.example.test").status, 404);
  uint64_t objects = metric("dp_proxy_storage_gets_total{what=\"object\"}");
  uint64_t manifests = metric("dp_proxy_storage_gets_total{what=\"manifest\"}");
  EXPECT_EQ(manifests, 2u);
  for (const char* host : {"site.example.test", "spa.example.test"}) {
    for (const char* t : {"/missing.js", "/docs/missing", "/assets/app.00000000.css",
                          "/.deployment.json", "/app.js.br/x", "/index.html/", "/a/b/c/d/e",
                          "/wp-login.php?x=1", "/docs/index.html.gz"}) {
      auto r = get(t, {}, host);
      EXPECT_TRUE(r.status == 404 || r.status == 200 || r.status == 301 || r.status == 308)
          << host << t << " " << r.status;
    }
  }
  EXPECT_EQ(get("/", {}, "unknown.example.test").status, 404);
  EXPECT_EQ(metric("dp_proxy_storage_gets_total{what=\"object\"}"), objects);
  EXPECT_EQ(metric("dp_proxy_storage_gets_total{what=\"manifest\"}"), manifests);
}

// A cached file above the sendfile threshold: from S3 it is fetched once and then sent from the
// cache's memfd (ranges too); from the file store it is sent from the store's own file.
TEST_P(proxy_test, larger_files_are_sent_with_sendfile) {
  const std::string mid = mid_content();
  auto first = get("/mid.bin");
  EXPECT_EQ(first.status, 200);
  EXPECT_TRUE(first.body == mid);
  uint64_t objects = metric("dp_proxy_storage_gets_total{what=\"object\"}");
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(get("/mid.bin").body == mid);
  }
  auto part = get("/mid.bin", {{"Range", "bytes=50000-50099"}});
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.body, mid.substr(50000, 100));
  auto tail = get("/mid.bin", {{"Range", "bytes=-7"}});
  EXPECT_EQ(tail.body, mid.substr(mid.size() - 7));
  auto head = fetch(proxy_->port(), "site.example.test", "/mid.bin", {}, "HEAD");
  EXPECT_EQ(head.header("content-length"), std::to_string(mid.size()));
  EXPECT_TRUE(head.body.empty());
  uint64_t after = metric("dp_proxy_storage_gets_total{what=\"object\"}");
  if (GetParam() == "s3") {
    EXPECT_EQ(after, objects);  // all from the cache
  } else {
    EXPECT_EQ(after, objects + 5);  // a sendfile from the store's file for each GET
  }
}

// A page loaded before a redeploy asks for its old fingerprinted asset afterwards: the previous
// deployment serves it (immutable files only, and only for a while); anything else is the new
// deployment's answer.
TEST_P(proxy_test, previous_deployment_serves_old_fingerprinted_assets_after_a_switch) {
  const std::string immutable = "public, max-age=31536000, immutable";
  deploy("skew", dp::proto::serve_mode::static_files,
         {{"index.html", "<script src=/assets/app.1a2b3c4d.js>", "text/html"},
          {"assets/app.1a2b3c4d.js", "v1()", "text/javascript", immutable},
          {"old-page.html", "<h1>old</h1>", "text/html"}},
         true);
  auto host = "skew.example.test";
  ASSERT_EQ(get("/", {}, host).status, 200);  // v1 is what this proxy served
  deploy("skew", dp::proto::serve_mode::static_files,
         {{"index.html", "<script src=/assets/app.5e6f7a8b.js>", "text/html"},
          {"assets/app.5e6f7a8b.js", "v2()", "text/javascript", immutable}},
         true);
  EXPECT_TRUE(
      eventually([&] { return get("/", {}, host).body.find("5e6f7a8b") != std::string::npos; }));
  EXPECT_EQ(get("/assets/app.5e6f7a8b.js", {}, host).body, "v2()");
  auto old = get("/assets/app.1a2b3c4d.js", {}, host);
  EXPECT_EQ(old.status, 200);
  EXPECT_EQ(old.body, "v1()");
  EXPECT_EQ(old.headers["cache-control"], immutable);
  // Not immutable: the new deployment's 404 stands.
  EXPECT_EQ(get("/old-page", {}, host).status, 404);
  EXPECT_EQ(get("/old-page.html", {}, host).status, 404);
  EXPECT_EQ(get("/assets/app.00000000.js", {}, host).status, 404);
}

TEST_P(proxy_test, deployment_without_manifest_is_not_served) {
  deploy("half", dp::proto::serve_mode::static_files,
         {{"index.html", "<h1>half</h1>", "text/html; charset=utf-8"}}, false);
  auto r = get("/", {}, "half.example.test");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body.find("half"), std::string::npos);
}

// A file the manifest lists but storage lost: a generic 5xx page, nothing of the key, the
// deployment or the storage's own error.
TEST_P(proxy_test, a_lost_object_is_a_generic_error) {
  auto id = deploy("lost", dp::proto::serve_mode::static_files,
                   {{"index.html", "<h1>lost</h1>", "text/html; charset=utf-8"},
                    {"app.js", "console.log(1)", "text/javascript"}},
                   true);
  run_async([&](asio::io_context& ioc) -> asio::awaitable<void> {
    auto st = dp::storage::open_storage(ioc.get_executor(), storage_url_, creds_);
    EXPECT_TRUE(st);
    if (st) {
      std::string key = dp::proto::output_key(id, "app.js");
      EXPECT_TRUE(co_await (*st)->remove(std::move(key)));
    }
  });
  auto r = get("/app.js", {}, "lost.example.test");
  EXPECT_GE(r.status, 500);
  EXPECT_LT(r.status, 600);
  for (const char* secret : {"__outputs", "app.js", "NoSuchKey", "No such file", "bucket"}) {
    EXPECT_EQ(r.body.find(secret), std::string::npos) << secret << " in " << r.body;
  }
  EXPECT_EQ(r.body.find(id), std::string::npos) << r.body;
  EXPECT_EQ(get("/", {}, "lost.example.test").status, 200);
}

// The project setting: previews (here its branch alias) ask for Basic credentials, production
// does not until the scope is "all"; a verified credential is remembered, a wrong one is not.
TEST_P(proxy_test, protection_asks_previews_for_basic_credentials) {
  dp::proto::project p;
  p.name = "guarded";
  p.protection = dp::proto::protection{dp::proto::protection_scope::previews, "alice",
                                       *dp::state::hash_password("s3cret")};
  run_async([&](asio::io_context& ioc) -> asio::awaitable<void> {
    dp::redis::client redis(ioc.get_executor(), redis_opts_);
    dp::state::records records(redis, dp::proto::keys{});
    EXPECT_TRUE(co_await records.save_project(p));
    redis.close();
  });
  auto id = deploy("guarded", dp::proto::serve_mode::static_files, site_files(), true);
  promote("guarded--feature", id);
  const std::string preview = "guarded--feature.example.test";
  // "alice:s3cret", "alice:wrong", "bob:s3cret"
  const std::string good = "Basic YWxpY2U6czNjcmV0";
  EXPECT_EQ(get("/", {}, "guarded.example.test").status, 200);
  auto r = get("/", {}, preview);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.header("www-authenticate"), "Basic realm=\"guarded--feature\", charset=\"UTF-8\"");
  EXPECT_EQ(r.header("cache-control"), "no-store");
  EXPECT_EQ(get("/", {{"Authorization", "Basic YWxpY2U6d3Jvbmc="}}, preview).status, 401);
  EXPECT_EQ(get("/", {{"Authorization", "Basic Ym9iOnMzY3JldA=="}}, preview).status, 401);
  EXPECT_EQ(get("/", {{"Authorization", "Bearer x"}}, preview).status, 401);
  for (int i = 0; i < 2; ++i) {  // the second is answered from the verified credentials
    auto ok = get("/", {{"Authorization", good}}, preview);
    EXPECT_EQ(ok.status, 200);
    EXPECT_EQ(ok.body, "<h1>home</h1>");
  }
}

// What the api-server does after a change no alias event names: write it, then publish a route
// event. The lookup TTL is an hour here, so only the event can make each change visible.
TEST_P(proxy_test, protection_domains_and_deletion_take_effect_through_route_events) {
  auto with_records = [&](auto f) {
    run_async([&](asio::io_context& ioc) -> asio::awaitable<void> {
      dp::redis::client redis(ioc.get_executor(), redis_opts_);
      dp::state::records records(redis, dp::proto::keys{});
      co_await f(records);
      redis.close();
    });
  };
  dp::proto::project p;
  p.name = "open";
  with_records([&](dp::state::records& r) -> asio::awaitable<void> {
    EXPECT_TRUE(co_await r.save_project(p));
  });
  auto id = deploy("open", dp::proto::serve_mode::static_files, site_files(), true);
  promote("open--feature", id);
  const std::string preview = "open--feature.example.test";
  ASSERT_EQ(get("/", {}, preview).status, 200);          // "not protected" is cached now
  ASSERT_EQ(get("/", {}, "www.open.test").status, 404);  // and "no such domain"

  p.protection = dp::proto::protection{dp::proto::protection_scope::previews, "alice",
                                       *dp::state::hash_password("s3cret")};
  with_records([&](dp::state::records& r) -> asio::awaitable<void> {
    EXPECT_TRUE(co_await r.save_project(p));
    dp::proto::route_event e{.project = "open"};
    EXPECT_TRUE(co_await r.publish_routes(std::move(e)));
  });
  EXPECT_TRUE(eventually([&] { return get("/", {}, preview).status == 401; }));
  EXPECT_EQ(get("/", {}, "open.example.test").status, 200);  // production is not a preview

  ASSERT_TRUE(dp::test::redis_command(redis_.port(), {"SET", "dp:domain:www.open.test", "open"}));
  with_records([&](dp::state::records& r) -> asio::awaitable<void> {
    dp::proto::route_event e{.project = "open", .domains = {"www.open.test"}};
    EXPECT_TRUE(co_await r.publish_routes(std::move(e)));
  });
  EXPECT_TRUE(eventually([&] { return get("/", {}, "www.open.test").status == 200; }));

  with_records([&](dp::state::records& r) -> asio::awaitable<void> {
    EXPECT_TRUE(co_await r.delete_project("open"));
    dp::proto::route_event e{.project = "open", .aliases = {"open"}};
    EXPECT_TRUE(co_await r.publish_routes(std::move(e)));
  });
  EXPECT_TRUE(eventually([&] { return get("/", {}, "open.example.test").status == 404; }));
  EXPECT_EQ(get("/", {}, "www.open.test").status, 404);  // its label no longer resolves
}

// The site's own rules, compiled as the runner does: redirects keep the query, a file shadows a
// rule without '!', a 200 rewrite serves another path of the deployment under the same URL,
// header rules reach every response (200, 304, 404, redirects, 401), Basic-Auth guards a path.
TEST_P(proxy_test, site_rules_redirect_rewrite_and_add_headers) {
  dp::siteconfig::sources src;
  src.redirects =
      "/old /about 301\n"
      "/blog/* /posts/:splat\n"
      "/app/* /index.html 200\n"
      "/style.css /about 301\n"
      "/app.js /about 302!\n";
  src.headers =
      "/*\n"
      "  X-Frame-Options: DENY\n"
      "/style.css\n"
      "  Cache-Control: public, max-age=5\n"
      "  ! X-Content-Type-Options\n"
      "/members/*\n"
      "  Basic-Auth: admin:pw\n";
  auto compiled = dp::siteconfig::compile_sources(src, {});
  for (const auto& d : compiled.diagnostics) {
    ADD_FAILURE() << dp::siteconfig::to_string(d);
  }
  auto id = deploy("ruled", dp::proto::serve_mode::static_files, site_files(), true, true,
                   dp::siteconfig::to_json(compiled.rules));
  ASSERT_FALSE(id.empty());
  const std::string host = "ruled.example.test";
  auto r = get("/old?x=1&y", {}, host);
  EXPECT_EQ(r.status, 301);
  EXPECT_EQ(r.header("location"), "/about?x=1&y");
  EXPECT_EQ(r.header("x-frame-options"), "DENY");
  r = get("/blog/2024/post", {}, host);
  EXPECT_EQ(r.status, 302);
  EXPECT_EQ(r.header("location"), "/posts/2024/post");
  r = get("/app/deep/link", {}, host);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "<h1>home</h1>");
  EXPECT_EQ(r.header("x-frame-options"), "DENY");
  // A file shadows a rule without '!'; '!' forces it.
  r = get("/style.css", {}, host);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "body{color:red}");
  EXPECT_EQ(r.header("cache-control"), "public, max-age=5");
  EXPECT_EQ(r.header("x-content-type-options"), "");
  EXPECT_EQ(r.header("x-frame-options"), "DENY");
  auto etag = r.header("etag");
  r = get("/style.css", {{"If-None-Match", etag}}, host);
  EXPECT_EQ(r.status, 304);
  EXPECT_EQ(r.header("cache-control"), "public, max-age=5");
  EXPECT_EQ(r.header("x-frame-options"), "DENY");
  EXPECT_EQ(get("/app.js", {}, host).status, 302);
  r = get("/nothing-here", {}, host);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, "<h1>custom 404</h1>");
  EXPECT_EQ(r.header("x-frame-options"), "DENY");
  // Basic-Auth: 401 without, through with (a missing page then, 404).
  r = get("/members/area", {}, host);
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.header("www-authenticate").find("Basic realm="), std::string::npos);
  EXPECT_EQ(r.header("x-frame-options"), "DENY");
  EXPECT_EQ(get("/members/area", {{"Authorization", "Basic YWRtaW46bm8="}}, host).status, 401);
  for (int i = 0; i < 2; ++i) {  // admin:pw, verified once then remembered
    EXPECT_EQ(get("/members/area", {{"Authorization", "Basic YWRtaW46cHc="}}, host).status, 404);
  }
  // A site without rules is untouched.
  EXPECT_EQ(get("/old").status, 404);
}

// Wrong Basic-Auth guesses cost a password hash each: after options.auth_failures (10) from one
// address in a window, 429 with Retry-After and the JSON error, even for right credentials not
// verified before; credentials verified before still pass, with no hash to pay.
TEST_P(proxy_test, failed_basic_auth_guesses_are_limited_per_client) {
  dp::siteconfig::sources src;
  src.headers = "/members/*\n  Basic-Auth: admin:pw guest:pw2\n  X-Frame-Options: DENY\n";
  auto compiled = dp::siteconfig::compile_sources(src, {});
  ASSERT_TRUE(compiled.diagnostics.empty());
  deploy("limited", dp::proto::serve_mode::static_files, site_files(), true, true,
         dp::siteconfig::to_json(compiled.rules));
  const std::string host = "limited.example.test";
  const std::string admin = "Basic YWRtaW46cHc=";  // admin:pw
  const std::string guest = "Basic Z3Vlc3Q6cHcy";  // guest:pw2
  const std::string wrong = "Basic YWRtaW46bm8=";  // admin:no
  EXPECT_EQ(get("/members/a", {{"Authorization", admin}}, host).status, 404);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(get("/members/a", {{"Authorization", wrong}}, host).status, 401) << i;
  }
  for (const auto& who : {wrong, guest}) {
    auto r = get("/members/a", {{"Authorization", who}}, host);
    EXPECT_EQ(r.status, 429);
    int retry = std::atoi(r.header("retry-after").c_str());
    EXPECT_GE(retry, 1);
    EXPECT_LE(retry, 60);
    EXPECT_NE(r.body.find("\"code\":\"too_many_requests\""), std::string::npos) << r.body;
    EXPECT_EQ(r.header("cache-control"), "no-store");
  }
  EXPECT_EQ(get("/members/a", {{"Authorization", admin}}, host).status, 404);
  EXPECT_EQ(get("/members/a", {}, host).status, 401);
}

// vercel.json's trailingSlash: false: "/docs/" redirects to "/docs", which serves
// docs/index.html instead of the proxy's own redirect back to "/docs/" (a loop otherwise).
TEST_P(proxy_test, trailing_slash_rule_does_not_loop_with_clean_urls) {
  dp::siteconfig::sources src;
  src.vercel_json = R"({"trailingSlash": false})";
  auto compiled = dp::siteconfig::compile_sources(src, {});
  ASSERT_TRUE(compiled.diagnostics.empty());
  deploy("slashless", dp::proto::serve_mode::static_files, site_files(), true, true,
         dp::siteconfig::to_json(compiled.rules));
  const std::string host = "slashless.example.test";
  auto r = get("/docs/", {}, host);
  EXPECT_EQ(r.status, 308);
  EXPECT_EQ(r.header("location"), "/docs");
  r = get("/docs", {}, host);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "<h1>docs</h1>");
}

TEST_P(proxy_test, metrics_and_health) {
  get("/");
  get("/style.css");
  get("/style.css");
  auto m = fetch(proxy_->admin_port(), "127.0.0.1", "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("dp_proxy_requests_total{status=\"200\"} 3"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("dp_proxy_cache_hits_total 1"), std::string::npos);
  EXPECT_NE(m.body.find("dp_proxy_request_duration_seconds_count 3"), std::string::npos);
  EXPECT_EQ(fetch(proxy_->admin_port(), "127.0.0.1", "/healthz").status, 200);
}

INSTANTIATE_TEST_SUITE_P(backends, proxy_test, ::testing::Values("file", "s3"),
                         [](const auto& info) { return info.param; });

}  // namespace
