// The alias and domain lookup cache and the alias history (see caches.hpp).
#include "caches.hpp"

#include <utility>

namespace dp::proxy {

bool lookup_cache::get(const std::string& key, std::optional<std::string>& out) {
  std::lock_guard lock(mu_);
  auto it = map_.find(key);
  if (it == map_.end() || it->second.expires <= clock::now()) {
    return false;
  }
  out = it->second.value;
  return true;
}

uint64_t lookup_cache::generation() {
  std::lock_guard lock(mu_);
  return gen_;
}

void lookup_cache::put(const std::string& key, std::optional<std::string> value, uint64_t gen,
                       std::chrono::milliseconds ttl, std::string project) {
  std::lock_guard lock(mu_);
  if (gen != gen_) {
    return;
  }
  // Random host names must not grow memory without bound.
  if (map_.size() >= 100'000) {
    map_.clear();
  }
  map_[key] = entry{std::move(value), clock::now() + ttl, std::move(project)};
}

void lookup_cache::erase(const std::string& key) {
  std::lock_guard lock(mu_);
  ++gen_;
  map_.erase(key);
}

void lookup_cache::drop(const std::string& project, const std::vector<std::string>& keys) {
  std::lock_guard lock(mu_);
  ++gen_;
  for (const auto& key : keys) {
    map_.erase(key);
  }
  // A scan, not an index: route events are rare (settings changes), lookups are not.
  if (!project.empty()) {
    std::erase_if(map_, [&](const auto& kv) { return kv.second.project == project; });
  }
}

void lookup_cache::clear() {
  std::lock_guard lock(mu_);
  ++gen_;
  map_.clear();
}

void alias_history::served(const std::string& alias, const std::string& id) {
  std::lock_guard lock(mu_);
  auto [it, added] = map_.try_emplace(alias);
  if (added && map_.size() > 100'000) {
    map_.clear();  // bounded like the lookups; at worst a recent switch is forgotten
    it = map_.try_emplace(alias).first;
  }
  auto& e = it->second;
  if (e.current != id) {
    e.previous = std::exchange(e.current, id);
    e.switched = clock::now();
  }
}

std::optional<std::string> alias_history::previous(const std::string& alias,
                                                   clock::duration grace) {
  std::lock_guard lock(mu_);
  auto it = map_.find(alias);
  if (it == map_.end() || it->second.previous.empty() ||
      clock::now() - it->second.switched > grace) {
    return std::nullopt;
  }
  return it->second.previous;
}

}  // namespace dp::proxy
