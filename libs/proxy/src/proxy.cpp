// The proxy's life: open storage, start the site and admin listeners, follow the events that
// invalidate alias lookups, and stop with a drain.
#include "dp/proxy/proxy.hpp"

#include <sys/resource.h>

#include <fstream>
#include <sstream>

#include "dp/core/clock.hpp"
#include "dp/core/log.hpp"
#include "dp/core/spawn.hpp"
#include "dp/proto/json.hpp"
#include "dp/tls/certificate.hpp"
#include "dp/tls/ocsp.hpp"
#include "proxy_impl.hpp"

namespace dp::proxy {

asio::awaitable<void> proxy::impl::load_certificate(std::string name) {
  auto got = co_await certs->get(name);
  if (!got) {
    log::warn("proxy: certificate unreadable; the previous one stays",
              {{"name", name}, {"error", got.error()}});
    co_return;
  }
  if (!got->has_value()) {
    contexts->remove(name);
    log::info("proxy: certificate removed", {{"name", name}});
    co_return;
  }
  const auto& c = **got;
  // Checked here again: a response that is not this chain's, or has expired, is never stapled.
  std::optional<tls::ocsp_staple> staple;
  if (!c.ocsp_der.empty()) {
    auto now = dp::now_ms();
    if (auto v = tls::check_ocsp_response(c.chain_pem, c.ocsp_der, now); v) {
      staple = tls::ocsp_staple{c.ocsp_der, v->next_update_ms};
    } else {
      log::warn("proxy: stored OCSP response not stapled", {{"name", name}, {"error", v.error()}});
    }
  }
  if (auto r = contexts->set(name, c.chain_pem, c.key_pem, staple); !r) {
    log::warn("proxy: certificate does not load; the previous one stays",
              {{"name", name}, {"error", r.error()}});
    co_return;
  }
  log::info("proxy: certificate loaded",
            {{"name", name},
             {"not_after_ms", c.not_after_ms},
             {"ocsp_next_update_ms", staple ? staple->next_update_ms : 0}});
}

asio::awaitable<void> proxy::impl::load_certificates() {
  if (!contexts || !certs) {
    co_return;
  }
  auto listed = co_await certs->list();
  if (!listed) {
    log::warn("proxy: certificates not listed; retried after the next reconnect",
              {{"error", listed.error()}});
    co_return;
  }
  for (const auto& c : *listed) {
    co_await load_certificate(c.name);
  }
}

asio::awaitable<void> proxy::impl::follow_events() {
  std::vector<std::string> channels{opts.keys.events_channel(), opts.keys.routes_channel()};
  if (contexts && certs) {
    channels.push_back(opts.keys.certificates_channel());
  }
  auto subscribed = co_await events.subscribe(std::move(channels));
  if (!subscribed) {
    // The subscriber keeps the channel requested and subscribes when Redis is back.
    log::warn("proxy: events subscription pending; alias changes rely on the TTL until then",
              {{"error", subscribed.error()}});
  }
  // Anything looked up before the subscription may have missed its event.
  lookups.clear();
  co_await load_certificates();
  for (;;) {
    auto msg = co_await events.next();
    if (!msg) {
      if (!msg.error().is(dp::errc::canceled)) {
        log::warn("proxy: events follower stopped", {{"error", msg.error()}});
      }
      co_return;
    }
    if (msg->kind == dp::redis::message_kind::gap) {
      lookups.clear();
      co_await load_certificates();
      continue;
    }
    if (msg->channel == opts.keys.certificates_channel()) {
      if (auto name = tls::parse_certificate_event(msg->payload); name && certs) {
        co_await load_certificate(std::move(*name));
      }
      continue;
    }
    if (msg->channel == opts.keys.routes_channel()) {
      auto e = proto::parse_route_event(std::string_view(msg->payload));
      if (!e) {
        log::debug("proxy: unreadable route event ignored", {{"error", e.error()}});
        continue;
      }
      std::vector<std::string> keys;
      for (const auto& alias : e->aliases) {
        keys.push_back("a:" + alias);
        keys.push_back("x:" + alias);
      }
      for (const auto& fqdn : e->domains) {
        keys.push_back("d:" + fqdn);
        keys.push_back("p:" + fqdn);
        keys.push_back("p:" + state::twin_of(fqdn));
      }
      lookups.drop(e->project, keys);
      continue;
    }
    auto ev = proto::parse_deployment_event(std::string_view(msg->payload));
    if (!ev) {
      log::debug("proxy: unreadable event ignored", {{"error", ev.error()}});
      continue;
    }
    if (auto* a = std::get_if<proto::alias_event>(&*ev)) {
      lookups.erase("a:" + a->alias);
    }
  }
}

namespace {

dp::result<std::string> read_pem(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return make_error(errc::invalid_argument, "cannot read " + path);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

dp::result<void> proxy::impl::start_tls() {
  contexts = std::make_shared<tls::server_contexts>();
  if (opts.platform_key) {
    certs.emplace(redis, opts.keys, *opts.platform_key);
  }
  if (!opts.tls_cert_file.empty()) {
    auto chain = read_pem(opts.tls_cert_file);
    auto key = read_pem(opts.tls_key_file);
    if (!chain || !key) {
      return chain ? key.error() : chain.error();
    }
    // It serves the names it lists (typically *.<base domain>); the store's certificates, loaded
    // later, take a name over.
    auto facts = tls::inspect(*chain, *key);
    if (!facts) {
      return make_error(errc::invalid_argument, opts.tls_cert_file + ": " + facts.error().message);
    }
    for (const auto& name : facts->dns_names) {
      if (auto r = contexts->set(name, *chain, *key); !r) {
        return make_error(errc::invalid_argument, opts.tls_cert_file + ": " + r.error().message);
      }
    }
  }
  // HTTPS requests reach the same handler through a server of their own, which is how the
  // handler knows them for secure.
  http::router secure_routes;
  secure_routes.fallback([this](http::request& req) { return handle(req, true); });
  http::server_options so = opts.server;
  so.listen = *opts.tls_listen;
  so.tls_context = contexts->front();
  secure_server = std::make_unique<http::server>(ioc, so, std::move(secure_routes));
  return secure_server->start();
}

proxy::proxy(asio::io_context& ioc, options opts)
    : impl_(std::make_shared<impl>(ioc, std::move(opts))) {}

proxy::~proxy() = default;

dp::result<void> proxy::start() {
  auto& i = *impl_;
  auto st = dp::storage::open_storage(i.backend, i.opts.storage, i.opts.credentials, i.opts.store);
  if (!st) {
    return st.error();
  }
  i.storage = std::move(*st);
  // A quarter of the descriptors may hold cached files; the rest are for connections.
  if (rlimit nofile{}; ::getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
    cached_file::set_memfd_budget(static_cast<size_t>(nofile.rlim_cur / 4));
  }
  http::router routes;
  impl* self = impl_.get();
  routes.fallback([self](http::request& req) { return self->handle(req, false); });
  i.server = std::make_unique<http::server>(i.ioc, i.opts.server, std::move(routes));
  if (auto r = i.server->start(); !r) {
    return r.error();
  }
  if (i.opts.tls_listen) {
    if (auto r = i.start_tls(); !r) {
      return r.error();
    }
  }
  http::router admin_routes;
  admin_routes.get("/metrics", [self](http::request&) -> asio::awaitable<http::response> {
    co_return http::response(200, "text/plain; version=0.0.4", self->metrics_text());
  });
  admin_routes.get("/healthz", [](http::request&) -> asio::awaitable<http::response> {
    co_return http::response(200, "text/plain", "ok\n");
  });
  http::server_options ao;
  ao.listen = i.opts.admin_listen;
  i.admin = std::make_unique<http::server>(i.ioc, ao, std::move(admin_routes));
  if (auto r = i.admin->start(); !r) {
    return r.error();
  }
  dp::spawn(i.backend, i.follow_events(), "proxy event follower");
  return {};
}

uint16_t proxy::port() const {
  return impl_->server ? impl_->server->port() : 0;
}

uint16_t proxy::tls_port() const {
  return impl_->secure_server ? impl_->secure_server->port() : 0;
}

uint16_t proxy::admin_port() const {
  return impl_->admin ? impl_->admin->port() : 0;
}

void proxy::stop(std::chrono::milliseconds drain, std::function<void()> done) {
  auto self = impl_;
  auto left = std::make_shared<std::atomic<int>>(self->secure_server ? 3 : 2);
  auto one_done = [self, left, done = std::move(done)] {
    if (left->fetch_sub(1) != 1) {
      return;
    }
    // Both listeners are drained: nothing uses Redis any more.
    asio::post(self->backend, [self, done] {
      self->events.close();
      self->redis.close();
      if (done) {
        done();
      }
    });
  };
  if (!self->server || !self->admin) {
    asio::post(self->backend, [self] {
      self->events.close();
      self->redis.close();
    });
    return;
  }
  self->server->stop(drain, one_done);
  self->admin->stop(drain, one_done);
  if (self->secure_server) {
    self->secure_server->stop(drain, one_done);
  }
}

void proxy::run() {
  impl_->server->run();
}

std::string proxy::metrics_text() const {
  return impl_->metrics_text();
}

}  // namespace dp::proxy
