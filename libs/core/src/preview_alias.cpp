#include "dp/core/preview_alias.hpp"

#include <algorithm>

namespace dp {
namespace {

constexpr size_t dns_label_max = 63;
constexpr size_t hash_length = 7;
constexpr char crockford[] = "0123456789abcdefghjkmnpqrstvwxyz";

bool is_short_id_shape(std::string_view s) {
  return s.size() == 8 && std::all_of(s.begin(), s.end(), [](char c) {
           return std::string_view(crockford).find(c) != std::string_view::npos;
         });
}

bool is_pull_request_shape(std::string_view s) {
  return s.size() > 3 && s.substr(0, 3) == "pr-" &&
         std::all_of(s.begin() + 3, s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// FNV-1a 64 in Crockford base32: stable across processes and versions, unlike std::hash.
std::string short_hash(std::string_view key, size_t length) {
  uint64_t h = 1469598103934665603ull;
  for (char c : key) {
    h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  }
  std::string out;
  for (size_t i = 0; i < length; ++i) {
    out += crockford[h & 31];
    h >>= 5;
  }
  return out;
}

// `<project>--<suffix>`, where `slug` is the readable form and `key` what the hash is over;
// `lossless`: the slug is the key itself (nothing was lowercased or replaced).
std::string label(std::string_view project, std::string_view slug, bool pull_request,
                  std::string_view key, bool lossless) {
  size_t budget = dns_label_max - std::min(project.size() + 2, dns_label_max);
  std::string out = std::string(project) + "--";
  bool plain = lossless && !slug.empty() && slug.size() <= budget && !is_short_id_shape(slug) &&
               is_pull_request_shape(slug) == pull_request;
  if (plain) {
    return out + std::string(slug);
  }
  // The hashed class: `<prefix>--<hash>`. A project name holds at most 54 characters, so the
  // budget is at least 7: "b--" and a 4-character hash.
  size_t hash = std::min(hash_length, budget - 3);
  std::string prefix(slug.substr(0, budget - 2 - hash));
  while (!prefix.empty() && prefix.back() == '-') {
    prefix.pop_back();
  }
  if (prefix.empty()) {
    prefix = "b";
  }
  return out + prefix + "--" + short_hash(key, hash);
}

}  // namespace

std::string branch_slug(std::string_view branch) {
  std::string out;
  for (char c : branch) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      out += c;
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  while (!out.empty() && out.back() == '-') {
    out.pop_back();
  }
  return out;
}

std::string branch_alias(std::string_view project, std::string_view branch) {
  auto slug = branch_slug(branch);
  bool lossless = slug == branch;
  return label(project, slug, false, branch, lossless);
}

std::string pull_request_alias(std::string_view project, int64_t number) {
  std::string n = std::to_string(number);
  return label(project, "pr-" + n, true, "pull/" + n, true);
}

}  // namespace dp
