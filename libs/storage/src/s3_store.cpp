// s3:// backend over the one outbound HTTP client. Every request is signed with SigV4 and carries
// x-amz-content-sha256 (s3rver requires it). At most store_options::max_in_flight requests run
// at once (a semaphore; a streamed GET holds its slot until its body is read or dropped).
// Failures that may pass (connection errors, timeouts, 500, 502, 503 SlowDown, 504) are retried
// with exponential backoff and full jitter. Error messages are for logs: they may name the key
// and S3's error code, never the bucket, the credentials or S3's error body.
#include <boost/asio.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <random>

#include "backends.hpp"
#include "dp/aws/crypto.hpp"
#include "dp/core/log.hpp"
#include "dp/http_client/client.hpp"
#include "s3_xml.hpp"

namespace dp::storage {
namespace {

namespace asio = boost::asio;
namespace hc = dp::http_client;
using namespace std::chrono_literals;

// --- a counting semaphore for coroutines ----------------------------------------------------

class semaphore : public std::enable_shared_from_this<semaphore> {
 public:
  explicit semaphore(size_t n) : free_(n) {}

  // Released when the returned permit is destroyed.
  using permit = std::shared_ptr<void>;

  asio::awaitable<permit> acquire() {
    auto ex = co_await asio::this_coro::executor;
    for (;;) {
      std::shared_ptr<asio::steady_timer> t;
      {
        std::lock_guard lock(mu_);
        if (free_ > 0) {
          --free_;
          break;
        }
        t = std::make_shared<asio::steady_timer>(ex, asio::steady_timer::time_point::max());
        waiters_.push_back(t);
      }
      // Woken by release() expiring the timer; then try again.
      auto [ec] = co_await t->async_wait(asio::as_tuple(asio::use_awaitable));
      (void)ec;
    }
    co_return permit(nullptr, [self = shared_from_this()](void*) { self->release(); });
  }

 private:
  void release() {
    std::shared_ptr<asio::steady_timer> t;
    {
      std::lock_guard lock(mu_);
      ++free_;
      if (waiters_.empty()) {
        return;
      }
      t = std::move(waiters_.front());
      waiters_.pop_front();
    }
    // The timer belongs to its waiter's executor: touch it there. Expiring it (rather than
    // canceling) also wakes a waiter that has not started its wait yet.
    asio::post(t->get_executor(), [t] { t->expires_at(asio::steady_timer::time_point::min()); });
  }

  std::mutex mu_;
  size_t free_;
  std::deque<std::shared_ptr<asio::steady_timer>> waiters_;
};

// --- the store ------------------------------------------------------------------------------

bool retryable_status(int s) {
  return s == 500 || s == 502 || s == 503 || s == 504;
}

bool retryable_error(const dp::error& e) {
  return e.is(errc::unavailable) || e.is(errc::timeout);
}

struct payload {
  std::variant<std::string, hc::file_region> body;
  std::string sha256;  // hex
};

class s3_reader final : public object_reader {
 public:
  s3_reader(hc::response_stream s, semaphore::permit p)
      : stream_(std::move(s)), permit_(std::move(p)) {}
  task<size_t> read_some(std::span<char> buf) override {
    auto n = co_await stream_.read_some(buf);
    if (n && *n == 0) {
      permit_.reset();  // the body is done: free the slot at once
    }
    co_return n;
  }

 private:
  hc::response_stream stream_;
  semaphore::permit permit_;
};

class s3_store final : public object_store {
 public:
  using object_store::get;
  using object_store::put_file;
  s3_store(asio::any_io_executor ex, const storage_url& url, const aws::credentials& creds,
           const store_options& opts)
      : ex_(ex),
        client_(ex, make_client_options(opts)),
        creds_(creds, opts.credentials_endpoint),
        opts_(opts),
        prefix_(url.prefix),
        sem_(std::make_shared<semaphore>(std::max<size_t>(1, opts.max_in_flight))) {
    region_ = !url.region.empty() ? url.region : !creds.region.empty() ? creds.region : "us-east-1";
    std::string endpoint =
        url.endpoint.empty() ? fmt::format("https://s3.{}.amazonaws.com", region_) : url.endpoint;
    auto sep = endpoint.find("://");
    std::string scheme = endpoint.substr(0, sep);
    std::string host = endpoint.substr(sep + 3);
    if (url.path_style) {
      host_ = host;
      base_url_ = endpoint;
      base_path_ = "/" + url.bucket;
    } else {
      host_ = url.bucket + "." + host;
      base_url_ = scheme + "://" + host_;
    }
  }

