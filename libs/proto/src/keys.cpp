#include "dp/proto/keys.hpp"

namespace dp::proto {

std::string keys::literal(std::string_view key) {
  // Redis glob syntax: a prefix such as "a[1]:" must not turn into a character class.
  std::string out;
  for (char c : key) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  return out;
}

std::string keys::pattern(std::string_view glob) const {
  return literal(prefix_).append(glob);
}

}  // namespace dp::proto
