#include "dp/core/error.hpp"

#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>

namespace dp {
namespace {

class category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "dp"; }
  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::ok:
        return "ok";
      case errc::invalid_argument:
        return "invalid argument";
      case errc::not_found:
        return "not found";
      case errc::conflict:
        return "conflict";
      case errc::too_large:
        return "too large";
      case errc::timeout:
        return "timed out";
      case errc::unavailable:
        return "unavailable";
      case errc::protocol:
        return "protocol error";
      case errc::io:
        return "i/o error";
      case errc::canceled:
        return "canceled";
      case errc::unauthorized:
        return "unauthorized";
      case errc::forbidden:
        return "forbidden";
      case errc::internal:
        return "internal error";
    }
    return "unknown error";
  }
};

}  // namespace

const boost::system::error_category& error_category() noexcept {
  static const category_impl instance;
  return instance;
}

std::string error::describe() const {
  if (message.empty()) {
    return code.message();
  }
  if (code.category() == error_category()) {
    return message;
  }
  return fmt::format("{} ({})", message, code.message());
}

void throw_exception_from_error(const error& e, const boost::source_location& loc) {
  boost::throw_exception(boost::system::system_error(e.code, e.message), loc);
}

}  // namespace dp
