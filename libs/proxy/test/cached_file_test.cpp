#include "dp/proxy/cached_file.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <variant>

namespace {

using dp::proxy::cached_file;

std::string read_region(int fd, size_t offset, size_t length) {
  std::string out(length, '\0');
  EXPECT_EQ(::pread(fd, out.data(), length, static_cast<off_t>(offset)),
            static_cast<ssize_t>(length));
  return out;
}

TEST(cached_file, larger_files_live_in_a_sealed_memfd_shared_by_bodies) {
  std::string data(100 << 10, 'x');
  data[5000] = 'y';
  auto f = cached_file::make(data, true);
  ASSERT_TRUE(f->in_memfd());
  EXPECT_EQ(f->size(), data.size());
  auto body = cached_file::body(f, 4990, 20);
  auto* fb = std::get_if<dp::http::file_body>(&body);
  ASSERT_NE(fb, nullptr);
  EXPECT_EQ(fb->offset(), 4990u);
  EXPECT_EQ(fb->length(), 20u);
  EXPECT_EQ(read_region(fb->fd(), 4990, 20), data.substr(4990, 20));
  // Sealed: nobody can change what later responses send.
  EXPECT_EQ(::pwrite(fb->fd(), "z", 1, 0), -1);
  int seals = ::fcntl(fb->fd(), F_GET_SEALS);
  EXPECT_TRUE(seals & F_SEAL_WRITE);
  EXPECT_TRUE(seals & F_SEAL_SHRINK);
}

TEST(cached_file, small_files_and_a_spent_budget_keep_bytes) {
  auto small = cached_file::make("tiny", false);
  EXPECT_FALSE(small->in_memfd());
  auto body = cached_file::body(small, 1, 2);
  ASSERT_TRUE(std::holds_alternative<dp::http::shared_body>(body));
  EXPECT_EQ(std::get<dp::http::shared_body>(body).view(), "in");

  size_t before = cached_file::memfds_live();
  cached_file::set_memfd_budget(before + 1);
  auto first = cached_file::make(std::string(20000, 'a'), true);
  auto second = cached_file::make(std::string(20000, 'b'), true);
  EXPECT_TRUE(first->in_memfd());
  EXPECT_FALSE(second->in_memfd());  // over budget: bytes, still served
  EXPECT_TRUE(std::holds_alternative<dp::http::shared_body>(cached_file::body(second, 0, 1)));
  // A body keeps its entry's descriptor open after the cache let go of the entry.
  auto kept = cached_file::body(first, 0, 3);
  first.reset();
  EXPECT_EQ(cached_file::memfds_live(), before + 1);
  EXPECT_EQ(read_region(std::get<dp::http::file_body>(kept).fd(), 0, 3), "aaa");
  kept = std::string();
  EXPECT_EQ(cached_file::memfds_live(), before);  // closed with its last owner
  EXPECT_TRUE(cached_file::make(std::string(20000, 'c'), true)->in_memfd());
  cached_file::set_memfd_budget(256);
}

}  // namespace
