// Where a project's build cache lives: its index and archives in the object store
// (proto::cache_prefix), with a copy of each archive on this machine (BUILD_CACHE_DIR) so that a
// worker does not download what it has. Archives are immutable objects with random names, so a
// local copy of a name is always the object's content.
//
// The runner only moves archive files here: it writes a fetched archive into the work directory
// (a new file, beneath the work directory's descriptor) and reads the one archive the sandbox
// packed (opened beneath it with O_NOFOLLOW, a regular file with one link). It never lists,
// follows or unpacks what a build wrote.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <string>

#include "dp/buildplan/cache.hpp"
#include "dp/core/error.hpp"
#include "dp/core/unique_fd.hpp"
#include "dp/runner/runner.hpp"

namespace dp::runner {

class cache_store {
 public:
  cache_store(storage::object_store& storage, const cache_options& opts, std::string project)
      : storage_(storage), opts_(opts), project_(std::move(project)) {}

  // The project's index; empty when there is none. An index that does not parse is replaced
  // (its archives are then removed as orphans by the next save).
  task<buildplan::cache_index> load_index();
  // Writes the index, removes the objects of `gone` and archives no index names that are older
  // than an hour (an index lost to a concurrent write).
  task<void> save_index(const buildplan::cache_index& index,
                        const std::vector<buildplan::cache_entry>& gone, int64_t now_ms);

  // Puts archive `name` into the work directory as `file` (created, never replaced): from the
  // local copy when there is one, else downloaded (and copied locally). Returns its size.
  // At most max_bytes are written (errc::too_large beyond).
  task<uint64_t> fetch(const std::string& name, int work_dir, const std::string& file);

  // Opens the archive the sandbox packed, `file` beneath the work directory: a regular file
  // with one link and at most max_bytes (never a symlink, a FIFO or a hard link to elsewhere).
  result<unique_fd> open_packed(int work_dir, const std::string& file, uint64_t max_bytes) const;
  // Uploads it as `name` and keeps a local copy. Returns its size.
  task<uint64_t> store(const std::string& name, unique_fd archive);

 private:
  // The local copy's path, or empty without BUILD_CACHE_DIR.
  std::string local_path(const std::string& name) const;
  // Copies `from` into a new local file, renamed into place; then trims the directory to its cap.
  void keep_local(int from, const std::string& name);
  void trim_local();

  storage::object_store& storage_;
  const cache_options& opts_;
  std::string project_;
};

}  // namespace dp::runner
