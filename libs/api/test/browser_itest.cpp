// What a web page in the user's browser can make the API do (issue 14): each attack is its own
// test against a real server. A page can send a cross-site POST with a "simple" content type
// (no CORS preflight), open a WebSocket to any origin, and, through DNS rebinding, reach the
// loopback API under its own host name.
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>

#include "api_itest_support.hpp"
#include "dp/proto/hash.hpp"

namespace {

using namespace dp::api::test;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

const std::string new_shop = R"({"name":"shop","git_url":"https://example.com/shop.git"})";

// One HTTP/1.1 request written as is (the harness always sends Host: 127.0.0.1); the status.
int raw_status(uint16_t port, const std::string& head, const std::string& body = {}) {
  asio::io_context ioc;
  tcp::socket sock(ioc);
  sock.connect({asio::ip::address_v4::loopback(), port});
  std::string req = head + "Content-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n\r\n" + body;
  asio::write(sock, asio::buffer(req));
  std::string reply;
  boost::system::error_code ec;
  char buf[4096];
  for (;;) {
    size_t n = sock.read_some(asio::buffer(buf), ec);
    if (ec) {
      break;
    }
    reply.append(buf, n);
  }
  if (reply.size() < 12) {
    ADD_FAILURE() << "no response: " << reply;
    return 0;
  }
  return std::stoi(reply.substr(9, 3));
}

class browser : public ::testing::Test {
 protected:
  api_server s_;
  std::string self() const { return "http://127.0.0.1:" + std::to_string(s_.port()); }
  bool shop_exists() { return s_.request("GET", "/v1/projects/shop").status == 200; }
};

// fetch(url, {method: "POST", mode: "no-cors", body: JSON.stringify(...)}) sends text/plain.
TEST_F(browser, text_plain_body_is_refused_with_415) {
  auto r = s_.request("POST", "/v1/projects", new_shop, {{"content-type", "text/plain"}});
  EXPECT_EQ(r.status, 415) << r.body;
  EXPECT_EQ(error_code_of(r), "unsupported_media_type");
  EXPECT_FALSE(shop_exists());
  // The other types a form can send.
  for (std::string type : {"application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                           "text/plain; charset=utf-8"}) {
    EXPECT_EQ(
        s_.request("POST", "/v1/deployments", R"({"project":"shop"})", {{"content-type", type}})
            .status,
        415)
        << type;
  }
  // A body without any content type is not JSON either.
  EXPECT_EQ(raw_status(s_.port(), "POST /v1/projects HTTP/1.1\r\nHost: 127.0.0.1\r\n", new_shop),
            415);
  EXPECT_FALSE(shop_exists());
  // JSON with parameters is JSON.
  EXPECT_EQ(s_.request("POST", "/v1/projects", new_shop,
                       {{"content-type", "Application/JSON; charset=utf-8"}})
                .status,
            201);
}

TEST_F(browser, bodyless_post_needs_no_content_type) {
  // deployctl cancel sends POST .../cancel with no body and no content type.
  ASSERT_EQ(s_.request("POST", "/v1/projects", new_shop).status, 201);
  auto d = body_of(s_.request("POST", "/v1/deployments", R"({"project":"shop"})"));
  std::string id(d.at("id").as_string());
  EXPECT_EQ(s_.request("POST", "/v1/deployments/" + id + "/cancel").status, 202);
}

TEST_F(browser, foreign_origin_is_refused_with_403) {
  auto r = s_.request("POST", "/v1/projects", new_shop, {{"origin", "https://evil.example"}});
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(error_code_of(r), "forbidden");
  EXPECT_FALSE(shop_exists());
  // Origin "null" (a sandboxed frame, a file: page) is foreign too, and so are reads.
  EXPECT_EQ(s_.request("POST", "/v1/projects", new_shop, {{"origin", "null"}}).status, 403);
  EXPECT_EQ(s_.request("GET", "/v1/projects", {}, {{"origin", "https://evil.example"}}).status,
            403);
  // Another port of the same host is another origin.
  EXPECT_EQ(s_.request("POST", "/v1/projects", new_shop, {{"origin", "http://127.0.0.1:1"}}).status,
            403);
  EXPECT_FALSE(shop_exists());
}

TEST_F(browser, same_origin_and_no_origin_pass) {
  // The dashboard, served by the api-server itself: Origin is the request's own host.
  EXPECT_EQ(s_.request("POST", "/v1/projects", new_shop, {{"origin", self()}}).status, 201);
  // deployctl, curl and Node send no Origin.
  EXPECT_EQ(s_.request("POST", "/v1/projects",
                       R"({"name":"blog","git_url":"https://example.com/blog.git"})")
                .status,
            201);
  EXPECT_EQ(s_.request("GET", "/v1/projects/blog", {}, {{"origin", self()}}).status, 200);
  // The page and the API are both on the open routes: no Origin check there.
  EXPECT_EQ(s_.request("GET", "/", {}, {{"origin", "https://evil.example"}}).status, 200);
}

// DNS rebinding: evil.example first resolves to the attacker, then to 127.0.0.1; the page is then
// same-origin with the API, so Origin is no help: the Host header is.
TEST_F(browser, rebinding_host_is_refused_in_local_mode) {
  auto port = std::to_string(s_.port());
  EXPECT_EQ(raw_status(s_.port(), "GET /v1/projects HTTP/1.1\r\nHost: evil.example:" + port +
                                      "\r\nOrigin: http://evil.example:" + port + "\r\n"),
            421);
  EXPECT_EQ(
      raw_status(s_.port(), "GET /v1/projects HTTP/1.1\r\nHost: evil.example:" + port + "\r\n"),
      421);
  EXPECT_EQ(raw_status(s_.port(),
                       "POST /v1/projects HTTP/1.1\r\nHost: evil.example\r\nOrigin: "
                       "http://evil.example\r\nContent-Type: application/json\r\n",
                       new_shop),
            421);
  EXPECT_FALSE(shop_exists());
  // The names of this machine pass, with any port.
  for (const std::string& host :
       std::vector<std::string>{"localhost:" + port, "127.0.0.1:" + port, "[::1]:" + port,
                                "localhost", "LOCALHOST:" + port, "127.0.0.2:80"}) {
    EXPECT_EQ(raw_status(s_.port(), "GET /v1/projects HTTP/1.1\r\nHost: " + host + "\r\n"), 200)
        << host;
  }
}

TEST(browser_token_mode, any_host_name_passes_but_origin_is_checked) {
  // With tokens the API is meant to be reached under any name (a load balancer's); a rebinding
  // page has no token. A token in ?access_token= can be sent cross-site (a WebSocket), so
  // Origin is still checked.
  api_server s({.tokens = {"0123456789abcdef-token"}});
  std::string auth = "Authorization: Bearer 0123456789abcdef-token\r\n";
  EXPECT_EQ(raw_status(s.port(), "GET /v1/projects HTTP/1.1\r\nHost: api.example.com\r\n" + auth),
            200);
  EXPECT_EQ(raw_status(s.port(), "GET /v1/projects HTTP/1.1\r\nHost: api.example.com\r\n" + auth +
                                     "Origin: https://api.example.com\r\n"),
            200);
  EXPECT_EQ(raw_status(s.port(), "GET /v1/projects HTTP/1.1\r\nHost: api.example.com\r\n" + auth +
                                     "Origin: https://evil.example\r\n"),
            403);
}

// Cross-site WebSocket hijacking: a page opens ws://127.0.0.1:9000/... (no CORS for WebSocket)
// and reads the build logs (which may print secrets).
class ws_browser : public browser {
 protected:
  void SetUp() override {
    ASSERT_EQ(s_.request("POST", "/v1/projects", new_shop).status, 201);
    auto d = body_of(s_.request("POST", "/v1/deployments", R"({"project":"shop"})"));
    id_ = std::string(d.at("id").as_string());
  }
  // The handshake's error (none: upgraded).
  boost::system::error_code handshake(const std::optional<std::string>& origin) {
    asio::io_context ioc;
    beast::websocket::stream<tcp::socket> ws(ioc);
    ws.next_layer().connect({asio::ip::address_v4::loopback(), s_.port()});
    ws.set_option(
        beast::websocket::stream_base::decorator([origin](beast::websocket::request_type& req) {
          if (origin) {
            req.set(beast::http::field::origin, *origin);
          }
        }));
    beast::websocket::response_type res;
    boost::system::error_code ec;
    ws.handshake(res, "127.0.0.1:" + std::to_string(s_.port()),
                 "/v1/deployments/" + id_ + "/logs/stream", ec);
    if (!ec) {
      ws.close(beast::websocket::close_code::normal, ec);
      return {};
    }
    status_ = res.result_int();
    return ec ? ec : boost::system::error_code(asio::error::access_denied);
  }
  std::string id_;
  unsigned status_ = 0;
};

TEST_F(ws_browser, websocket_upgrade_with_a_foreign_origin_is_refused) {
  EXPECT_TRUE(handshake("https://evil.example"));
  EXPECT_EQ(status_, 403u);
}

TEST_F(ws_browser, websocket_upgrade_same_origin_or_without_origin_passes) {
  EXPECT_FALSE(handshake(self()));
  EXPECT_FALSE(handshake(std::nullopt));
}

// ---- names ----------------------------------------------------------------------------------

class names : public ::testing::Test {
 protected:
  api_server s_;

  std::string deploy_shop() {
    auto r = s_.request("POST", "/v1/deployments", R"({"project":"shop"})");
    EXPECT_EQ(r.status, 202) << r.body;
    return std::string(body_of(r).at("id").as_string());
  }
  std::optional<std::string> alias(const std::string& label) {
    auto r = s_.on_io([&]() { return s_.records().resolve_alias(label); });
    EXPECT_TRUE(r);
    return r ? *r : std::nullopt;
  }
  void set_raw(const std::string& key, const std::string& value) {
    auto r = s_.on_io([&]() -> asio::awaitable<dp::result<dp::redis::reply>> {
      std::vector<std::string> cmd{"SET", key, value};
      co_return co_await s_.redis().exec(std::move(cmd));
    });
    ASSERT_TRUE(r);
  }
  // A project record as one made before names were checked against aliases.
  void write_project_record(const std::string& name) {
    auto r = s_.on_io([&]() -> asio::awaitable<dp::result<dp::redis::reply>> {
      const auto& k = s_.records().keys();
      dp::proto::project p;
      p.name = name;
      p.git_url = "https://example.com/" + name + ".git";
      p.created_at = 1;
      std::vector<std::string> hset{"HSET", k.project(name)};
      for (auto& [f, v] : dp::proto::to_hash(p)) {
        hset.push_back(f);
        hset.push_back(v);
      }
      std::vector<std::vector<std::string>> cmds{hset, {"SADD", k.projects(), name}};
      auto r = co_await s_.redis().pipeline(std::move(cmds));
      if (!r) {
        co_return r.error();
      }
      co_return r->back();
    });
    ASSERT_TRUE(r);
  }
  void make_shop() { ASSERT_EQ(s_.request("POST", "/v1/projects", new_shop).status, 201); }
  std::string short_of(const std::string& id) { return std::string(dp::short_id(id)); }
};

TEST_F(names, a_project_cannot_take_the_name_of_a_deployment_url) {
  make_shop();
  auto id = deploy_shop();
  auto d = body_of(s_.request("GET", "/v1/deployments/" + id));
  std::string label(d.at("alias").as_string());
  ASSERT_EQ(alias(label), id);
  auto r = s_.request("POST", "/v1/projects",
                      R"({"name":")" + label + R"(","git_url":"https://example.com/x.git"})");
  EXPECT_GE(r.status, 400) << r.body;
  EXPECT_LT(r.status, 500) << r.body;
  EXPECT_EQ(s_.request("GET", "/v1/projects/" + label).status, 404);
}

TEST_F(names, a_project_cannot_take_an_old_immutable_alias) {
  make_shop();
  auto id = deploy_shop();
  // A deployment made before the "--" scheme keeps its "<project>-<8>" URL.
  std::string old_label = "shop-" + short_of(id);
  set_raw(s_.records().keys().alias(old_label), id);
  std::string body = R"({"name":")" + old_label + R"(","git_url":"https://example.com/x.git"})";
  auto r = s_.request("POST", "/v1/projects", body);
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_EQ(error_code_of(r), "conflict");
  EXPECT_NE(r.body.find("URL"), std::string::npos) << r.body;
  // Nor through a first deploy, by name or by upload.
  EXPECT_EQ(
      s_.request("POST", "/v1/deployments",
                 R"({"project":")" + old_label + R"(","git_url":"https://github.com/acme/x"})")
          .status,
      409);
  // A gzip body (the magic bytes and room for a header): the upload creates projects too.
  std::string gz("\x1f\x8b", 2);
  gz.append(30, '\0');
  auto up = s_.request("POST", "/v1/deployments?project=" + old_label, gz,
                       {{"content-type", "application/gzip"}});
  EXPECT_EQ(up.status, 409) << up.body;
  EXPECT_EQ(
      s_.request("POST", "/v1/deployments?project=a--b", gz, {{"content-type", "application/gzip"}})
          .status,
      400);
  EXPECT_EQ(s_.request("GET", "/v1/projects/" + old_label).status, 404);
  EXPECT_EQ(alias(old_label), id);
}

TEST_F(names, new_names_may_not_hold_a_double_hyphen) {
  for (std::string name : {"a--b", "xn--shop", "shop--6v0w1y3z"}) {
    auto r = s_.request("POST", "/v1/projects",
                        R"({"name":")" + name + R"(","git_url":"https://example.com/x.git"})");
    EXPECT_EQ(r.status, 400) << name;
    EXPECT_NE(r.body.find("--"), std::string::npos) << r.body;
  }
}

TEST_F(names, another_project_never_changes_or_removes_shops_aliases) {
  make_shop();
  auto id = deploy_shop();
  s_.drive(id, {dp::proto::deployment_status::ready});
  std::string old_label = "shop-" + short_of(id);
  set_raw(s_.records().keys().alias(old_label), id);
  // A project of that name made before the check, with a ready deployment of its own.
  write_project_record(old_label);
  auto r = s_.request("POST", "/v1/deployments", R"({"project":")" + old_label + R"("})");
  ASSERT_EQ(r.status, 202) << r.body;
  std::string other(body_of(r).at("id").as_string());
  s_.drive(other, {dp::proto::deployment_status::ready});

  // Promote would point shop's immutable URL at the other project's files.
  r = s_.request("POST", "/v1/projects/" + old_label + "/promote",
                 R"({"deployment_id":")" + other + "\"}");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_EQ(alias(old_label), id);
  // Deleting the other project would delete shop's immutable URL.
  EXPECT_EQ(s_.request("DELETE", "/v1/projects/" + old_label).status, 204);
  EXPECT_EQ(alias(old_label), id);
  EXPECT_EQ(s_.request("GET", "/v1/deployments/" + id).status, 200);
}

}  // namespace
