#include "dp/runner/work_fs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstring>
#include <set>

#include "dp/core/unique_fd.hpp"
#include "dp/process/process.hpp"

namespace dp::runner {
namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

dp::error sys_error(std::string what) {
  return make_error(boost::system::error_code(errno, boost::system::system_category()),
                    std::move(what));
}

// A free loop device bound to `image`, with autoclear: it detaches itself when the last user
// (the mount) lets go. Returns the device's path and its open descriptor.
result<std::pair<std::string, int>> attach_loop(int image) {
  unique_fd ctl(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  if (!ctl) {
    return sys_error("open /dev/loop-control");
  }
  // Another process may take the free device between the two calls: try the next one.
  for (int attempt = 0; attempt < 16; ++attempt) {
    int n = ::ioctl(ctl.get(), LOOP_CTL_GET_FREE);
    if (n < 0) {
      return sys_error("no free loop device (LOOP_CTL_GET_FREE)");
    }
    auto path = fmt::format("/dev/loop{}", n);
    int dev = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (dev < 0) {
      return sys_error("open " + path);
    }
    loop_config cfg{};
    cfg.fd = static_cast<uint32_t>(image);
    cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
    if (::ioctl(dev, LOOP_CONFIGURE, &cfg) == 0) {
      return std::pair{path, dev};
    }
    int err = errno;
    if (err == EINVAL || err == ENOTTY) {
      // Kernels before 5.8: the two-step form.
      loop_info64 info{};
      info.lo_flags = LO_FLAGS_AUTOCLEAR;
      if (::ioctl(dev, LOOP_SET_FD, image) == 0) {
        if (::ioctl(dev, LOOP_SET_STATUS64, &info) == 0) {
          return std::pair{path, dev};
        }
        err = errno;
        ::ioctl(dev, LOOP_CLR_FD, 0);
      } else {
        err = errno;
      }
    }
    ::close(dev);
    if (err != EBUSY) {
      errno = err;
      return sys_error("attach " + path);
    }
  }
  errno = EBUSY;
  return sys_error("attach a loop device");
}

void walk(int dirfd, dev_t dev, int depth, uint64_t& total,
          std::set<std::pair<dev_t, ino_t>>& linked) {
  DIR* d = ::fdopendir(dirfd);
  if (d == nullptr) {
    ::close(dirfd);
    return;
  }
  while (auto* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) {
      continue;
    }
    struct stat st {};
    if (::fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      continue;  // gone meanwhile
    }
    if (st.st_nlink > 1 && !S_ISDIR(st.st_mode) && !linked.emplace(st.st_dev, st.st_ino).second) {
      continue;
    }
    total += static_cast<uint64_t>(st.st_blocks) * 512;
    if (S_ISDIR(st.st_mode) && st.st_dev == dev && depth < 256) {
      int sub = ::openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0) {
        walk(sub, dev, depth + 1, total, linked);
      }
    }
  }
  ::closedir(d);  // closes dirfd
}

}  // namespace

uint64_t directory_usage(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return 0;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return 0;
  }
  uint64_t total = 0;
  std::set<std::pair<dev_t, ino_t>> linked;
  walk(fd, st.st_dev, 0, total, linked);
  return total;
}