  task<object_info> put_buffer(std::string key, std::string data, put_options opts) override {
    if (auto v = validate_key(key); !v) {
      co_return v.error();
    }
    auto hash = aws::sha256_hex(data);
    auto size = data.size();
    // Arguments of co_await calls are named locals throughout this file: g++ 12 miscompiles
    // braced temporaries there (double destruction).
    payload body{std::move(data), std::move(hash)};
    co_return co_await put_single(key, std::move(body), size, opts);
  }

  task<object_info> put_file(std::string key, dp::unique_fd file, put_options opts) override {
    if (auto v = validate_key(key); !v) {
      co_return v.error();
    }
    struct stat st {};
    if (!file || ::fstat(file.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
      co_return make_error(errc::invalid_argument, "put_file '{}': not an open regular file", key);
    }
    auto size = static_cast<uint64_t>(st.st_size);
    if (size > opts_.multipart_threshold) {
      co_return co_await put_multipart(key, file.get(), size, opts);
    }
    auto hash = co_await hash_file(file.get(), key, 0, size);
    if (!hash) {
      co_return hash.error();
    }
    payload body{region(file.get(), 0, size), *hash};
    co_return co_await put_single(key, std::move(body), size, opts);
  }

  task<get_result> get(std::string key, get_options opts) override {
    if (auto v = validate_key(key); !v) {
      co_return v.error();
    }
    aws::header_list headers;
    if (opts.range && !opts.range->first) {
      // Some S3 servers (s3rver) misread suffix ranges ("bytes=-n"): resolve it by size first.
      auto h = co_await head(key);
      if (!h) {
        co_return h.error();
      }
      auto r = resolve_range(*opts.range, h->size);
      if (!r) {
        co_return make_error(errc::invalid_argument, "range not satisfiable for {} bytes", h->size);
      }
      opts.range = byte_range{r->first, r->second};
    }
    if (opts.range) {
      const auto& r = *opts.range;
      headers.emplace_back("range", r.first ? fmt::format("bytes={}-{}", *r.first,
                                                          r.last ? std::to_string(*r.last) : "")
                                            : fmt::format("bytes=-{}", r.last.value_or(0)));
    }
    if (!opts.if_none_match.empty()) {
      headers.emplace_back("if-none-match", opts.if_none_match);
    }
    for (int attempt = 1;; ++attempt) {
      auto creds = co_await creds_.get(client_);
      if (!creds) {
        co_return context(creds.error(), "GET", key);
      }
      auto permit = co_await sem_->acquire();
      auto req = make_request(*creds, "GET", key, {}, headers, empty_payload());
      auto s = co_await client_.open(std::move(req));
      int status = s ? s->status() : 0;
      if ((!s && retryable_error(s.error())) || retryable_status(status)) {
        if (attempt < opts_.max_attempts) {
          permit.reset();
          co_await backoff(attempt);
          continue;
        }
      }
      if (!s) {
        co_return context(s.error(), "GET", key);
      }
      get_result out;
      out.info = info_from_headers(key, s->headers());
      if (status == 304) {
        // A 304 need not repeat the ETag (s3rver omits it): it is the one the caller sent.
        if (out.info.etag.empty() && opts.if_none_match.find_first_of(",*") == std::string::npos) {
          out.info.etag = opts.if_none_match;
        }
        out.not_modified = true;
        co_return out;
      }
      if (status != 200 && status != 206) {
        std::string body = co_await read_error_body(*s);
        co_return status_error("GET", key, status, body);
      }
      out.length = to_u64(s->headers().get("content-length").value_or("0"));
      out.info.size = out.length;
      if (status == 206) {
        // Content-Range: bytes first-last/total
        auto cr = s->headers().get("content-range").value_or("");
        auto sp = cr.find(' '), dash = cr.find('-'), slash = cr.find('/');
        if (sp == std::string_view::npos || dash == std::string_view::npos ||
            slash == std::string_view::npos) {
          co_return make_error(errc::protocol, "S3 GET '{}': 206 without a Content-Range", key);
        }
        out.first = to_u64(cr.substr(sp + 1, dash - sp - 1));
        out.info.size = to_u64(cr.substr(slash + 1));
        out.partial = true;
      }
      out.body = std::make_unique<s3_reader>(std::move(*s), std::move(permit));
      co_return out;
    }
  }

  task<object_info> head(std::string key) override {
    if (auto v = validate_key(key); !v) {
      co_return v.error();
    }
    auto none = empty_payload();
    auto r = co_await exchange("HEAD", key, {}, {}, std::move(none));
    if (!r) {
      co_return r.error();
    }
    if (r->status != 200) {
      co_return status_error("HEAD", key, r->status, "");
    }
    co_return info_from_headers(key, r->headers);
  }

  task<listing> list_page(std::string prefix, std::string token, size_t max_keys) override {
    aws::query_list q{{"list-type", "2"},
                      {"prefix", prefix_ + prefix},
                      {"max-keys", std::to_string(std::clamp<size_t>(max_keys, 1, 1000))}};
    if (!token.empty()) {
      q.emplace_back("continuation-token", token);
    }
    auto none = empty_payload();
    auto r = co_await exchange("GET", "", std::move(q), {}, std::move(none));
    if (!r) {
      co_return r.error();
    }
    if (r->status != 200) {
      co_return status_error("LIST", prefix, r->status, r->body);
    }
    co_return parse_list_page(r->body, prefix_, prefix);
  }

  task<void> remove(std::string key) override {
    if (auto v = validate_key(key); !v) {
      co_return v.error();
    }
    auto none = empty_payload();
    auto r = co_await exchange("DELETE", key, {}, {}, std::move(none));
    if (!r) {
      co_return r.error();
    }
    if (r->status != 204 && r->status != 200 && r->status != 404) {
      co_return status_error("DELETE", key, r->status, r->body);
    }
    co_return dp::result<void>{};
  }

  task<size_t> remove_prefix(std::string prefix) override {
    size_t count = 0;
    std::string token;
    do {
      auto page = co_await list_page(prefix, token, 1000);
      if (!page) {
        co_return page.error();
      }
      if (!page->objects.empty()) {
        auto n = co_await delete_batch(page->objects);
        if (!n) {
          co_return n.error();
        }
        count += *n;
      }
      token = page->next_token;
    } while (!token.empty());
    co_return count;
  }

  std::optional<std::filesystem::path> local_path(std::string_view) const override {
    return std::nullopt;
  }

 private:
  static hc::client_options make_client_options(const store_options& opts) {
    hc::client_options o;
    o.max_connections_per_host = std::max<size_t>(1, opts.max_in_flight);
    return o;
  }

  static payload empty_payload() {
    return payload{std::string(), std::string(aws::empty_payload_sha256)};
  }

  // URL path of a key (encoded once, '/' kept) or of the bucket when key is empty.
  std::string object_path(std::string_view key) const {
    if (key.empty()) {
      return base_path_.empty() ? "/" : base_path_;
    }
    return base_path_ + "/" + aws::uri_encode(prefix_ + std::string(key), false);
  }

  hc::request make_request(const aws::credentials& creds, std::string_view method,
                           std::string_view key, aws::query_list query,
                           const aws::header_list& headers, const payload& body) const {
    std::string path = object_path(key);
    aws::request sreq{method,           path,    aws::uri_style::s3_encoded,
                      std::move(query), headers, body.sha256};
    sreq.headers.emplace_back("host", host_);
    hc::request req;
    req.method = std::string(method);
    req.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(opts_.request_timeout);
    req.headers = sreq.headers;
    auto sig = aws::sign(sreq, creds, {region_, "s3", std::chrono::system_clock::now()});
    if (creds.has_keys()) {
      req.headers.insert(req.headers.end(), sig.headers_to_add.begin(), sig.headers_to_add.end());
    } else {
      // Anonymous requests go unsigned, with the content hash S3-compatible servers expect.
      req.headers.emplace_back("x-amz-content-sha256", body.sha256);
    }
    req.url = base_url_ + path + (sig.canonical_query.empty() ? "" : "?" + sig.canonical_query);
    if (const auto* s = std::get_if<std::string>(&body.body); s && !s->empty()) {
      req.body = *s;
    } else if (const auto* f = std::get_if<hc::file_region>(&body.body)) {
      req.body = *f;
    }
    return req;
  }

  asio::awaitable<void> backoff(int attempt) {
    // Full jitter: a random wait in [0, base * 2^attempt), capped at 10 s.
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    auto cap =
        std::min<std::chrono::milliseconds>(opts_.base_backoff * (1 << std::min(attempt, 10)), 10s);
    std::uniform_int_distribution<int64_t> dist(0, std::max<int64_t>(1, cap.count()));
    asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(dist(rng)));
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
  }

