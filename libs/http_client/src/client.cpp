// libcurl's multi-socket API on Asio, as curl's docs/examples/asiohiper.cpp: curl tells us which
// sockets to watch (socket_cb) and when to wake it (timer_cb); we wait with Asio and call
// curl_multi_socket_action. Everything touching curl runs on one strand.
#include "dp/http_client/client.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "dp/core/log.hpp"

namespace dp::http_client {

namespace asio = boost::asio;
using strand_t = asio::strand<asio::any_io_executor>;
using transfer = response_stream::state;

namespace {

constexpr size_t max_header_bytes = 64 * 1024;

void global_init() {
  // curl_global_init is not thread-safe; a function-local static runs it exactly once.
  static const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (rc != CURLE_OK) {
    dp::log::error("libcurl failed to initialize", {{"error", curl_easy_strerror(rc)}});
    std::abort();
  }
}

bool iequals(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; };
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [&](char x, char y) { return lower(x) == lower(y); });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

// "GET http://host:port": what error messages may say about the target. The path and query may
// carry a presigned signature and the userinfo a password, so they never appear.
dp::result<std::string> describe_target(const request& req) {
  if (!req.unix_socket.empty()) {
    return fmt::format("{} unix:{}", req.method, req.unix_socket);
  }
  CURLU* u = curl_url();
  std::string out;
  char* scheme = nullptr;
  char* host = nullptr;
  char* port = nullptr;
  if (curl_url_set(u, CURLUPART_URL, req.url.c_str(), 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
    out = fmt::format("{} {}://{}:{}", req.method, scheme, host, port);
  }
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  if (out.empty()) {
    return dp::make_error(errc::invalid_argument, "{} request: the URL is malformed", req.method);
  }
  return out;
}

// A header name or value with CR, LF or NUL would let a caller's input inject headers.
bool safe_header_text(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

}  // namespace

// ---- header_map ----

void header_map::add(std::string name, std::string value) {
  entries_.emplace_back(std::move(name), std::move(value));
}

std::optional<std::string_view> header_map::get(std::string_view name) const {
  for (const auto& [k, v] : entries_) {
    if (iequals(k, name)) {
      return std::string_view(v);
    }
  }
  return std::nullopt;
}

std::vector<std::string_view> header_map::get_all(std::string_view name) const {
  std::vector<std::string_view> out;
  for (const auto& [k, v] : entries_) {
    if (iequals(k, name)) {
      out.emplace_back(v);
    }
  }
  return out;
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

namespace {

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
void pump_read(transfer& t) {
  if (!t.on_read) {
    return;
  }
  if (t.buffered() > 0) {
    size_t n = std::min(t.buffered(), t.read_buf.size());
    std::memcpy(t.read_buf.data(), t.sbuf.data() + t.sbuf_pos, n);
    t.sbuf_pos += n;
    if (t.sbuf_pos == t.sbuf.size()) {
      t.sbuf.clear();
      t.sbuf_pos = 0;
    }
    complete(t.on_read, t.strand, dp::result<size_t>(n));
  } else if (t.finished) {
    complete(t.on_read, t.strand,
             t.failure ? dp::result<size_t>(*t.failure) : dp::result<size_t>(0));
  }
}

}  // namespace

// ---- the client ----

class client::impl : public std::enable_shared_from_this<impl> {
 public:
  impl(asio::any_io_executor ex, client_options options)
      : strand_(asio::make_strand(std::move(ex))), options_(std::move(options)), timer_(strand_) {
    global_init();
    multi_ = curl_multi_init();
    if (multi_ == nullptr) {
      dp::log::error("curl_multi_init failed (out of memory?)");
      std::abort();
    }
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &impl::socket_cb);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &impl::timer_cb);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS,
                      static_cast<long>(options_.max_connections_per_host));
    curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                      static_cast<long>(options_.max_total_connections));
  }

  ~impl() { cleanup(); }

  const strand_t& strand() const noexcept { return strand_; }
  const client_options& options() const noexcept { return options_; }

  // Adds a prepared transfer to the multi handle (on the strand).
  void start(const std::shared_ptr<transfer>& t) {
    if (t->finished) {
      return;  // canceled before it started
    }
    if (closing_) {
      abort(*t, dp::make_error(errc::canceled, "{}: the HTTP client was destroyed", t->target));
      return;
    }
    CURLMcode rc = curl_multi_add_handle(multi_, t->easy);
    if (rc != CURLM_OK) {
      abort(*t, dp::make_error(errc::internal, "{}: curl_multi_add_handle: {}", t->target,
                               curl_multi_strerror(rc)));
      return;
    }
    t->in_multi = true;
    transfers_.emplace(t->easy, t);
  }

  // Ends a transfer early (cancellation, a destroyed stream or client): its connection is closed.
  void abort(transfer& t, dp::error e) {
    if (t.finished) {
      return;
    }
    auto keep = remove(t);
    t.failure = std::move(e);
    deliver(t);
  }

  void shutdown() {
    std::vector<std::shared_ptr<transfer>> all;
    for (auto& [easy, t] : transfers_) {
      all.push_back(t);
    }
    for (auto& t : all) {
      abort(*t, dp::make_error(errc::canceled, "{}: the HTTP client was destroyed", t->target));
    }
    cleanup();
  }

  static dp::error to_error(const transfer& t, CURLcode rc) {
    if (t.failure) {
      return *t.failure;
    }
    std::string_view detail = t.errbuf[0] != '\0' ? t.errbuf : curl_easy_strerror(rc);
    errc code = errc::unavailable;
    switch (rc) {
      case CURLE_OPERATION_TIMEDOUT:
        code = errc::timeout;
        break;
      case CURLE_URL_MALFORMAT:
      case CURLE_UNSUPPORTED_PROTOCOL:
      case CURLE_BAD_FUNCTION_ARGUMENT:
        code = errc::invalid_argument;
        detail = curl_easy_strerror(rc);  // the error buffer may quote the URL
        break;
      case CURLE_WEIRD_SERVER_REPLY:
      case CURLE_BAD_CONTENT_ENCODING:
        code = errc::protocol;
        break;
      case CURLE_OUT_OF_MEMORY:
        code = errc::internal;
        break;
      default:  // resolve, connect, send, receive, TLS: the peer cannot be reached right now
        break;
    }
    return dp::make_error(code, "{}: {}", t.target, detail);
  }

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

  static int socket_cb(CURL*, curl_socket_t s, int what, void* userp, void*) {
    auto* self = static_cast<impl*>(userp);
    if (what == CURL_POLL_REMOVE || self->closing_) {
      self->drop_watch(s);
      return 0;
    }
    auto& w = self->watches_[s];
    if (!w) {
      w = std::make_shared<watch>(self->strand_);
      w->curl_fd = s;
      int d = ::fcntl(s, F_DUPFD_CLOEXEC, 0);
      boost::system::error_code ec;
      if (d >= 0) {
        w->fd.assign(d, ec);
      }
      if (d < 0 || ec) {
        if (d >= 0) {
          ::close(d);
        }
        self->watches_.erase(s);
        return -1;  // curl fails the transfers on this socket
      }
    }
    w->what = what;
    self->arm(w);
    return 0;
  }

  static int timer_cb(CURLM*, long timeout_ms, void* userp) {
    auto* self = static_cast<impl*>(userp);
    if (timeout_ms < 0 || self->closing_) {
      self->timer_.cancel();
      return 0;
    }
    // curl must not be re-entered from its callback, so even "now" runs later. curl asks for 0 ms
    // on most transfers: that is posted, not a timer, since a timer due at once reprograms the
    // reactor's timerfd twice (a fifth of a proxy cache miss's CPU, measured). A new timeout
    // replaces the previous one, so the armed timer goes either way.
    self->timer_.cancel();
    if (timeout_ms == 0) {
      asio::post(self->strand_, [self = self->shared_from_this()] { self->on_timeout(); });
      return 0;
    }
    self->timer_.expires_after(std::chrono::milliseconds(timeout_ms));
    self->timer_.async_wait([self = self->shared_from_this()](boost::system::error_code ec) {
      if (!ec) {
        self->on_timeout();
      }
    });
    return 0;
  }

  void on_timeout() {
    if (!closing_) {
      int running = 0;
      curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
      drain_completions();
    }
  }

  // curl opens and closes its connections through us, so we know when a socket number is
  // reused (a stale watch on it must go) and can stop watching before the close.
  static curl_socket_t open_cb(void* clientp, curlsocktype, curl_sockaddr* a) {
    auto* self = static_cast<impl*>(clientp);
    int s = ::socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (s < 0) {
      return CURL_SOCKET_BAD;
    }
    self->drop_watch(s);
    return s;
  }

  static int close_cb(void* clientp, curl_socket_t s) {
    static_cast<impl*>(clientp)->drop_watch(s);
    return ::close(s);
  }

  void drop_watch(curl_socket_t s) {
    auto it = watches_.find(s);
    if (it == watches_.end()) {
      return;
    }
    it->second->dead = true;
    boost::system::error_code ignored;
    it->second->fd.close(ignored);  // cancels its waits
    watches_.erase(it);
  }

  void arm(const std::shared_ptr<watch>& w) {
    if ((w->what & CURL_POLL_IN) != 0 && !w->reading) {
      w->reading = true;
      w->fd.async_wait(asio::posix::descriptor_base::wait_read,
                       [self = shared_from_this(), w](boost::system::error_code ec) {
                         w->reading = false;
                         self->on_ready(w, CURL_CSELECT_IN, CURL_POLL_IN, ec);
                       });
    }
    if ((w->what & CURL_POLL_OUT) != 0 && !w->writing) {
      w->writing = true;
      w->fd.async_wait(asio::posix::descriptor_base::wait_write,
                       [self = shared_from_this(), w](boost::system::error_code ec) {
                         w->writing = false;
                         self->on_ready(w, CURL_CSELECT_OUT, CURL_POLL_OUT, ec);
                       });
    }
  }

  void on_ready(const std::shared_ptr<watch>& w, int select, int wanted,
                boost::system::error_code ec) {
    if (w->dead || closing_ || ec == asio::error::operation_aborted) {
      return;
    }
    if ((w->what & wanted) == 0) {
      return;  // curl changed its mind since this wait began
    }
    int running = 0;
    curl_multi_socket_action(multi_, w->curl_fd, ec ? CURL_CSELECT_ERR : select, &running);
    drain_completions();
    if (!w->dead) {
      arm(w);
    }
  }

  void drain_completions() {
    int left = 0;
    while (!closing_) {
      CURLMsg* m = curl_multi_info_read(multi_, &left);
      if (m == nullptr) {
        break;
      }
      if (m->msg != CURLMSG_DONE) {
        continue;
      }
      CURLcode rc = m->data.result;
      auto it = transfers_.find(m->easy_handle);
      if (it == transfers_.end()) {
        continue;
      }
      auto t = it->second;
      remove(*t);
      if (rc != CURLE_OK || t->failure) {
        t->failure = to_error(*t, rc);
      }
      deliver(*t);
    }
  }

  // Takes the transfer out of the multi handle; returns the owning pointer so it outlives the call.
  std::shared_ptr<transfer> remove(transfer& t) {
    std::shared_ptr<transfer> keep;
    t.finished = true;
    if (t.in_multi) {
      t.in_multi = false;
      curl_multi_remove_handle(multi_, t.easy);
      if (auto it = transfers_.find(t.easy); it != transfers_.end()) {
        keep = std::move(it->second);
        transfers_.erase(it);
      }
    }
    return keep;
  }

  // The transfer has finished (t.failure set on error): wake whoever waits for it.
  void deliver(transfer& t) {
    if (t.mode == sink_mode::stream) {
      if (t.on_headers) {
        complete(t.on_headers, strand_,
                 t.failure ? dp::result<void>(*t.failure) : dp::result<void>{});
      }
      pump_read(t);
      return;
    }
    if (t.out_fd >= 0) {
      if (::close(t.out_fd) != 0 && !t.failure) {
        t.failure =
            dp::make_error(errc::io, "write {}: {}", t.out_path.string(), std::strerror(errno));
      }
      t.out_fd = -1;
      if (t.failure) {
        std::error_code ignored;
        std::filesystem::remove(t.out_path, ignored);
      }
    }
    complete(
        t.on_done, strand_,
        t.failure ? dp::result<response>(*t.failure) : dp::result<response>(std::move(t.resp)));
  }

  void cleanup() {
    if (closing_) {
      return;
    }
    closing_ = true;  // from here on, curl's callbacks only let go of sockets
    for (auto& [easy, t] : transfers_) {
      curl_multi_remove_handle(multi_, easy);
      t->in_multi = false;
      t->finished = true;
    }
    transfers_.clear();
    curl_multi_cleanup(multi_);  // closes cached connections through close_cb
    multi_ = nullptr;
    for (auto& [s, w] : watches_) {
      w->dead = true;
      boost::system::error_code ignored;
      w->fd.close(ignored);
    }
    watches_.clear();
    timer_.cancel();
  }

  strand_t strand_;
  client_options options_;
  CURLM* multi_ = nullptr;
  bool closing_ = false;
  asio::steady_timer timer_;
  std::unordered_map<curl_socket_t, std::shared_ptr<watch>> watches_;
  std::unordered_map<CURL*, std::shared_ptr<transfer>> transfers_;

  // ---- easy handle callbacks (run inside curl_multi_socket_action, on the strand) ----

  static size_t header_cb(char* p, size_t size, size_t n, void* ud) {
    auto& t = *static_cast<transfer*>(ud);
    size_t len = size * n;
    if (t.headers_done) {
      return len;  // trailers are not kept
    }
    t.header_bytes += len;
    if (t.header_bytes > max_header_bytes) {
      t.failure = dp::make_error(errc::protocol, "{}: response headers exceed {} bytes", t.target,
                                 max_header_bytes);
      return 0;
    }
    std::string_view line = trim(std::string_view(p, len));
    if (line.starts_with("HTTP/")) {
      // A new status line: an interim 1xx block before it is forgotten.
      t.resp.headers.clear();
      t.resp.status = 0;
      auto sp = line.find(' ');
      if (sp != std::string_view::npos) {
        std::string_view code = line.substr(sp + 1, 3);
        std::from_chars(code.data(), code.data() + code.size(), t.resp.status);
      }
      return len;
    }
    if (line.empty()) {
      if (t.resp.status >= 200) {
        t.headers_done = true;
        if (t.mode == sink_mode::stream) {
          complete(t.on_headers, t.strand, dp::result<void>{});
        }
      }
      return len;
    }
    if ((p[0] == ' ' || p[0] == '\t') && !t.resp.headers.entries().empty()) {
      return len;  // obsolete line folding: ignored rather than misparsed
    }
    auto colon = line.find(':');
    if (colon != std::string_view::npos) {
      t.resp.headers.add(std::string(trim(line.substr(0, colon))),
                         std::string(trim(line.substr(colon + 1))));
    }
    return len;
  }

  static size_t write_cb(char* p, size_t size, size_t n, void* ud) {
    auto& t = *static_cast<transfer*>(ud);
    size_t len = size * n;
    switch (t.mode) {
      case sink_mode::buffer:
        if (t.resp.body.size() + len > t.max_bytes) {
          t.failure = dp::make_error(errc::too_large, "{}: response body exceeds {} bytes",
                                     t.target, t.max_bytes);
          return 0;
        }
        t.resp.body.append(p, len);
        return len;
      case sink_mode::file:
        for (size_t done = 0; done < len;) {
          ssize_t w = ::write(t.out_fd, p + done, len - done);
          if (w < 0 && errno == EINTR) {
            continue;
          }
          if (w < 0) {
            t.failure =
                dp::make_error(errc::io, "write {}: {}", t.out_path.string(), std::strerror(errno));
            return 0;
          }
          done += static_cast<size_t>(w);
        }
        return len;
      case sink_mode::stream:
        if (t.buffered() >= t.max_bytes) {
          // The reader is behind: curl keeps this chunk and stops reading the socket.
          t.paused = true;
          return CURL_WRITEFUNC_PAUSE;
        }
        if (t.sbuf_pos > 0) {
          t.sbuf.erase(0, t.sbuf_pos);
          t.sbuf_pos = 0;
        }
        t.sbuf.append(p, len);
        t.max_buffered = std::max(t.max_buffered, t.buffered());
        pump_read(t);
        return len;
    }
    return 0;
  }

  static size_t read_cb(char* buf, size_t size, size_t n, void* ud) {
    auto& t = *static_cast<transfer*>(ud);
    size_t want = static_cast<size_t>(std::min<uint64_t>(size * n, t.in_length - t.in_pos));
    if (want == 0) {
      return 0;
    }
    if (t.in_fd < 0) {
      std::memcpy(buf, t.body.data() + t.in_pos, want);
      t.in_pos += want;
      return want;
    }
    ssize_t r = 0;
    do {
      r = ::pread(t.in_fd, buf, want, static_cast<off_t>(t.in_offset + t.in_pos));
    } while (r < 0 && errno == EINTR);
    if (r <= 0) {
      t.failure =
          dp::make_error(errc::io, "{}: reading the request body file: {}", t.target,
                         r == 0 ? "the file is shorter than announced" : std::strerror(errno));
      return CURL_READFUNC_ABORT;
    }
    t.in_pos += static_cast<uint64_t>(r);
    return static_cast<size_t>(r);
  }

  // curl rewinds the body when it resends a request on a fresh connection (a reused one had
  // been closed by the peer).
  static int seek_cb(void* ud, curl_off_t offset, int origin) {
    auto& t = *static_cast<transfer*>(ud);
    if (origin != SEEK_SET || offset < 0 || static_cast<uint64_t>(offset) > t.in_length) {
      return CURL_SEEKFUNC_CANTSEEK;
    }
    t.in_pos = static_cast<uint64_t>(offset);
    return CURL_SEEKFUNC_OK;
  }

  // Builds the easy handle for a request; fails early on bad input or unreadable files.
  dp::result<std::shared_ptr<transfer>> prepare(request& req, bool stream) {
    auto target = describe_target(req);
    if (!target) {
      return target.error();
    }
    auto t = std::make_shared<transfer>(strand_);
    t->owner = weak_from_this();
    t->target = std::move(*target);
    if (req.method.empty() || !safe_header_text(req.method) ||
        req.method.find(' ') != std::string::npos) {
      return dp::make_error(errc::invalid_argument, "{}: bad request method", t->target);
    }
    bool has_expect = false;
    for (const auto& [name, value] : req.headers) {
      if (name.empty() || !safe_header_text(name) || !safe_header_text(value) ||
          name.find(':') != std::string::npos) {
        return dp::make_error(errc::invalid_argument, "{}: bad request header '{}'", t->target,
                              safe_header_text(name) ? name : "?");
      }
      has_expect = has_expect || iequals(name, "expect");
      // curl drops a header given as "Name:" but sends "Name;" as an empty one.
      std::string line = value.empty() ? name + ";" : name + ": " + value;
      t->header_list = curl_slist_append(t->header_list, line.c_str());
    }
    if (!has_expect) {
      // No "Expect: 100-continue" wait before uploads: our peers answer at once.
      t->header_list = curl_slist_append(t->header_list, "Expect:");
    }

    // The request body.
    bool upload = req.method == "POST" || req.method == "PUT" || req.method == "PATCH";
    if (auto* s = std::get_if<std::string>(&req.body)) {
      t->body = std::move(*s);
      t->in_length = t->body.size();
      upload = true;
    } else if (auto* f = std::get_if<file_region>(&req.body)) {
      t->in_fd = f->fd >= 0 ? ::fcntl(f->fd, F_DUPFD_CLOEXEC, 0)
                            : ::open(f->path.c_str(), O_RDONLY | O_CLOEXEC);
      struct stat st {};
      if (t->in_fd < 0 || ::fstat(t->in_fd, &st) != 0) {
        return dp::make_error(errc::io, "open {}: {}",
                              f->fd >= 0 ? "the request body's file" : f->path.string(),
                              std::strerror(errno));
      }
      auto size = static_cast<uint64_t>(st.st_size);
      if (f->offset > size || (f->length && *f->length > size - f->offset)) {
        return dp::make_error(errc::invalid_argument,
                              "{}: the region [{}, +{}) lies outside {} ({} bytes)", t->target,
                              f->offset, f->length.value_or(0), f->path.string(), size);
      }
      t->in_offset = f->offset;
      t->in_length = f->length.value_or(size - f->offset);
      upload = true;
    }

    // The response sink.
    if (stream) {
      t->mode = sink_mode::stream;
      t->max_bytes = std::max<size_t>(options_.stream_buffer_bytes, 1);
    } else if (auto* f = std::get_if<to_file>(&req.sink)) {
      t->mode = sink_mode::file;
      t->out_path = f->path;
      t->out_fd = ::open(f->path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (t->out_fd < 0) {
        return dp::make_error(errc::io, "open {}: {}", f->path.string(), std::strerror(errno));
      }
    } else {
      t->mode = sink_mode::buffer;
      t->max_bytes = std::get<to_buffer>(req.sink).max_bytes;
    }

    CURL* e = t->easy = curl_easy_init();
    if (e == nullptr) {
      return dp::make_error(errc::internal, "{}: curl_easy_init failed", t->target);
    }
    curl_easy_setopt(e, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    curl_easy_setopt(e, CURLOPT_PROXY,
                     options_.proxy.c_str());  // "" also ignores *_proxy variables
    curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(options_.connect_timeout.count()));
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);
    if (!options_.ca_file.empty()) {
      curl_easy_setopt(e, CURLOPT_CAINFO, options_.ca_file.c_str());
    }
    if (!req.unix_socket.empty()) {
      curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, req.unix_socket.c_str());
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->header_list);
    if (stream) {
      // A paused transfer is exempt from the low-speed check, so a slow reader is never cut off.
      long secs = static_cast<long>((req.timeout.count() + 999) / 1000);
      if (secs > 0) {
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, secs);
      }
    } else {
      curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(req.timeout.count()));
    }
    if (req.method == "HEAD") {
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (upload) {
      curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(t->in_length));
      curl_easy_setopt(e, CURLOPT_READFUNCTION, &impl::read_cb);
      curl_easy_setopt(e, CURLOPT_READDATA, t.get());
      curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, &impl::seek_cb);
      curl_easy_setopt(e, CURLOPT_SEEKDATA, t.get());
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    } else if (req.method != "GET") {
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    }
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &impl::header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &impl::write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &impl::open_cb);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, this);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, &impl::close_cb);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, this);
    return t;
  }
};

