// file:// backend. Layout under the root:
//   <root>/<key>                 the object's bytes, so a key maps to a plain file (sendfile)
//   <root>/.dp-meta/<key>.json   content type, cache control, ETag (sha256), user metadata
// Writes go to a temporary file (".dp-tmp-*") in the target directory, are fsynced when
// store_options::fsync is set, and are renamed into place: metadata first, then data, so a
// reader sees either the old object or the whole new one, never half a file. Keys pass
// validate_key, so no key resolves outside the root.
// Blocking file system calls run on a small thread pool so that concurrent puts overlap; reads
// of an open object use pread on the caller's thread (page-cache hits, kept cheap).
#include <boost/asio.hpp>
#include <boost/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <functional>

#include "backends.hpp"
#include "dp/aws/crypto.hpp"
#include "dp/core/id.hpp"
#include "dp/core/unique_fd.hpp"

namespace dp::storage {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace json = boost::json;

constexpr std::string_view meta_dir = ".dp-meta";
constexpr std::string_view tmp_prefix = ".dp-tmp-";

dp::error errno_error(std::string_view what, const fs::path& p, int err = errno) {
  auto ec = std::error_code(err, std::generic_category());
  if (err == ENOENT) {
    return make_error(errc::not_found, "{} {}: {}", what, p.string(), ec.message());
  }
  if (err == ENOTDIR || err == EISDIR || err == ENOTEMPTY) {
    return make_error(errc::conflict, "{} {}: {} (a key is also a prefix of other keys)", what,
                      p.string(), ec.message());
  }
  return make_error(errc::io, "{} {}: {}", what, p.string(), ec.message());
}

dp::result<void> write_all(int fd, std::string_view data, const fs::path& p) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno_error("write", p);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

// Writes `fill`'s output to a temporary file next to `target` and renames it into place.
dp::result<void> atomic_write(
    const fs::path& target, bool durable,
    const std::function<dp::result<void>(int fd, const fs::path&)>& fill) {
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec) {
    return errno_error("create directory", target.parent_path(), ec.value());
  }
  fs::path tmp = target.parent_path() / (std::string(tmp_prefix) + dp::random_hex(8));
  unique_fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (fd.get() < 0) {
    return errno_error("create", tmp);
  }
  auto r = fill(fd.get(), tmp);
  if (r && durable && ::fsync(fd.get()) != 0) {
    r = errno_error("fsync", tmp);
  }
  if (r && ::rename(tmp.c_str(), target.c_str()) != 0) {
    r = errno_error("rename to", target);
  }
  if (!r) {
    ::unlink(tmp.c_str());
  }
  return r;
}

std::string etag_of(const aws::digest& d) {
  return "\"" + aws::hex(d) + "\"";
}

std::chrono::system_clock::time_point mtime_of(const struct stat& st) {
  return std::chrono::system_clock::time_point(std::chrono::seconds(st.st_mtim.tv_sec) +
                                               std::chrono::nanoseconds(st.st_mtim.tv_nsec));
}

class file_reader final : public object_reader {
 public:
  file_reader(unique_fd fd, uint64_t offset, uint64_t length)
      : fd_(std::move(fd)), offset_(offset), left_(length) {}

  task<size_t> read_some(std::span<char> buf) override {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), left_));
    if (want == 0) {
      co_return size_t{0};
    }
    ssize_t n;
    do {
      n = ::pread(fd_.get(), buf.data(), want, static_cast<off_t>(offset_));
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      co_return make_error(errc::io, "read object: {}",
                           std::error_code(errno, std::generic_category()).message());
    }
    if (n == 0) {
      co_return make_error(errc::io, "read object: file shrank while reading");
    }
    offset_ += static_cast<uint64_t>(n);
    left_ -= static_cast<uint64_t>(n);
    co_return static_cast<size_t>(n);
  }

 private:
  unique_fd fd_;
  uint64_t offset_;
  uint64_t left_;
};

template <class T>
asio::awaitable<T> call(std::function<T()> f) {
  co_return f();
}

class file_store final : public object_store {
 public:
  using object_store::get;
  using object_store::put_file;
  file_store(fs::path root, const store_options& opts)
      : root_(std::move(root)), durable_(opts.fsync), pool_(opts.file_threads) {}
  ~file_store() override { pool_.join(); }