asio::awaitable<result<work_fs>> work_fs::make(work_fs_options o) {
  work_fs w;
  w.dir_ = o.dir;
  w.quota_ = o.quota_bytes;
  if (::mkdir(o.dir.c_str(), 0755) != 0) {
    co_return sys_error("cannot create the work directory " + o.dir.string());
  }
  if (o.quota_bytes == 0) {
    co_return std::move(w);
  }
  w.kind_ = disk_quota::poller;
  if (!o.allow_filesystem) {
    w.fallback_reason_ = "a filesystem per build is turned off";
    co_return std::move(w);
  }
  if (::geteuid() != 0) {
    w.fallback_reason_ = "the runner is not root (mounting needs it)";
    co_return std::move(w);
  }
  if (::access("/dev/loop-control", R_OK | W_OK) != 0) {
    w.fallback_reason_ = "no /dev/loop-control (no loop devices here)";
    co_return std::move(w);
  }
  // The image: sparse, so it takes only what the build writes.
  w.image_ = o.dir.string() + ".img";
  unique_fd img(::open(w.image_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  auto give_up = [&w](std::string why) {
    w.fallback_reason_ = std::move(why);
    ::unlink(w.image_.c_str());
    w.image_.clear();
  };
  if (!img || ::ftruncate(img.get(), static_cast<off_t>(o.quota_bytes)) != 0) {
    give_up(sys_error("cannot create the image " + w.image_.string()).message);
    co_return std::move(w);
  }
  // No journal (the filesystem dies with the build), no reserved blocks (the build gets the
  // whole quota), inode tables and journal initialised lazily, no discard: a few hundred KiB
  // written instead of megabytes.
  process::options mkfs;
  mkfs.argv = {"mkfs.ext4",
               "-q",
               "-F",
               "-m",
               "0",
               "-E",
               "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
               "-O",
               "^has_journal,^resize_inode",
               w.image_.string()};
  mkfs.env = {{"PATH", "/usr/sbin:/sbin:/usr/bin:/bin"}};
  mkfs.timeout = std::chrono::seconds(60);
  std::string output;
  auto made = co_await process::run(mkfs, [&output](process::stream, std::string_view line) {
    if (output.size() < 500) {
      output += fmt::format("{}{}", output.empty() ? "" : "; ", line);
    }
  });
  if (!made || !made->success()) {
    give_up(fmt::format("mkfs.ext4 failed: {}{}", made ? made->describe() : made.error().message,
                        output.empty() ? "" : ": " + output));
    co_return std::move(w);
  }
  auto loop = attach_loop(img.get());
  if (!loop) {
    give_up(loop.error().message);
    co_return std::move(w);
  }
  unique_fd dev(loop->second);
  // noinit_itable: no kernel thread zeroing inode tables into the image behind the build.
  if (::mount(loop->first.c_str(), o.dir.c_str(), "ext4", MS_NODEV | MS_NOSUID | MS_NOATIME,
              "noinit_itable") != 0) {
    give_up(sys_error(fmt::format("mount {} on {}", loop->first, o.dir.string())).message);
    co_return std::move(w);  // closing `dev` detaches the device (autoclear)
  }
  w.device_ = loop->first;
  w.mounted_ = true;
  w.kind_ = disk_quota::filesystem;
  ::rmdir((o.dir / "lost+found").c_str());
  co_return std::move(w);
}

work_fs::work_fs(work_fs&& o) noexcept
    : dir_(std::move(o.dir_)),
      image_(std::move(o.image_)),
      device_(std::move(o.device_)),
      kind_(o.kind_),
      quota_(o.quota_),
      fallback_reason_(std::move(o.fallback_reason_)),
      mounted_(o.mounted_) {
  o.mounted_ = false;
  o.image_.clear();
}

work_fs::~work_fs() {
  (void)release();
}

std::string work_fs::describe() const {
  switch (kind_) {
    case disk_quota::filesystem:
      return fmt::format("an ext4 filesystem of {} MiB ({})", quota_ >> 20, device_);
    case disk_quota::poller:
      return fmt::format("a usage poller and a file size limit of {} MiB ({})", quota_ >> 20,
                         fallback_reason_);
    case disk_quota::none:
      break;
  }
  return "none";
}

uint64_t work_fs::used_bytes() const {
  if (kind_ == disk_quota::filesystem) {
    struct statvfs st {};
    if (::statvfs(dir_.c_str(), &st) != 0) {
      return 0;
    }
    return static_cast<uint64_t>(st.f_blocks - st.f_bfree) * st.f_frsize;
  }
  return directory_usage(dir_);
}

bool work_fs::full() const {
  if (kind_ == disk_quota::filesystem) {
    struct statvfs st {};
    if (::statvfs(dir_.c_str(), &st) != 0) {
      return false;
    }
    uint64_t avail = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
    return avail < std::max<uint64_t>(quota_ / 100, uint64_t{1} << 20);
  }
  return kind_ == disk_quota::poller && used_bytes() >= quota_;
}

result<void> work_fs::release() {
  result<void> r;
  if (mounted_) {
    mounted_ = false;
    if (::umount2(dir_.c_str(), 0) != 0) {
      // Something still holds a file open there (the build's processes are dead by now):
      // detach it; the device goes when the last reference does.
      r = sys_error("unmount " + dir_.string());
      ::umount2(dir_.c_str(), MNT_DETACH);
    }
  }
  if (!image_.empty()) {
    ::unlink(image_.c_str());
    image_.clear();
  }
  return r;
}

result<void> enter_private_mount_namespace() {
  if (::unshare(CLONE_NEWNS) != 0) {
    return make_error(std::error_code(errno, std::generic_category()),
                      "cannot make a mount namespace for the build's filesystem");
  }
  // Nothing mounted here propagates back to the host, and nothing of the host's comes in.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return make_error(std::error_code(errno, std::generic_category()),
                      "cannot make the build's mounts private");
  }
  return {};
}

}  // namespace dp::runner
