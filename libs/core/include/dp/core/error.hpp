// Error types shared by every library: an error code enum with its category, an error value that
// carries a human message, and result<T>, the return type of anything that can fail.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <fmt/format.h>

#include <string>
#include <type_traits>

namespace dp {

// What went wrong, in terms a caller can act on. Libraries map their own failures onto these;
// the HTTP layer maps them onto statuses (see http_status_for).
enum class errc {
  ok = 0,
  invalid_argument = 1,  // the caller's input is wrong; retrying will not help
  not_found,             // the thing named does not exist
  conflict,              // the thing exists, or is in a state that forbids the operation
  too_large,             // a size limit was exceeded
  timeout,               // no answer in time
  unavailable,           // a peer (Redis, storage, a process) cannot be reached right now
  protocol,              // a peer answered something we cannot understand
  io,                    // local I/O failed (disk, pipes)
  canceled,              // the operation was canceled on purpose
  unauthorized,          // no or wrong credentials
  forbidden,             // credentials are fine but not for this
  internal,              // a bug or an impossible state
};

const boost::system::error_category& error_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

// An error code with a message for an operator or a user ("field 'project' is missing").
struct error {
  boost::system::error_code code;
  std::string message;

  // True when the code is one of ours and equals e.
  bool is(errc e) const noexcept { return code == make_error_code(e); }
  // "message (category:value description)" for logs.
  std::string describe() const;
};

template <class T>
using result = boost::system::result<T, error>;

inline error make_error(errc code, std::string message) {
  return error{make_error_code(code), std::move(message)};
}

template <class... Args>
error make_error(errc code, fmt::format_string<Args...> f, Args&&... args) {
  return error{make_error_code(code), fmt::format(f, std::forward<Args>(args)...)};
}

// An error from a system or Asio error code, with context ("connect to 127.0.0.1:6379").
inline error make_error(const boost::system::error_code& ec, std::string_view context) {
  return error{ec, fmt::format("{}: {}", context, ec.message())};
}

// Lets result<T>::value() throw on error (required by boost::system::result for a custom E).
[[noreturn]] void throw_exception_from_error(const error& e, const boost::source_location& loc);

}  // namespace dp

template <>
struct boost::system::is_error_code_enum<dp::errc> : std::true_type {};

template <>
struct fmt::formatter<dp::error> : fmt::formatter<std::string_view> {
  auto format(const dp::error& e, fmt::format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(e.message, ctx);
  }
};