  task<object_info> put_buffer(std::string key, std::string data, put_options opts) override {
    return offload<object_info>([this, key = std::move(key), data = std::move(data),
                                 opts = std::move(opts)]() -> dp::result<object_info> {
      if (auto v = validate_key(key); !v) {
        return v.error();
      }
      auto tag = etag_of(aws::sha256(data));
      if (auto m = write_meta(key, tag, opts); !m) {
        return m.error();
      }
      auto w = atomic_write(data_path(key), durable_,
                            [&](int fd, const fs::path& p) { return write_all(fd, data, p); });
      if (!w) {
        return w.error();
      }
      return info_of(key, data.size(), tag, std::move(opts));
    });
  }

  task<object_info> put_file(std::string key, dp::unique_fd file, put_options opts) override {
    // std::function (offload) copies its callable: the descriptor is shared, not copied.
    auto shared = std::make_shared<dp::unique_fd>(std::move(file));
    return offload<object_info>([this, key = std::move(key), shared,
                                 opts = std::move(opts)]() -> dp::result<object_info> {
      if (auto v = validate_key(key); !v) {
        return v.error();
      }
      const dp::unique_fd& in = *shared;
      const fs::path file = "the source of " + key;
      struct stat st {};
      if (!in || ::fstat(in.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
        return make_error(errc::invalid_argument, "put_file '{}': not an open regular file", key);
      }
      // Hash first: the metadata (with the ETag) is renamed into place before the data.
      aws::sha256_hasher hasher;
      uint64_t size = 0;
      std::vector<char> buf(256 * 1024);
      auto pass =
          [&](const std::function<dp::result<void>(std::string_view)>& sink) -> dp::result<void> {
        off_t off = 0;
        for (;;) {
          ssize_t n = ::pread(in.get(), buf.data(), buf.size(), off);
          if (n < 0 && errno == EINTR) {
            continue;
          }
          if (n < 0) {
            return errno_error("read", file);
          }
          if (n == 0) {
            return {};
          }
          off += n;
          if (auto r = sink({buf.data(), static_cast<size_t>(n)}); !r) {
            return r;
          }
        }
      };
      auto h = pass([&](std::string_view d) -> dp::result<void> {
        hasher.update(d);
        size += d.size();
        return {};
      });
      if (!h) {
        return h.error();
      }
      auto tag = etag_of(hasher.finish());
      if (auto m = write_meta(key, tag, opts); !m) {
        return m.error();
      }
      auto w = atomic_write(data_path(key), durable_, [&](int fd, const fs::path& p) {
        return pass([&](std::string_view d) { return write_all(fd, d, p); });
      });
      if (!w) {
        return w.error();
      }
      return info_of(key, size, tag, std::move(opts));
    });
  }

  task<get_result> get(std::string key, get_options opts) override {
    if (auto v = validate_key(key); !v) {
      co_return v.error();
    }
    fs::path p = data_path(key);
    unique_fd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
      co_return errno_error("open", p);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
      co_return make_error(errc::not_found, "{} is not a regular file", p.string());
    }
    get_result out;
    out.info = read_info(key, st);
    if (!opts.if_none_match.empty() && etag_matches(opts.if_none_match, out.info.etag)) {
      out.not_modified = true;
      co_return out;
    }
    uint64_t size = static_cast<uint64_t>(st.st_size);
    out.length = size;
    if (opts.range) {
      auto r = resolve_range(*opts.range, size);
      if (!r) {
        co_return make_error(errc::invalid_argument, "range not satisfiable for {} bytes", size);
      }
      out.first = r->first;
      out.length = r->second - r->first + 1;
      out.partial = true;
    }
    out.body = std::make_unique<file_reader>(std::move(fd), out.first, out.length);
    co_return out;
  }

  task<object_info> head(std::string key) override {
    if (auto v = validate_key(key); !v) {
      co_return v.error();
    }
    struct stat st {};
    fs::path p = data_path(key);
    if (::stat(p.c_str(), &st) != 0) {
      co_return errno_error("stat", p);
    }
    if (!S_ISREG(st.st_mode)) {
      co_return make_error(errc::not_found, "{} is not a regular file", p.string());
    }
    co_return read_info(key, st);
  }

  task<listing> list_page(std::string prefix, std::string token, size_t max_keys) override {
    return offload<storage::listing>([this, prefix = std::move(prefix), token = std::move(token),
                                      max_keys]() -> dp::result<storage::listing> {
      return list_sync(prefix, token, max_keys);
    });
  }

