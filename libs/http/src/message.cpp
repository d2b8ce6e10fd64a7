#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json/serialize.hpp>

#include <strings.h>
#include <cerrno>
#include <cstring>

#include "dp/core/errc_table.hpp"
#include "dp/http/json.hpp"
#include "dp/http/message.hpp"
#include "dp/http/stream.hpp"

namespace dp::http {

std::string_view to_string(method m) noexcept {
  switch (m) {
    case method::get:
      return "GET";
    case method::head:
      return "HEAD";
    case method::post:
      return "POST";
    case method::put:
      return "PUT";
    case method::patch:
      return "PATCH";
    case method::delete_:
      return "DELETE";
    case method::options:
      return "OPTIONS";
    case method::other:
      break;
  }
  return "OTHER";
}

dp::result<file_body> file_body::open(const std::string& path, uint64_t offset,
                                      std::optional<uint64_t> length) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return make_error(err == ENOENT ? errc::not_found : errc::io, "open {}: {}", path,
                      std::strerror(err));
  }
  file_body body(fd, offset, 0);  // owns fd from here on
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return make_error(errc::io, "{} is not a readable regular file", path);
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (offset > size || (length && *length > size - offset)) {
    return make_error(errc::invalid_argument, "range {}+{} is outside {} ({} bytes)", offset,
                      length.value_or(0), path, size);
  }
  body.length_ = length.value_or(size - offset);
  return body;
}

file_body& file_body::operator=(file_body&& o) noexcept {
  if (this != &o) {
    release();
    owner_ = std::move(o.owner_);
    fd_ = std::exchange(o.fd_, -1);
    offset_ = o.offset_;
    length_ = o.length_;
  }
  return *this;
}

file_body::~file_body() {
  release();
}

void file_body::release() noexcept {
  if (fd_ >= 0 && !owner_) {
    ::close(fd_);
  }
  owner_.reset();
  fd_ = -1;
}

response::response(unsigned s, std::string content_type, std::string b)
    : status(s), body(std::move(b)) {
  headers.emplace_back("Content-Type", std::move(content_type));
}

response& response::set(std::string_view name, std::string_view value) {
  for (auto& [n, v] : headers) {
    if (n.size() == name.size() && ::strncasecmp(n.data(), name.data(), n.size()) == 0) {
      v.assign(value);
      return *this;
    }
  }
  headers.emplace_back(name, value);
  return *this;
}

std::optional<std::string_view> response::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (n.size() == name.size() && ::strncasecmp(n.data(), name.data(), n.size()) == 0) {
      return std::string_view(v);
    }
  }
  if (shared_headers) {
    for (const auto& [n, v] : *shared_headers) {
      if (n.size() == name.size() && ::strncasecmp(n.data(), name.data(), n.size()) == 0) {
        return std::string_view(v);
      }
    }
  }
  return std::nullopt;
}

std::string format_sse(const sse_event& e) {
  std::string out;
  out.reserve(e.data.size() + e.event.size() + e.id.size() + 32);
  // Field values cannot hold line breaks; they are cut at the first one rather than letting a
  // caller's value inject extra fields.
  auto single_line = [](std::string_view v) { return v.substr(0, v.find_first_of("\r\n")); };
  if (!e.id.empty()) {
    out.append("id: ").append(single_line(e.id)).push_back('\n');
  }
  if (!e.event.empty()) {
    out.append("event: ").append(single_line(e.event)).push_back('\n');
  }
  if (e.retry_ms) {
    out.append("retry: ").append(std::to_string(*e.retry_ms)).push_back('\n');
  }
  // Each line of the data is its own data: field; \r\n, \r and \n all end a line.
  std::string_view d = e.data;
  for (;;) {
    size_t nl = d.find_first_of("\r\n");
    out.append("data: ").append(d.substr(0, nl)).push_back('\n');
    if (nl == std::string_view::npos) {
      break;
    }
    size_t skip = (d[nl] == '\r' && nl + 1 < d.size() && d[nl + 1] == '\n') ? 2 : 1;
    d.remove_prefix(nl + skip);
  }
  out.push_back('\n');
  return out;
}

response json_response(unsigned status, const boost::json::value& body) {
  return response(status, "application/json", boost::json::serialize(body));
}

response error_response(unsigned status, std::string_view code, std::string_view message) {
  return json_response(status, {{"error", {{"code", code}, {"message", message}}}});
}

response error_response(const dp::error& e) {
  const auto& row = e.code.category() == dp::error_category() ? errc_row(e.code.value())
                                                              : errc_row(errc::internal);
  return error_response(row.http_status, row.name, e.message);
}

unsigned status_for(dp::errc e) noexcept {
  return errc_row(e).http_status;
}

unsigned status_for(const dp::error& e) noexcept {
  if (e.code.category() != dp::error_category()) {
    return 500;
  }
  return errc_row(e.code.value()).http_status;
}

std::string_view code_for(dp::errc e) noexcept {
  return errc_row(e).name;
}

}  // namespace dp::http
