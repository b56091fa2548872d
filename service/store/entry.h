// entry: one key and its value, with their metadata, in a single allocation.
//
//   [ revisions, version, expiry, lengths, references (40 bytes) | key | value | spare ]
//
// The shard holds one reference and reads or writes an entry only under its lock. An event may
// share an entry the store will not write again: the entry it created (until the key is next
// written) or the one it replaced or removed (which has left the store). An entry nobody shares
// is rewritten in place by an overwrite whose value fits it, so neither index of the shard moves
// (docs/design.md, "Writes in place"). At most three references: the shard, the event that
// created the entry, and the one that replaced or removed it.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>

namespace shoal::service::store {

class entry {
 public:
  struct meta {
    uint64_t create_revision = 0;
    uint64_t mod_revision = 0;
    uint64_t version = 0;
    int64_t expires_at_ns = 0;  // runtime-clock time; 0 = no TTL
  };

  // Keys are at most 65,535 bytes (live.max_key_bytes is capped there). One reference, the
  // caller's.
  static entry* make(std::string_view key, std::string_view value, const meta& m) {
    void* p = ::operator new(sizeof(entry) + key.size() + value.size());
    auto* e =
        new (p) entry(m, static_cast<uint16_t>(key.size()), static_cast<uint32_t>(value.size()));
    std::memcpy(e->data_, key.data(), key.size());
    std::memcpy(e->data_ + key.size(), value.data(), value.size());
    return e;
  }
  static void ref(const entry* e) noexcept { e->refs_.fetch_add(1, std::memory_order_relaxed); }
  static void unref(const entry* e) noexcept {
    if (e->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      ::operator delete(const_cast<void*>(static_cast<const void*>(e)));
    }
  }

  // Whether a value of n bytes may replace this one in place (the caller holds the only
  // reference): it fits, and leaves little room unused (at most its own size or 64 bytes, and
  // never more than 255).
  bool fits(std::size_t n) const {
    const std::size_t room = std::size_t{value_size_} + spare_;
    return n <= room && room - n <= std::min<std::size_t>(0xff, std::max<std::size_t>(n, 64));
  }
  // Whether only the shard holds the entry. The acquire pairs with unref's release: whatever a
  // sharer read of the entry happened before an overwrite.
  bool unshared() const { return refs_.load(std::memory_order_acquire) == 1; }
  // Replaces the value and metadata; the key stays. Requires unshared() and fits(value.size()).
  void overwrite(std::string_view value, const meta& m) {
    const std::size_t room = std::size_t{value_size_} + spare_;
    std::memcpy(data_ + key_size_, value.data(), value.size());
    value_size_ = static_cast<uint32_t>(value.size());
    spare_ = static_cast<uint8_t>(room - value.size());
    meta_ = m;
  }
  // Events never read a shared entry's metadata while the store may set it (they hold their
  // own copy of the metadata of what they wrote).
  void set_metadata(const meta& m) { meta_ = m; }

  std::string_view key() const { return {data_, key_size_}; }
  std::string_view value() const { return {data_ + key_size_, value_size_}; }
  const meta& metadata() const { return meta_; }
  uint64_t create_revision() const { return meta_.create_revision; }
  uint64_t mod_revision() const { return meta_.mod_revision; }
  uint64_t version() const { return meta_.version; }
  int64_t expires_at_ns() const { return meta_.expires_at_ns; }
  bool expired(int64_t now_ns) const {
    return meta_.expires_at_ns != 0 && meta_.expires_at_ns <= now_ns;
  }
  // What the entry counts against the store's byte limit.
  std::size_t charged_bytes() const { return key_size_ + value_size_; }

 private:
  entry(const meta& m, uint16_t k, uint32_t v) : meta_(m), value_size_(v), key_size_(k) {}
  meta meta_;
  uint32_t value_size_;
  uint16_t key_size_;
  mutable std::atomic<uint8_t> refs_{1};
  uint8_t spare_ = 0;  // bytes after the value, left by an overwrite with a shorter one
  char data_[];        // NOLINT: flexible array member (a GNU extension g++ and clang accept)
};
static_assert(sizeof(entry) == 40);

// An entry's contents, wherever they are held: the store (under its shard's lock) or an event.
struct entry_view {
  std::string_view key;
  std::string_view value;
  entry::meta meta;

  static entry_view of(const entry& e) { return {e.key(), e.value(), e.metadata()}; }
};

}  // namespace shoal::service::store