namespace {

// Cancellation of the awaiting coroutine ends the transfer (on the strand, where curl lives).
template <class Sig>
void on_cancel_abort(asio::any_completion_handler<Sig>& h, const std::shared_ptr<transfer>& t) {
  auto slot = asio::get_associated_cancellation_slot(h);
  if (!slot.is_connected()) {
    return;
  }
  slot.assign([w = std::weak_ptr<transfer>(t)](asio::cancellation_type) {
    auto t = w.lock();
    if (!t) {
      return;
    }
    asio::post(t->strand, [t] {
      if (auto owner = t->owner.lock()) {
        owner->abort(*t, dp::make_error(errc::canceled, "{}: canceled", t->target));
      }
    });
  });
}

}  // namespace

// ---- client ----

client::client(asio::any_io_executor ex, client_options options)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(options))) {}

client::~client() {
  // Shut down on the strand; waits still pending keep impl alive until they are canceled.
  asio::dispatch(impl_->strand(), [i = impl_] { i->shutdown(); });
}

asio::awaitable<dp::result<response>> client::send(request req) {
  auto self = impl_;
  auto t = self->prepare(req, false);
  if (!t) {
    co_return t.error();
  }
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&,
                                          void(dp::result<response>)>(
      [](auto handler, std::shared_ptr<client::impl> self, std::shared_ptr<transfer> t) {
        store(t->on_done, std::move(handler));
        on_cancel_abort(t->on_done, t);
        asio::post(self->strand(), [self, t] { self->start(t); });
      },
      asio::use_awaitable, self, *t);
}

