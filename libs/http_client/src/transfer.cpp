// One transfer: the easy handle built from a request (prepare), curl's callbacks that fill the
// response or stream its body, and the mapping of curl's result codes onto dp::errc.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "detail.hpp"

namespace dp::http_client {

namespace {

constexpr size_t max_header_bytes = 64 * 1024;

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

dp::error client::impl::to_error(const transfer& t, CURLcode rc) {
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

size_t client::impl::header_cb(char* p, size_t size, size_t n, void* ud) {
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

size_t client::impl::write_cb(char* p, size_t size, size_t n, void* ud) {
  auto& t = *static_cast<transfer*>(ud);
  size_t len = size * n;
  switch (t.mode) {
    case sink_mode::buffer:
      if (t.resp.body.size() + len > t.max_bytes) {
        t.failure = dp::make_error(errc::too_large, "{}: response body exceeds {} bytes", t.target,
                                   t.max_bytes);
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

size_t client::impl::read_cb(char* buf, size_t size, size_t n, void* ud) {
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

int client::impl::seek_cb(void* ud, curl_off_t offset, int origin) {
  auto& t = *static_cast<transfer*>(ud);
  if (origin != SEEK_SET || offset < 0 || static_cast<uint64_t>(offset) > t.in_length) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  t.in_pos = static_cast<uint64_t>(offset);
  return CURL_SEEKFUNC_OK;
}

dp::result<std::shared_ptr<transfer>> client::impl::prepare(request& req, bool stream) {
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

}  // namespace dp::http_client
