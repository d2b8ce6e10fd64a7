#include "dp/redis/client.hpp"

#include "link.hpp"

#include <algorithm>

namespace dp::redis {

namespace asio = boost::asio;

namespace {

// Free coroutines holding the link: a client destroyed mid-call must not leave them dangling.
asio::awaitable<dp::result<reply>> exec_on(std::shared_ptr<detail::link> link,
                                           std::vector<std::string> argv,
                                           std::chrono::milliseconds timeout) {
  std::string name = argv.empty() ? std::string() : argv[0];
  std::vector<std::vector<std::string>> commands;
  commands.push_back(std::move(argv));
  auto r = co_await detail::link::run(link, std::move(commands), timeout);
  if (!r) {
    co_return r.error();
  }
  reply rep = std::move(r->front());
  if (rep.is_error()) {
    co_return dp::make_error(errc::protocol, "redis {}: {}", name, rep.as_string());
  }
  co_return rep;
}

asio::awaitable<dp::result<std::optional<std::string>>> string_or_nil_on(
    std::shared_ptr<detail::link> link, std::vector<std::string> argv,
    std::chrono::milliseconds timeout) {
  auto r = co_await exec_on(std::move(link), std::move(argv), timeout);
  if (!r) {
    co_return r.error();
  }
  if (r->is_nil()) {
    co_return std::optional<std::string>{};
  }
  co_return std::optional<std::string>{std::move(*r).as_string()};
}

asio::awaitable<dp::result<std::vector<std::string>>> sorted_strings_on(
    std::shared_ptr<detail::link> link, std::vector<std::string> argv,
    std::chrono::milliseconds timeout) {
  auto r = co_await exec_on(std::move(link), std::move(argv), timeout);
  if (!r) {
    co_return r.error();
  }
  std::vector<std::string> strings;
  for (auto& e : std::move(*r).elements()) {
    strings.push_back(std::move(e).as_string());
  }
  std::sort(strings.begin(), strings.end());
  co_return strings;
}

asio::awaitable<dp::result<void>> ping(std::shared_ptr<detail::link> link) {
  const auto timeout = link->opts().command_timeout;
  std::vector<std::string> argv{"PING"};
  auto r = co_await exec_on(std::move(link), std::move(argv), timeout);
  if (!r) {
    co_return r.error();
  }
  co_return dp::result<void>();
}

}  // namespace

client::client(asio::any_io_executor executor, options opts)
    : link_(std::make_shared<detail::link>(std::move(executor), std::move(opts))) {}

client::~client() {
  link_->close();
}

asio::awaitable<dp::result<void>> client::connect() {
  return ping(link_);
}

asio::awaitable<dp::result<reply>> client::exec(std::vector<std::string> argv,
                                                std::optional<std::chrono::milliseconds> timeout) {
  return exec_on(link_, std::move(argv), timeout.value_or(link_->opts().command_timeout));
}

asio::awaitable<dp::result<std::optional<std::string>>> client::get(std::string_view key) {
  std::vector<std::string> argv{"GET", std::string(key)};
  return string_or_nil_on(link_, std::move(argv), link_->opts().command_timeout);
}

asio::awaitable<dp::result<std::optional<std::string>>> client::hget(std::string_view key,
                                                                     std::string_view field) {
  std::vector<std::string> argv{"HGET", std::string(key), std::string(field)};
  return string_or_nil_on(link_, std::move(argv), link_->opts().command_timeout);
}

asio::awaitable<dp::result<std::vector<std::string>>> client::smembers(std::string_view key) {
  std::vector<std::string> argv{"SMEMBERS", std::string(key)};
  return sorted_strings_on(link_, std::move(argv), link_->opts().command_timeout);
}

asio::awaitable<dp::result<std::vector<reply>>> client::pipeline(
    std::vector<std::vector<std::string>> commands,
    std::optional<std::chrono::milliseconds> timeout) {
  return detail::link::run(link_, std::move(commands),
                           timeout.value_or(link_->opts().command_timeout));
}

void client::close() {
  link_->close();
}

bool client::connected() const noexcept {
  return link_->current() != nullptr;
}

}  // namespace dp::redis