asio::awaitable<dp::result<response_stream>> client::open(request req) {
  auto self = impl_;
  auto t = self->prepare(req, true);
  if (!t) {
    co_return t.error();
  }
  auto ready =
      co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(dp::result<void>)>(
          [](auto handler, std::shared_ptr<client::impl> self, std::shared_ptr<transfer> t) {
            store(t->on_headers, std::move(handler));
            on_cancel_abort(t->on_headers, t);
            asio::post(self->strand(), [self, t] { self->start(t); });
          },
          asio::use_awaitable, self, *t);
  if (!ready) {
    co_return ready.error();
  }
  co_return response_stream::make(std::move(*t));
}

// ---- response_stream ----

response_stream::response_stream(std::shared_ptr<state> s) : state_(std::move(s)) {}
response_stream response_stream::make(std::shared_ptr<state> s) {
  return response_stream(std::move(s));
}
response_stream::response_stream(response_stream&&) noexcept = default;

response_stream& response_stream::operator=(response_stream&& other) noexcept {
  if (this != &other) {
    response_stream old(std::move(*this));
    state_ = std::move(other.state_);
  }
  return *this;
}

response_stream::~response_stream() {
  if (!state_) {
    return;
  }
  auto strand = state_->strand;
  asio::post(strand, [t = std::move(state_)] {
    if (auto owner = t->owner.lock()) {
      owner->abort(*t,
                   dp::make_error(errc::canceled, "{}: the response stream was closed", t->target));
    }
  });
}

