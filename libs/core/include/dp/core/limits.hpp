// Process resource limits a server sets for itself.
#pragma once

namespace dp {

// Raises the soft limit on open descriptors to the hard one. A server holds one per connection
// (the proxy also one per large cached file), and the usual soft limit of 1024 is far below
// what the hard limit allows. Failure leaves the limit as it was; nothing else depends on it.
void raise_open_files_limit() noexcept;

}  // namespace dp