  static dp::error context(const dp::error& e, std::string_view what, std::string_view key) {
    return dp::error{e.code, fmt::format("S3 {} '{}': {}", what, key, e.message)};
  }

  // One request with retries; the response (any status) or a transport error.
  task<hc::response> exchange(std::string_view method, std::string_view key, aws::query_list query,
                              aws::header_list headers, payload body) {
    for (int attempt = 1;; ++attempt) {
      auto creds = co_await creds_.get(client_);
      if (!creds) {
        co_return context(creds.error(), method, key);
      }
      auto permit = co_await sem_->acquire();
      auto req = make_request(*creds, method, key, query, headers, body);
      auto r = co_await client_.send(std::move(req));
      permit.reset();
      bool retry = (!r && retryable_error(r.error())) || (r && retryable_status(r->status));
      if (retry && attempt < opts_.max_attempts) {
        log::debug("retrying S3 request",
                   {{"method", method}, {"attempt", attempt}, {"status", r ? r->status : 0}});
        co_await backoff(attempt);
        continue;
      }
      if (!r) {
        co_return context(r.error(), method, key);
      }
      co_return r;
    }
  }

  static asio::awaitable<std::string> read_error_body(hc::response_stream& s) {
    std::string body;
    std::array<char, 4096> buf;
    while (body.size() < 64 * 1024) {
      auto n = co_await s.read_some(buf);
      if (!n || *n == 0) {
        break;
      }
      body.append(buf.data(), *n);
    }
    co_return body;
  }

