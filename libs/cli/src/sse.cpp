#include "dp/cli/sse.hpp"

namespace dp::cli {

std::vector<sse_event> sse_parser::feed(std::string_view chunk) {
  std::vector<sse_event> out;
  if (chunk.empty()) {
    return out;
  }
  if (after_cr_ && chunk.front() == '\n') {
    chunk.remove_prefix(1);  // the LF of a CRLF split across chunks
  }
  after_cr_ = false;
  while (!chunk.empty()) {
    auto end = chunk.find_first_of("\r\n");
    if (end == std::string_view::npos) {
      partial_.append(chunk);
      break;
    }
    if (partial_.empty()) {
      line(chunk.substr(0, end), out);
    } else {
      partial_.append(chunk.substr(0, end));
      line(partial_, out);
      partial_.clear();
    }
    bool cr = chunk[end] == '\r';
    chunk.remove_prefix(end + 1);
    if (cr) {
      if (chunk.empty()) {
        after_cr_ = true;
      } else if (chunk.front() == '\n') {
        chunk.remove_prefix(1);
      }
    }
  }
  return out;
}

void sse_parser::line(std::string_view l, std::vector<sse_event>& out) {
  if (l.empty()) {
    // Dispatch; an event without data is dropped (the spec's rule), its id still counts.
    if (has_data_) {
      out.push_back(std::move(current_));
    }
    current_ = sse_event{};
    has_data_ = false;
    return;
  }
  if (l.front() == ':') {
    return;  // a comment: keepalive
  }
  auto colon = l.find(':');
  std::string_view field = l.substr(0, colon);
  std::string_view value;
  if (colon != std::string_view::npos) {
    value = l.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') {
      value.remove_prefix(1);
    }
  }
  if (field == "data") {
    if (has_data_) {
      current_.data.push_back('\n');
    }
    current_.data.append(value);
    has_data_ = true;
  } else if (field == "event") {
    current_.event = value.empty() ? "message" : std::string(value);
  } else if (field == "id" && value.find('\0') == std::string_view::npos) {
    current_.id = std::string(value);
    last_id_ = std::string(value);
  }
  // "retry" and unknown fields are ignored: deployctl has its own reconnect policy.
}

}  // namespace dp::cli
