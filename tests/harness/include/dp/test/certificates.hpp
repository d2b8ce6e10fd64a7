// Self-signed test certificates made with the openssl CLI (P-256, SANs as given).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace dp::test {

struct pem_pair {
  std::string chain_pem;
  std::string key_pem;
  std::filesystem::path chain_file;
  std::filesystem::path key_file;
};

// Writes <stem>.crt and <stem>.key in `dir`, valid for `days` days, for the DNS names given
// (the first is also the CN). Throws when openssl fails.
inline pem_pair make_certificate(const std::filesystem::path& dir, const std::string& stem,
                                 const std::vector<std::string>& names, int days = 30) {
  pem_pair p{.chain_file = dir / (stem + ".crt"), .key_file = dir / (stem + ".key")};
  std::string san;
  for (const auto& n : names) {
    san += (san.empty() ? "DNS:" : ",DNS:") + n;
  }
  std::string cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
      " -keyout '" +
      p.key_file.string() + "' -out '" + p.chain_file.string() + "' -days " + std::to_string(days) +
      " -subj '/CN=" + names.front() + "' -addext 'subjectAltName=" + san + "' 2>/dev/null";
  if (std::system(cmd.c_str()) != 0) {
    throw std::runtime_error("openssl req failed: " + cmd);
  }
  auto slurp = [](const std::filesystem::path& f) {
    std::ifstream in(f);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  p.chain_pem = slurp(p.chain_file);
  p.key_pem = slurp(p.key_file);
  return p;
}

}  // namespace dp::test