  aws::header_list put_headers(const put_options& opts) const {
    aws::header_list h{{"content-type", opts.content_type}};
    if (!opts.cache_control.empty()) {
      h.emplace_back("cache-control", opts.cache_control);
    }
    for (const auto& [k, v] : opts.metadata) {
      h.emplace_back("x-amz-meta-" + k, v);
    }
    return h;
  }

  object_info info_of(std::string key, uint64_t size, std::string etag,
                      const put_options& opts) const {
    object_info o;
    o.key = std::move(key);
    o.size = size;
    o.etag = std::move(etag);
    o.content_type = opts.content_type;
    o.cache_control = opts.cache_control;
    o.metadata = opts.metadata;
    o.last_modified = std::chrono::system_clock::now();
    return o;
  }

  object_info info_from_headers(std::string key, const hc::header_map& h) const {
    object_info o;
    o.key = std::move(key);
    o.size = to_u64(h.get("content-length").value_or("0"));
    o.etag = std::string(h.get("etag").value_or(""));
    o.content_type = std::string(h.get("content-type").value_or("application/octet-stream"));
    o.cache_control = std::string(h.get("cache-control").value_or(""));
    o.last_modified = parse_time(h.get("last-modified").value_or(""), "%a, %d %b %Y %H:%M:%S");
    for (const auto& [k, v] : h.entries()) {
      if (k.size() > 11 && strncasecmp(k.c_str(), "x-amz-meta-", 11) == 0) {
        std::string name = k.substr(11);
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        o.metadata[name] = v;
      }
    }
    return o;
  }

