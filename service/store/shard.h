// shard: one slice of the store — a hash set for lookups, an ordered index for ranges, and an
// expiry index for TTLs, all of the same entries, under one mutex.
//
// The shard is a plain data structure: its methods require the caller to hold `mu` (the store
// takes it, works, and releases it; nothing awaits in between).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "runtime/plain_mutex.h"
#include "service/store/entry.h"

namespace shoal::service::store {

namespace detail {
inline std::string_view key_of(std::string_view k) { return k; }
inline std::string_view key_of(const entry* e) { return e->key(); }

struct key_hash {
  using is_transparent = void;
  template <class K>
  std::size_t operator()(const K& k) const {
    return absl::Hash<std::string_view>{}(key_of(k));
  }
};
struct key_eq {
  using is_transparent = void;
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    return key_of(a) == key_of(b);
  }
};
struct key_less {
  using is_transparent = void;
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    return key_of(a) < key_of(b);
  }
};
}  // namespace detail

class shard {
 public:
  shard() = default;
  shard(const shard&) = delete;
  shard& operator=(const shard&) = delete;
  ~shard();

  rt::plain_mutex mu;

  entry* find(std::string_view key) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Adds `e`, whose key is not in the shard. The shard takes the caller's reference.
  void insert(entry* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Rewrites `e` in place (requires e->unshared() and e->fits(value.size())): neither the hash
  // set nor the ordered index changes.
  void overwrite(entry* e, std::string_view value, const entry::meta& m)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Puts `fresh` in the place of `old`, which has the same key. The shard takes the caller's
  // reference to `fresh` and gives the caller its reference to `old`.
  void replace(entry* old, entry* fresh) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Takes `e` out of every index (the caller frees it).
  void erase(entry* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // Calls f(entry*) for keys >= from (and < to when has_to), in order, while f returns true.
  template <class F>
  void scan(std::string_view from, std::string_view to, bool has_to, F&& f) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (auto it = ordered_.lower_bound(from); it != ordered_.end(); ++it) {
      if (has_to && (*it)->key() >= to) return;
      if (!f(*it)) return;
    }
  }

  // Earliest expiry in this shard (runtime-clock ns), or 0 if no entry has a TTL.
  int64_t earliest_expiry() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return expiry_.empty() ? 0 : expiry_.begin()->first;
  }
  // The entry that expires first, if it is due at `now`.
  entry* first_expired(int64_t now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (expiry_.empty() || expiry_.begin()->first > now) return nullptr;
    return expiry_.begin()->second;
  }
  // Calls f(entry*) for every entry due at `now`, earliest first, while f returns true.
  template <class F>
  void scan_expired(int64_t now, F&& f) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (const auto& [at, e] : expiry_) {
      if (at > now || !f(e)) return;
    }
  }
  std::size_t size() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return by_key_.size(); }

 private:
  void index_expiry(entry* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void unindex_expiry(entry* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  absl::flat_hash_set<entry*, detail::key_hash, detail::key_eq> by_key_ ABSL_GUARDED_BY(mu);
  absl::btree_set<entry*, detail::key_less> ordered_ ABSL_GUARDED_BY(mu);
  absl::btree_set<std::pair<int64_t, entry*>> expiry_ ABSL_GUARDED_BY(mu);
};

}  // namespace shoal::service::store