int response_stream::status() const noexcept {
  return state_->resp.status;
}
const header_map& response_stream::headers() const noexcept {
  return state_->resp.headers;
}

size_t response_stream::max_buffered() const noexcept {
  // Read on the reader's side after a read_some completed: the strand's writes happened before.
  return state_->max_buffered;
}

asio::awaitable<dp::result<size_t>> response_stream::read_some(std::span<char> buf) {
  if (buf.empty()) {
    co_return dp::make_error(errc::invalid_argument, "{}: read_some needs a non-empty buffer",
                             state_->target);
  }
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(dp::result<size_t>)>(
      [](auto handler, std::shared_ptr<state> t, std::span<char> buf) {
        store(t->on_read, std::move(handler));
        t->read_buf = buf;
        on_cancel_abort(t->on_read, t);
        asio::post(t->strand, [t] {
          pump_read(*t);
          // The reader has drained half the buffer: let curl deliver again (it may call
          // write_cb from inside). Waiting for half, not for one byte of room, makes each
          // pause/resume cycle move many chunks. in_multi means the client is still there.
          if (t->paused && t->in_multi && t->buffered() <= t->max_bytes / 2) {
            t->paused = false;
            curl_easy_pause(t->easy, CURLPAUSE_CONT);
          }
        });
      },
      asio::use_awaitable, state_, buf);
}

}  // namespace dp::http_client