  // Part of an open file as a request body: the client reads the descriptor (a duplicate of it),
  // never a path.
  static hc::file_region region(int fd, uint64_t off, uint64_t len) {
    hc::file_region r;
    r.offset = off;
    r.length = len;
    r.fd = fd;
    return r;
  }

  // SHA-256 of part of an open file, read in 1 MiB pieces, yielding between pieces so other
  // requests on this executor keep moving.
  asio::awaitable<dp::result<std::string>> hash_file(int fd, std::string_view key, uint64_t off,
                                                     uint64_t len) {
    aws::sha256_hasher h;
    std::vector<char> buf(1 << 20);
    while (len > 0) {
      auto want = static_cast<size_t>(std::min<uint64_t>(len, buf.size()));
      ssize_t n;
      do {
        n = ::pread(fd, buf.data(), want, static_cast<off_t>(off));
      } while (n < 0 && errno == EINTR);
      if (n <= 0) {
        co_return make_error(errc::io, "read the source of {}: {}", key,
                             n < 0 ? std::strerror(errno) : "the file shrank while uploading");
      }
      h.update({buf.data(), static_cast<size_t>(n)});
      off += static_cast<uint64_t>(n);
      len -= static_cast<uint64_t>(n);
      co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    }
    co_return h.finish_hex();
  }

  task<object_info> put_single(const std::string& key, payload body, uint64_t size,
                               const put_options& opts) {
    auto headers = put_headers(opts);
    auto r = co_await exchange("PUT", key, {}, std::move(headers), std::move(body));
    if (!r) {
      co_return r.error();
    }
    if (r->status != 200) {
      co_return status_error("PUT", key, r->status, r->body);
    }
    co_return info_of(key, size, std::string(r->headers.get("etag").value_or("")), opts);
  }

  // CreateMultipartUpload, UploadPart for each part, CompleteMultipartUpload; on any failure
  // AbortMultipartUpload so that no parts are left behind (and billed).
  task<object_info> put_multipart(const std::string& key, int file, uint64_t size,
                                  const put_options& opts) {
    aws::query_list create_q{{"uploads", ""}};
    auto create_h = put_headers(opts);
    auto none = empty_payload();
    auto created =
        co_await exchange("POST", key, std::move(create_q), std::move(create_h), std::move(none));
    if (!created) {
      co_return created.error();
    }
    if (created->status != 200) {
      co_return status_error("CreateMultipartUpload", key, created->status, created->body);
    }
    std::string upload_id = xml_value(created->body, "UploadId");
    if (upload_id.empty()) {
      co_return make_error(errc::protocol, "S3 CreateMultipartUpload '{}': no UploadId", key);
    }
    auto r = co_await upload_parts(key, file, size, upload_id);
    if (!r) {
      aws::query_list abort_q{{"uploadId", upload_id}};
      auto abort_none = empty_payload();
      auto a = co_await exchange("DELETE", key, std::move(abort_q), {}, std::move(abort_none));
      if (!a || (a->status != 204 && a->status != 200 && a->status != 404)) {
        log::warn(
            "could not abort a failed multipart upload; its parts stay until a lifecycle "
            "rule removes them",
            {{"key", key}});
      }
      co_return r.error();
    }
    co_return info_of(key, size, std::move(*r), opts);
  }