  task<void> remove(std::string key) override {
    return offload<void>([this, key = std::move(key)]() -> dp::result<void> {
      if (auto v = validate_key(key); !v) {
        return v.error();
      }
      return remove_sync(key);
    });
  }

  task<size_t> remove_prefix(std::string prefix) override {
    return offload<size_t>([this, prefix = std::move(prefix)]() -> dp::result<size_t> {
      size_t count = 0;
      std::string token;
      do {
        auto page = list_sync(prefix, token, 1000);
        if (!page) {
          return page.error();
        }
        for (const auto& o : page->objects) {
          if (auto r = remove_sync(o.key); !r) {
            return r.error();
          }
          ++count;
        }
        token = page->next_token;
      } while (!token.empty());
      return count;
    });
  }

  std::optional<fs::path> local_path(std::string_view key) const override {
    if (!validate_key(key)) {
      return std::nullopt;
    }
    return data_path(key);
  }

 private:
  // Runs blocking work on the pool; the caller resumes on its own executor.
  template <class T, class F>
  task<T> offload(F f) {
    return asio::co_spawn(pool_, call<dp::result<T>>(std::move(f)), asio::use_awaitable);
  }

  fs::path data_path(std::string_view key) const { return root_ / fs::path(key); }
  fs::path meta_path(std::string_view key) const {
    return root_ / meta_dir / fs::path(std::string(key) + ".json");
  }

  dp::result<void> write_meta(const std::string& key, const std::string& tag,
                              const put_options& opts) {
    json::object m;
    m["etag"] = tag;
    m["content_type"] = opts.content_type;
    m["cache_control"] = opts.cache_control;
    json::object md;
    for (const auto& [k, v] : opts.metadata) {
      md[k] = v;
    }
    m["metadata"] = std::move(md);
    std::string text = json::serialize(m);
    return atomic_write(meta_path(key), durable_,
                        [&](int fd, const fs::path& p) { return write_all(fd, text, p); });
  }

  object_info info_of(const std::string& key, uint64_t size, std::string tag,
                      put_options opts) const {
    object_info info;
    info.key = key;
    info.size = size;
    info.etag = std::move(tag);
    info.content_type = std::move(opts.content_type);
    info.cache_control = std::move(opts.cache_control);
    info.metadata = std::move(opts.metadata);
    info.last_modified = std::chrono::system_clock::now();
    return info;
  }

  // Size and time from the data file; the rest from the metadata file. A file placed in the
  // root by hand has no metadata: its type comes from its name and its ETag from size and time.
  object_info read_info(const std::string& key, const struct stat& st) const {
    object_info info;
    info.key = key;
    info.size = static_cast<uint64_t>(st.st_size);
    info.last_modified = mtime_of(st);
    std::string text;
    {
      unique_fd fd(::open(meta_path(key).c_str(), O_RDONLY | O_CLOEXEC));
      std::array<char, 4096> buf;
      ssize_t n;
      while (fd.get() >= 0 && (n = ::read(fd.get(), buf.data(), buf.size())) > 0) {
        text.append(buf.data(), static_cast<size_t>(n));
      }
    }
    boost::system::error_code ec;
    auto v = json::parse(text, ec);
    if (!ec && v.is_object()) {
      const auto& o = v.get_object();
      auto str = [&](std::string_view k) -> std::string {
        auto* p = o.if_contains(k);
        return p && p->is_string() ? std::string(p->get_string()) : std::string();
      };
      info.etag = str("etag");
      info.content_type = str("content_type");
      info.cache_control = str("cache_control");
      if (auto* md = o.if_contains("metadata"); md && md->is_object()) {
        for (const auto& [k, val] : md->get_object()) {
          if (val.is_string()) {
            info.metadata.emplace(std::string(k), std::string(val.get_string()));
          }
        }
      }
    }
    if (info.etag.empty()) {
      info.etag = fmt::format("\"{:x}-{:x}\"", st.st_size, st.st_mtim.tv_sec);
    }
    if (info.content_type.empty()) {
      info.content_type = content_type_for(key);
    }
    return info;
  }

