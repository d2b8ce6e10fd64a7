// An incremental parser of a Server-Sent Events stream (the WHATWG rules): chunks may split
// lines, CRLF pairs or events anywhere; several data lines make one event joined by "\n";
// comments (":keepalive") and events without data are ignored; the last id is remembered so a
// dropped stream can resume with Last-Event-ID.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dp::cli {

struct sse_event {
  std::string event = "message";
  std::string data;
  std::optional<std::string> id;  // the event's own id field, if it had one
  bool operator==(const sse_event&) const = default;
};

class sse_parser {
 public:
  // Feeds the next bytes of the stream; returns the events they complete, in order.
  std::vector<sse_event> feed(std::string_view chunk);
  // The most recent id seen (the value to send as Last-Event-ID), empty if none.
  const std::string& last_event_id() const noexcept { return last_id_; }

 private:
  void line(std::string_view l, std::vector<sse_event>& out);

  std::string partial_;    // an unfinished line
  bool after_cr_ = false;  // the previous chunk ended in CR: a leading LF belongs to it
  sse_event current_;
  bool has_data_ = false;
  std::string last_id_;
};

}  // namespace dp::cli