  task<std::string> upload_parts(const std::string& key, int file, uint64_t size,
                                 const std::string& upload_id) {
    std::string complete = "<CompleteMultipartUpload>";
    uint64_t part_size = std::max<uint64_t>(opts_.part_size, 5ull << 20);
    int number = 1;
    for (uint64_t off = 0; off < size; off += part_size, ++number) {
      uint64_t len = std::min(part_size, size - off);
      auto hash = co_await hash_file(file, key, off, len);
      if (!hash) {
        co_return hash.error();
      }
      aws::query_list part_q{{"partNumber", std::to_string(number)}, {"uploadId", upload_id}};
      payload part{region(file, off, len), *hash};
      auto r = co_await exchange("PUT", key, std::move(part_q), {}, std::move(part));
      if (!r) {
        co_return r.error();
      }
      if (r->status != 200) {
        co_return status_error("UploadPart", key, r->status, r->body);
      }
      complete += fmt::format("<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>", number,
                              xml_escape(r->headers.get("etag").value_or("")));
    }
    complete += "</CompleteMultipartUpload>";
    auto hash = aws::sha256_hex(complete);
    aws::query_list complete_q{{"uploadId", upload_id}};
    aws::header_list complete_h{{"content-type", "application/xml"}};
    payload complete_body{std::move(complete), std::move(hash)};
    auto r = co_await exchange("POST", key, std::move(complete_q), std::move(complete_h),
                               std::move(complete_body));
    if (!r) {
      co_return r.error();
    }
    // S3 may answer 200 with an <Error> body when completion fails late.
    if (r->status != 200 || r->body.find("<Error>") != std::string::npos) {
      co_return status_error("CompleteMultipartUpload", key, r->status == 200 ? 500 : r->status,
                             r->body);
    }
    co_return xml_value(r->body, "ETag");
  }

  // DeleteObjects for one page; single deletes where the server does not implement it.
  task<size_t> delete_batch(const std::vector<object_info>& objects) {
    if (!batch_unsupported_) {
      std::string body = delete_objects_body(objects, prefix_);
      aws::header_list h{{"content-md5", aws::md5_base64(body)},
                         {"content-type", "application/xml"}};
      auto hash = aws::sha256_hex(body);
      aws::query_list delete_q{{"delete", ""}};
      payload delete_body{std::move(body), std::move(hash)};
      auto r =
          co_await exchange("POST", "", std::move(delete_q), std::move(h), std::move(delete_body));
      if (!r) {
        co_return r.error();
      }
      if (r->status == 200) {
        size_t pos = 0;
        if (auto err = xml_next(r->body, "Error", pos)) {
          co_return make_error(errc::unavailable, "S3 DeleteObjects: '{}' not deleted: {}",
                               xml_value(*err, "Key"), xml_value(*err, "Code"));
        }
        co_return objects.size();
      }
      if (r->status != 501 && r->status != 405 && xml_value(r->body, "Code") != "NotImplemented") {
        co_return status_error("DeleteObjects", objects.front().key, r->status, r->body);
      }
      batch_unsupported_ = true;
      log::info("S3 endpoint has no DeleteObjects; deleting one key at a time");
    }
    for (const auto& o : objects) {
      if (auto r = co_await remove(o.key); !r) {
        co_return r.error();
      }
    }
    co_return objects.size();
  }

  asio::any_io_executor ex_;
  hc::client client_;
  aws::credential_source creds_;
  store_options opts_;
  std::string prefix_;
  std::string region_;
  std::string host_;
  std::string base_url_;
  std::string base_path_;
  std::shared_ptr<semaphore> sem_;
  bool batch_unsupported_ = false;
};

}  // namespace

dp::result<std::shared_ptr<object_store>> make_s3_store(asio::any_io_executor ex,
                                                        const storage_url& url,
                                                        const dp::aws::credentials& creds,
                                                        const store_options& opts) {
  return std::shared_ptr<object_store>(std::make_shared<s3_store>(std::move(ex), url, creds, opts));
}

}  // namespace dp::storage
