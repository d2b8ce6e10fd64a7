// deployctl's view of the REST API: JSON calls, the archive upload and the log stream, with the
// server's {"error":{"code","message"}} turned into a dp::error. A peer that cannot be reached is
// errc::unavailable (or errc::timeout); an HTTP error is mapped from its code, never onto those
// two, so the exit code can tell "unreachable" from "refused".
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>

#include <filesystem>
#include <optional>
#include <string>

#include "dp/cli/render.hpp"
#include "dp/cli/run.hpp"
#include "dp/http_client/client.hpp"

namespace dp::cli {

class api_client {
 public:
  api_client(http_client::client& http, const options& opts);

  // `body` is JSON text; empty: no body.
  boost::asio::awaitable<dp::result<boost::json::value>> call(std::string method, std::string path,
                                                              std::string body);
  // POST /v1/deployments?project=NAME[&no_cache=true] with the tar.gz as the body.
  boost::asio::awaitable<dp::result<boost::json::value>> upload(std::string project,
                                                                std::filesystem::path archive,
                                                                bool no_cache);
  // GET /v1/deployments/{id}/logs/stream, resuming after `last_seq` (0: from the start).
  boost::asio::awaitable<dp::result<http_client::response_stream>> open_logs(std::string id,
                                                                             int64_t last_seq);

 private:
  http_client::request make(std::string method, std::string path) const;
  dp::result<boost::json::value> decode(const http_client::response& r) const;

  http_client::client& http_;
  const options& opts_;
};

// Percent-encodes one path segment or query value (names and ids come from the command line).
std::string encode_component(std::string_view s);

// The server's error body as a dp::error (status mapped when the body is not one).
dp::error api_error(int status, std::string_view body);

dp::result<deployment_view> parse_deployment_view(const boost::json::value& v);

}  // namespace dp::cli
