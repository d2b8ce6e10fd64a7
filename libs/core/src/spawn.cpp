#include "dp/core/spawn.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>

#include <exception>

#include "dp/core/error.hpp"
#include "dp/core/log.hpp"

namespace dp {
namespace {

namespace asio = boost::asio;

bool is_cancellation(const boost::system::error_code& ec) {
  return ec == asio::error::operation_aborted || ec == make_error_code(errc::canceled);
}

// One line for an exception that ended a coroutine (or its on_done).
void log_escaped(std::string_view message, std::string_view what, const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const boost::system::system_error& x) {
    if (is_cancellation(x.code())) {
      log::debug("coroutine canceled", {{"coroutine", what}, {"error", x.what()}});
    } else {
      log::error(message, {{"coroutine", what}, {"error", x.what()}});
    }
  } catch (const std::exception& x) {
    log::error(message, {{"coroutine", what}, {"error", x.what()}});
  } catch (...) {
    log::error(message, {{"coroutine", what}, {"error", "unknown exception"}});
  }
}

}  // namespace

void spawn(const asio::any_io_executor& executor, asio::awaitable<void> coroutine, std::string what,
           spawn_done on_done) {
  asio::co_spawn(executor, std::move(coroutine),
                 [what = std::move(what), on_done = std::move(on_done)](std::exception_ptr e) {
                   if (e) {
                     log_escaped("coroutine ended by an exception", what, e);
                   }
                   if (!on_done) {
                     return;
                   }
                   // The promise holds for the callback too: nothing leaves through run().
                   try {
                     on_done(e != nullptr);
                   } catch (...) {
                     log_escaped("completion of a coroutine threw", what, std::current_exception());
                   }
                 });
}

}  // namespace dp
