#include "dp/core/error.hpp"

#include "dp/core/errc_table.hpp"

#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>

namespace dp {
namespace {

class category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "dp"; }
  std::string message(int value) const override { return std::string(errc_row(value).description); }
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
