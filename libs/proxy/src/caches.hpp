#pragma once
// Private to libs/proxy: what the proxy remembers of Redis between requests. The manifests
// (lru_cache<site>) and the files (lru_cache<cached_file>) have their own headers.

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace dp::proxy {

using clock = std::chrono::steady_clock;

// Alias and custom-domain lookups, positive and negative, with a TTL backstop. Every
// invalidation bumps the generation, so a lookup that started before it does not store its
// (possibly stale) answer afterwards. An entry may name the project it was read from, so that a
// route event of that project drops it.
class lookup_cache {
 public:
  struct entry {
    std::optional<std::string> value;
    clock::time_point expires;
    std::string project;  // "" when the lookup did not learn it
  };

  bool get(const std::string& key, std::optional<std::string>& out);
  uint64_t generation();
  void put(const std::string& key, std::optional<std::string> value, uint64_t gen,
           std::chrono::milliseconds ttl, std::string project = {});
  void erase(const std::string& key);
  // Every entry of `project` (none when "") and every key of `keys`, as one invalidation.
  void drop(const std::string& project, const std::vector<std::string>& keys);
  void clear();

 private:
  std::mutex mu_;
  std::unordered_map<std::string, entry> map_;
  uint64_t gen_ = 0;
};

// The deployment each alias served before its latest switch, and when it switched. A page loaded
// before a redeploy or a rollback still asks for its own fingerprinted assets, which the new
// deployment may not have (version skew): the previous deployment answers for those for a while.
class alias_history {
 public:
  // Called with every resolved alias: a new id for an alias is a switch.
  void served(const std::string& alias, const std::string& id);
  std::optional<std::string> previous(const std::string& alias, clock::duration grace);

 private:
  struct entry {
    std::string current;
    std::string previous;
    clock::time_point switched;
  };
  std::mutex mu_;
  std::unordered_map<std::string, entry> map_;
};

}  // namespace dp::proxy
