// A deployment made live without a build, for tests that serve a site through the real proxy:
// index.html and the manifest put in a file store, the record written, then the go-live.
// Header-only, like options.hpp: include it from tests that link dp::state, dp::storage and
// dp::aws.
#pragma once

#include "dp/aws/crypto.hpp"
#include "dp/core/clock.hpp"
#include "dp/core/id.hpp"
#include "dp/proto/json.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/redis/client.hpp"
#include "dp/state/records.hpp"
#include "dp/storage/object_store.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"
#include "dp/test/options.hpp"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <filesystem>
#include <string>

namespace dp::test {

// A ready deployment of `project` whose only file is index.html, served from the file store at
// `files_root`: production (alias:<project>), or with `branch` a preview of that branch (its
// branch alias). Returns the deployment's id.
inline std::string deploy_index(const redis_server& redis, const std::filesystem::path& files_root,
                                const std::string& project, const std::string& index_html,
                                const std::string& branch = {}) {
  namespace asio = boost::asio;
  dp::proto::deployment d;
  d.id = dp::new_deployment_id();
  d.project = project;
  if (!branch.empty()) {
    d.branch = branch;
    d.target = dp::proto::deployment_target::preview;
  }
  d.status = dp::proto::deployment_status::ready;
  d.created_at = dp::now_ms();
  dp::storage::storage_url url;
  url.kind = dp::storage::storage_url::scheme::file;
  url.root = files_root;
  run_async([&](asio::io_context& ioc) -> asio::awaitable<void> {
    auto store = dp::storage::open_storage(ioc.get_executor(), url, {});
    CO_ASSERT_OK(store);
    // Named arguments: g++ 12 miscompiles temporaries inside a co_await expression.
    std::string key = dp::proto::output_key(d.id, "index.html");
    std::string content = index_html;
    dp::storage::put_options file_options;
    file_options.content_type = "text/html; charset=utf-8";
    auto put =
        co_await (*store)->put_buffer(std::move(key), std::move(content), std::move(file_options));
    CO_ASSERT_OK(put);
    dp::proto::manifest m;
    m.deployment_id = d.id;
    m.created_at = d.created_at;
    m.mode = dp::proto::serve_mode::static_files;
    m.files["index.html"] = dp::proto::manifest_entry{
        static_cast<int64_t>(index_html.size()), dp::aws::sha256_hex(index_html),
        "text/html; charset=utf-8", "public, max-age=60"};
    std::string manifest_key = dp::proto::manifest_key(d.id);
    std::string text = dp::proto::to_json(m);
    dp::storage::put_options manifest_options;
    auto put_manifest = co_await (*store)->put_buffer(std::move(manifest_key), std::move(text),
                                                      std::move(manifest_options));
    CO_ASSERT_OK(put_manifest);
    dp::redis::client client(ioc.get_executor(), redis_options(redis));
    dp::state::records records(client, dp::proto::keys{});
    auto recorded = co_await records.record_deployment(d);
    CO_ASSERT_OK(recorded);
    auto live = co_await records.go_live(d);
    CO_ASSERT_OK(live);
    client.close();
  });
  return d.id;
}

}  // namespace dp::test
