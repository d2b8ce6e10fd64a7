// The backend-independent parts: key rules, list() over pages, upload_directory, open_storage.
#include "dp/storage/object_store.hpp"

#include <boost/asio.hpp>

#include <fcntl.h>

#include <algorithm>
#include <array>
#include <system_error>

#include "backends.hpp"
#include "dp/core/spawn.hpp"

namespace dp::storage {

namespace asio = boost::asio;

dp::result<void> validate_key(std::string_view key) {
  auto bad = [&](std::string_view why) {
    return make_error(errc::invalid_argument, "invalid object key: {}", why);
  };
  if (key.empty() || key.size() > 1024) {
    return bad("must be 1 to 1024 bytes");
  }
  if (key.front() == '/') {
    return bad("must not start with '/'");
  }
  for (unsigned char c : key) {
    if (c < 0x20 || c == 0x7f || c == '\\') {
      return bad("must not contain NUL, control characters or backslashes");
    }
  }
  size_t i = 0;
  while (i <= key.size()) {
    size_t j = std::min(key.find('/', i), key.size());
    std::string_view seg = key.substr(i, j - i);
    if (seg.empty() && j < key.size()) {
      return bad("must not contain an empty segment ('//')");
    }
    if (seg == "." || seg == "..") {
      return bad("must not contain '.' or '..' segments");
    }
    if (seg.starts_with(".dp-")) {
      return bad("segments starting with '.dp-' are reserved");
    }
    i = j + 1;
  }
  return {};
}

task<object_info> object_store::put_file(std::string key, std::filesystem::path file,
                                         put_options opts) {
  dp::unique_fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    int err = errno;
    co_return make_error(err == ENOENT ? errc::not_found : errc::io, "read {}: {}", file.string(),
                         std::error_code(err, std::generic_category()).message());
  }
  co_return co_await put_file(std::move(key), std::move(fd), std::move(opts));
}

task<std::string> get_result::read_all() {
  std::string out;
  if (!body) {
    co_return out;
  }
  out.reserve(length);
  std::array<char, 64 * 1024> buf;
  for (;;) {
    auto n = co_await body->read_some(buf);
    if (!n) {
      co_return n.error();
    }
    if (*n == 0) {
      co_return out;
    }
    out.append(buf.data(), *n);
  }
}

task<std::vector<object_info>> object_store::list(std::string prefix) {
  std::vector<object_info> all;
  std::string token;
  do {
    auto page = co_await list_page(prefix, token, 1000);
    if (!page) {
      co_return page.error();
    }
    std::move(page->objects.begin(), page->objects.end(), std::back_inserter(all));
    token = std::move(page->next_token);
  } while (!token.empty());
  co_return all;
}

std::string_view content_type_for(std::string_view name) {
  static constexpr std::pair<std::string_view, std::string_view> types[] = {
      {".html", "text/html; charset=utf-8"},
      {".htm", "text/html; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".xml", "application/xml"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},
      {".webp", "image/webp"},
      {".avif", "image/avif"},
      {".ico", "image/x-icon"},
      {".woff", "font/woff"},
      {".woff2", "font/woff2"},
      {".ttf", "font/ttf"},
      {".wasm", "application/wasm"},
      {".pdf", "application/pdf"},
      {".webmanifest", "application/manifest+json"},
      {".mp4", "video/mp4"},
      {".webm", "video/webm"},
      {".mp3", "audio/mpeg"},
  };
  auto slash = name.rfind('/');
  auto base = slash == std::string_view::npos ? name : name.substr(slash + 1);
  auto dot = base.rfind('.');
  if (dot != std::string_view::npos) {
    std::string ext(base.substr(dot));
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    for (const auto& [e, t] : types) {
      if (e == ext) {
        return t;
      }
    }
  }
  return "application/octet-stream";
}

namespace {

// One uploader: takes the next file until none is left or another worker failed.
asio::awaitable<void> upload_worker(object_store& store,
                                    const std::vector<std::filesystem::path>& files,
                                    const std::filesystem::path& dir, const std::string& prefix,
                                    size_t& next, std::optional<dp::error>& failed) {
  while (!failed && next < files.size()) {
    const auto& file = files[next++];
    std::string key = prefix + file.lexically_relative(dir).generic_string();
    put_options opts;
    opts.content_type = content_type_for(key);
    auto r = co_await store.put_file(key, file, std::move(opts));
    if (!r && !failed) {
      failed = r.error();
    }
  }
}

}  // namespace

task<size_t> upload_directory(object_store& store, std::filesystem::path local_dir,
                              std::string key_prefix, size_t concurrency) {
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (std::filesystem::recursive_directory_iterator it(local_dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    // Regular files only: a symlink could point anywhere on the host.
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) {
      files.push_back(it->path());
    }
  }
  if (ec) {
    co_return make_error(ec, fmt::format("list {}", local_dir.string()));
  }
  std::sort(files.begin(), files.end());
  size_t next = 0;
  std::optional<dp::error> failed;
  auto ex = co_await asio::this_coro::executor;
  // All workers run on this executor; the timer wakes us when the last one finishes.
  asio::steady_timer done(ex, asio::steady_timer::time_point::max());
  size_t running = std::max<size_t>(1, std::min(concurrency, files.size()));
  size_t left = running;
  for (size_t i = 0; i < running; ++i) {
    dp::spawn(ex, upload_worker(store, files, local_dir, key_prefix, next, failed), "upload worker",
              [&](bool threw) {
                if (threw && !failed) {
                  failed = make_error(errc::internal, "upload worker failed");
                }
                if (--left == 0) {
                  done.cancel();
                }
              });
  }
  auto [wait_ec] = co_await done.async_wait(asio::as_tuple(asio::use_awaitable));
  (void)wait_ec;
  if (failed) {
    co_return *failed;
  }
  co_return files.size();
}

dp::result<std::shared_ptr<object_store>> open_storage(asio::any_io_executor ex,
                                                       const storage_url& url,
                                                       const dp::aws::credentials& creds,
                                                       store_options opts) {
  if (url.kind == storage_url::scheme::file) {
    return make_file_store(std::move(ex), url.root, opts);
  }
  return make_s3_store(std::move(ex), url, creds, opts);
}

}  // namespace dp::storage
