#include "dp/core/shutdown.hpp"

#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <memory>

#include "dp/core/log.hpp"

namespace dp {

void on_shutdown_signal(boost::asio::io_context& ioc, std::function<void(int)> on_signal) {
  // A peer that goes away mid-write (a log pipe, a socket written without MSG_NOSIGNAL) is an
  // error to handle where it happens, never a reason for the whole service to die.
  std::signal(SIGPIPE, SIG_IGN);
  auto signals = std::make_shared<boost::asio::signal_set>(ioc, SIGINT, SIGTERM);
  signals->async_wait(
      [signals, on_signal = std::move(on_signal)](const boost::system::error_code& ec, int signo) {
        if (ec) {
          return;  // the io_context is being destroyed
        }
        log::info("shutting down", {{"signal", signo == SIGINT ? "SIGINT" : "SIGTERM"}});
        signals->async_wait([signals](const boost::system::error_code& ec2, int signo2) {
          if (!ec2) {
            log::warn("second signal: exiting now", {{"signal", signo2}});
            ::_exit(128 + signo2);
          }
        });
        on_signal(signo);
      });
}

}  // namespace dp
