// A bounded, thread-safe LRU map from string keys to shared immutable values. Each entry has a
// cost (bytes for the file cache, 1 for the manifest cache and the verified credentials); the least
// recently used entries are evicted while the total cost exceeds the capacity. Values are
// shared_ptr<const V>, so a reader keeps an evicted value alive for as long as it sends it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace dp::proxy {

template <class V>
class lru_cache {
 public:
  explicit lru_cache(size_t capacity) : capacity_(capacity) {}

  std::shared_ptr<const V> get(const std::string& key) {
    std::lock_guard lock(mu_);
    auto it = index_.find(key);
    if (it == index_.end()) {
      ++misses_;
      return nullptr;
    }
    ++hits_;
    order_.splice(order_.begin(), order_, it->second);
    return it->second->value;
  }

  // Inserts or replaces; an entry costing more than the whole capacity is not kept.
  void put(const std::string& key, std::shared_ptr<const V> value, size_t cost) {
    std::lock_guard lock(mu_);
    if (auto it = index_.find(key); it != index_.end()) {
      used_ -= it->second->cost;
      order_.erase(it->second);
      index_.erase(it);
    }
    if (cost > capacity_) {
      return;
    }
    order_.push_front(node{key, std::move(value), cost});
    index_.emplace(key, order_.begin());
    used_ += cost;
    while (used_ > capacity_) {
      auto& victim = order_.back();
      used_ -= victim.cost;
      index_.erase(victim.key);
      order_.pop_back();
    }
  }

  void clear() {
    std::lock_guard lock(mu_);
    index_.clear();
    order_.clear();
    used_ = 0;
  }

  size_t size() const {
    std::lock_guard lock(mu_);
    return index_.size();
  }
  size_t used() const {
    std::lock_guard lock(mu_);
    return used_;
  }
  size_t capacity() const noexcept { return capacity_; }
  uint64_t hits() const {
    std::lock_guard lock(mu_);
    return hits_;
  }
  uint64_t misses() const {
    std::lock_guard lock(mu_);
    return misses_;
  }

 private:
  struct node {
    std::string key;
    std::shared_ptr<const V> value;
    size_t cost;
  };

  size_t capacity_;
  mutable std::mutex mu_;
  std::list<node> order_;  // most recently used first
  std::unordered_map<std::string, typename std::list<node>::iterator> index_;
  size_t used_ = 0;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
};

}  // namespace dp::proxy
