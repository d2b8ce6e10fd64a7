// Writes tar.gz files member by member, hostile ones included (names with "..", absolute paths,
// links out of the tree, FIFOs), which GNU tar would not produce from a directory.
#pragma once

#include <zlib.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace dp::test {

struct tar_member {
  std::string name;
  char type = '0';  // '0' file, '5' directory, '2' symlink, '1' hard link, '6' FIFO, '3' device
  std::string content;
  std::string link;
  unsigned mode = 0644;
};

inline void write_tar_gz(const std::filesystem::path& path,
                         const std::vector<tar_member>& members) {
  std::string tar;
  auto header = [&](const std::string& name, char type, size_t size, const std::string& link,
                    unsigned mode) {
    std::array<char, 512> h{};
    std::memcpy(h.data(), name.data(), std::min<size_t>(name.size(), 100));
    std::snprintf(&h[100], 8, "%07o", mode);
    std::snprintf(&h[108], 8, "%07o", 0u);
    std::snprintf(&h[116], 8, "%07o", 0u);
    std::snprintf(&h[124], 12, "%011llo", static_cast<unsigned long long>(size));
    std::snprintf(&h[136], 12, "%011o", 0u);
    h[156] = type;
    std::memcpy(&h[157], link.data(), std::min<size_t>(link.size(), 100));
    std::memcpy(&h[257],
                "ustar\0"
                "00",
                8);
    std::memset(&h[148], ' ', 8);
    unsigned sum = 0;
    for (char c : h) {
      sum += static_cast<unsigned char>(c);
    }
    std::snprintf(&h[148], 8, "%06o", sum);
    tar.append(h.data(), h.size());
  };
  auto data = [&](const std::string& d) {
    tar += d;
    tar.append((512 - d.size() % 512) % 512, '\0');
  };
  for (const auto& m : members) {
    if (m.name.size() > 100) {
      // A GNU long name: a 'L' member holding the name, then the member itself.
      header("././@LongLink", 'L', m.name.size() + 1, "", 0);
      data(m.name + '\0');
    }
    header(m.name, m.type, m.type == '0' ? m.content.size() : 0, m.link, m.mode);
    if (m.type == '0') {
      data(m.content);
    }
  }
  tar.append(1024, '\0');
  gzFile f = gzopen(path.c_str(), "wb");
  if (f == nullptr || gzwrite(f, tar.data(), static_cast<unsigned>(tar.size())) <= 0) {
    throw std::runtime_error("cannot write " + path.string());
  }
  gzclose(f);
}

}  // namespace dp::test
