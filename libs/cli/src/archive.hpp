// deploy <directory>: the directory packed into a temporary tar.gz by GNU tar, without .git,
// node_modules and the patterns listed in the directory's .deployignore (tar --exclude syntax).
#pragma once

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include "dp/core/error.hpp"

namespace dp::cli {

// The archive file, removed when this goes away.
struct packed_archive {
  explicit packed_archive(std::filesystem::path p) : path(std::move(p)) {}
  packed_archive(packed_archive&& o) noexcept : path(std::exchange(o.path, {})), size(o.size) {}
  packed_archive& operator=(packed_archive&&) = delete;
  ~packed_archive();

  std::filesystem::path path;
  uint64_t size = 0;
};

// Over `max_bytes` is errc::too_large; a directory tar cannot read is errc::invalid_argument.
boost::asio::awaitable<dp::result<packed_archive>> pack_directory(std::filesystem::path dir,
                                                                  uint64_t max_bytes);

// A project name from a directory ("./My Site/" -> "my-site"); empty when nothing is left.
std::string project_name_for_directory(const std::filesystem::path& dir);

// "1.4 MB", "812 kB", "96 B".
std::string human_size(uint64_t bytes);

}  // namespace dp::cli
