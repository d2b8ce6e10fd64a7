#pragma once
// Private to libs/http_client: one transfer's state (transfer.cpp), the multi-socket driver that
// runs transfers on a strand (multi.cpp), and what both share with the API (client.cpp).

#include <unistd.h>

#include <curl/curl.h>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "dp/http_client/client.hpp"

namespace dp::http_client {

namespace asio = boost::asio;
using strand_t = asio::strand<asio::any_io_executor>;
using transfer = response_stream::state;

inline bool iequals(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; };
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [&](char x, char y) { return lower(x) == lower(y); });
}

// ---- one transfer: an easy handle and everything its callbacks touch ----

enum class sink_mode { buffer, file, stream };

struct response_stream::state {
  std::weak_ptr<client::impl> owner;
  strand_t strand;
  CURL* easy = nullptr;
  bool in_multi = false;
  bool finished = false;
  curl_slist* header_list = nullptr;
  std::string target;  // describe_target()
  char errbuf[CURL_ERROR_SIZE] = {};
  std::optional<dp::error> failure;  // set by our callbacks; wins over curl's code

  // Request body: a buffer or a region of a file, read as curl asks.
  std::string body;
  int in_fd = -1;
  uint64_t in_offset = 0;
  uint64_t in_length = 0;
  uint64_t in_pos = 0;

  // Response.
  sink_mode mode = sink_mode::buffer;
  size_t max_bytes = 0;  // buffer: body limit; stream: buffer cap
  std::filesystem::path out_path;
  int out_fd = -1;
  response resp;
  size_t header_bytes = 0;
  bool headers_done = false;

  // Stream: bytes received and not yet read; [sbuf_pos, size) is pending.
  std::string sbuf;
  size_t sbuf_pos = 0;
  size_t max_buffered = 0;
  bool paused = false;
  std::span<char> read_buf;

  asio::any_completion_handler<void(dp::result<response>)> on_done;  // send()
  asio::any_completion_handler<void(dp::result<void>)> on_headers;   // open()
  asio::any_completion_handler<void(dp::result<size_t>)> on_read;    // read_some()

  explicit state(strand_t s) : strand(std::move(s)) {}
  state(const state&) = delete;
  state& operator=(const state&) = delete;
  ~state() {
    if (easy != nullptr) {
      curl_easy_cleanup(easy);
    }
    curl_slist_free_all(header_list);
    if (in_fd >= 0) {
      ::close(in_fd);
    }
    if (out_fd >= 0) {
      ::close(out_fd);
    }
  }

  size_t buffered() const noexcept { return sbuf.size() - sbuf_pos; }
};

// Hands a result to a waiting coroutine on its own executor, never inline inside a curl callback.
template <class Sig, class T>
void complete(asio::any_completion_handler<Sig>& h, const strand_t& fallback, T&& value) {
  if (!h) {
    return;
  }
  auto slot = asio::get_associated_cancellation_slot(h);
  if (slot.is_connected()) {
    slot.clear();
  }
  // Posted through the strand, then dispatched to the handler's own executor by Asio.
  asio::post(fallback, asio::append(std::move(h), std::forward<T>(value)));
}

// Stores a completion handler. (Boost 1.81's any_completion_handler::operator= recurses
// forever, so it is never assigned, only swapped.)
template <class Sig, class Handler>
void store(asio::any_completion_handler<Sig>& slot, Handler&& h) {
  asio::any_completion_handler<Sig> tmp(std::forward<Handler>(h));
  slot.swap(tmp);
}

// Hands buffered stream bytes (or the end) to a waiting reader (on the strand).
void pump_read(transfer& t);

// ---- the multi-socket driver (multi.cpp) and the transfer's callbacks (transfer.cpp) ----

class client::impl : public std::enable_shared_from_this<impl> {
 public:
  impl(asio::any_io_executor ex, client_options options);

  ~impl() { cleanup(); }

  const strand_t& strand() const noexcept { return strand_; }
  const client_options& options() const noexcept { return options_; }

  // Adds a prepared transfer to the multi handle (on the strand).
  void start(const std::shared_ptr<transfer>& t);

  // Ends a transfer early (cancellation, a destroyed stream or client): its connection is closed.
  void abort(transfer& t, dp::error e);

  void shutdown();

  static dp::error to_error(const transfer& t, CURLcode rc);

  // One socket curl asked us to watch. We wait on a dup() of it, so that when curl closes its
  // descriptor without telling us (the threaded resolver's socketpair), Asio never keeps a
  // registration for a number the kernel may hand out again.
  struct watch {
    explicit watch(const strand_t& s) : fd(s) {}
    asio::posix::stream_descriptor fd;
    curl_socket_t curl_fd = CURL_SOCKET_BAD;
    int what = 0;
    bool reading = false;
    bool writing = false;
    bool dead = false;
  };

  static int socket_cb(CURL*, curl_socket_t s, int what, void* userp, void*);

  static int timer_cb(CURLM*, long timeout_ms, void* userp);

  void on_timeout();

  // curl opens and closes its connections through us, so we know when a socket number is
  // reused (a stale watch on it must go) and can stop watching before the close.
  static curl_socket_t open_cb(void* clientp, curlsocktype, curl_sockaddr* a);

  static int close_cb(void* clientp, curl_socket_t s);

  void drop_watch(curl_socket_t s);

  void arm(const std::shared_ptr<watch>& w);

  void on_ready(const std::shared_ptr<watch>& w, int select, int wanted,
                boost::system::error_code ec);

  void drain_completions();

  // Takes the transfer out of the multi handle; returns the owning pointer so it outlives the call.
  std::shared_ptr<transfer> remove(transfer& t);

  // The transfer has finished (t.failure set on error): wake whoever waits for it.
  void deliver(transfer& t);

  void cleanup();

  strand_t strand_;
  client_options options_;
  CURLM* multi_ = nullptr;
  bool closing_ = false;
  asio::steady_timer timer_;
  std::unordered_map<curl_socket_t, std::shared_ptr<watch>> watches_;
  std::unordered_map<CURL*, std::shared_ptr<transfer>> transfers_;

  // ---- easy handle callbacks (run inside curl_multi_socket_action, on the strand) ----
  static size_t header_cb(char* p, size_t size, size_t n, void* ud);

  static size_t write_cb(char* p, size_t size, size_t n, void* ud);

  static size_t read_cb(char* buf, size_t size, size_t n, void* ud);

  // curl rewinds the body when it resends a request on a fresh connection (a reused one had
  // been closed by the peer).
  static int seek_cb(void* ud, curl_off_t offset, int origin);

  // Builds the easy handle for a request; fails early on bad input or unreadable files.
  dp::result<std::shared_ptr<transfer>> prepare(request& req, bool stream);
};

}  // namespace dp::http_client
