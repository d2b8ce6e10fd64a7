// Graceful shutdown on SIGINT and SIGTERM.
#pragma once

#include <functional>

namespace boost::asio {
class io_context;
}

namespace dp {

// Calls `on_signal(signo)` on the io_context's thread at the first SIGINT or SIGTERM, so the
// service can stop accepting work and drain. A second signal ends the process at once
// (exit code 128 + signo), for an operator who does not want to wait. Also ignores SIGPIPE.
void on_shutdown_signal(boost::asio::io_context& ioc, std::function<void(int)> on_signal);

}  // namespace dp
