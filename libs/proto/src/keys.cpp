#include "dp/proto/keys.hpp"

namespace dp::proto {

std::string keys::pattern(std::string_view glob) const {
  // Redis glob syntax: a prefix such as "a[1]:" must not turn into a character class.
  std::string out;
  for (char c : prefix_) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  out.append(glob);
  return out;
}

}  // namespace dp::proto