  dp::result<storage::listing> list_sync(const std::string& prefix, const std::string& token,
                                         size_t max_keys) const {
    max_keys = std::clamp<size_t>(max_keys, 1, 1000);
    // Walk only the directory the prefix names: "a/b/c" starts at <root>/a/b.
    auto slash = prefix.rfind('/');
    std::string dir_part = slash == std::string::npos ? std::string() : prefix.substr(0, slash);
    if (!dir_part.empty() && !validate_key(dir_part)) {
      return storage::listing{};  // no valid key can live under an invalid prefix
    }
    fs::path start = dir_part.empty() ? root_ : root_ / dir_part;
    std::vector<std::pair<std::string, uint64_t>> keys;
    std::error_code ec;
    fs::recursive_directory_iterator it(start, ec), end;
    if (ec) {
      if (ec == std::errc::no_such_file_or_directory || ec == std::errc::not_a_directory) {
        return storage::listing{};
      }
      return errno_error("list", start, ec.value());
    }
    for (; it != end; it.increment(ec)) {
      if (ec) {
        return errno_error("list", start, ec.value());
      }
      auto name = it->path().filename().native();
      if (name.starts_with(tmp_prefix) ||
          (it.depth() == 0 && dir_part.empty() && name == meta_dir)) {
        if (it->is_directory(ec)) {
          it.disable_recursion_pending();
        }
        continue;
      }
      if (!it->is_regular_file(ec) || it->is_symlink(ec)) {
        continue;
      }
      std::string key = it->path().lexically_relative(root_).generic_string();
      if (key.starts_with(prefix) && key > token) {
        keys.emplace_back(std::move(key), it->file_size(ec));
      }
    }
    std::sort(keys.begin(), keys.end());
    storage::listing page;
    for (size_t i = 0; i < keys.size() && i < max_keys; ++i) {
      struct stat st {};
      if (::stat(data_path(keys[i].first).c_str(), &st) != 0) {
        continue;  // deleted while listing
      }
      auto info = read_info(keys[i].first, st);
      info.metadata.clear();
      page.objects.push_back(std::move(info));
    }
    if (keys.size() > max_keys) {
      page.next_token = keys[max_keys - 1].first;
    }
    return page;
  }

  dp::result<void> remove_sync(const std::string& key) {
    for (const auto& p : {data_path(key), meta_path(key)}) {
      if (::unlink(p.c_str()) != 0 && errno != ENOENT) {
        return errno_error("delete", p);
      }
      // Remove directories left empty, up to (not including) the root of each tree.
      fs::path base = p == data_path(key) ? root_ : root_ / meta_dir;
      for (fs::path d = p.parent_path(); d != base && d.native().size() > base.native().size();
           d = d.parent_path()) {
        if (::rmdir(d.c_str()) != 0) {
          break;
        }
      }
    }
    return {};
  }

  fs::path root_;
  bool durable_;
  asio::thread_pool pool_;
};

}  // namespace

std::optional<std::pair<uint64_t, uint64_t>> resolve_range(const byte_range& r, uint64_t size) {
  if (!r.first) {
    // Suffix: the last n bytes.
    if (!r.last || *r.last == 0 || size == 0) {
      return std::nullopt;
    }
    uint64_t n = std::min(*r.last, size);
    return std::pair{size - n, size - 1};
  }
  if (*r.first >= size || (r.last && *r.last < *r.first)) {
    return std::nullopt;
  }
  uint64_t last = r.last ? std::min(*r.last, size - 1) : size - 1;
  return std::pair{*r.first, last};
}

bool etag_matches(std::string_view inm, std::string_view etag) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
      s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
      s.remove_suffix(1);
    }
    return s;
  };
  if (etag.starts_with("W/")) {
    etag.remove_prefix(2);
  }
  while (!inm.empty()) {
    auto comma = inm.find(',');
    auto tag = trim(inm.substr(0, comma));
    if (tag.starts_with("W/")) {
      tag.remove_prefix(2);
    }
    if (tag == "*" || (!tag.empty() && tag == etag)) {
      return true;
    }
    if (comma == std::string_view::npos) {
      break;
    }
    inm.remove_prefix(comma + 1);
  }
  return false;
}

dp::result<std::shared_ptr<object_store>> make_file_store(asio::any_io_executor, fs::path root,
                                                          const store_options& opts) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec || !fs::is_directory(root, ec)) {
    return make_error(errc::unavailable, "storage directory {} cannot be created: {}",
                      root.string(), ec ? ec.message() : "not a directory");
  }
  return std::shared_ptr<object_store>(std::make_shared<file_store>(root, opts));
}

}  // namespace dp::storage
