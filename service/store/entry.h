// entry: one key and its value, with their metadata, in a single allocation.
//
//   [ revisions, version, expiry, lengths, references (40 bytes) | key bytes | value bytes ]
//
// Entries are immutable once published: a write allocates a new entry and swaps it in, under the
// shard's lock. The shard holds one reference; the events that wrote or replaced the entry hold
// the others, so the watch history shares the store's bytes instead of copying them. That bounds
// the count: the shard, the event that wrote the entry and the one that replaced or removed it.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>
#include <utility>

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
  void set_mod_revision(uint64_t r) { meta_.mod_revision = r; }
  void set_create_revision(uint64_t r) { meta_.create_revision = r; }

 private:
  entry(const meta& m, uint16_t k, uint32_t v) : meta_(m), value_size_(v), key_size_(k) {}
  meta meta_;
  uint32_t value_size_;
  uint16_t key_size_;
  mutable std::atomic<uint16_t> refs_{1};
  char data_[];  // NOLINT: flexible array member (a GNU extension g++ and clang accept)
};
static_assert(sizeof(entry) == 40);

// A counted reference to an entry, for holders outside the shard (events).
class entry_ref {
 public:
  entry_ref() = default;
  // Shares `e` (adds a reference).
  explicit entry_ref(entry* e) noexcept : e_(e) {
    if (e_) entry::ref(e_);
  }
  entry_ref(const entry_ref& o) noexcept : entry_ref(o.e_) {}
  entry_ref(entry_ref&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
  entry_ref& operator=(entry_ref o) noexcept {
    std::swap(e_, o.e_);
    return *this;
  }
  ~entry_ref() {
    if (e_) entry::unref(e_);
  }

  const entry* get() const { return e_; }
  const entry* operator->() const { return e_; }
  const entry& operator*() const { return *e_; }
  explicit operator bool() const { return e_ != nullptr; }
  // Before the entry is published only (the sequencer stamps its revision).
  entry* unpublished() const { return e_; }

 private:
  entry* e_ = nullptr;
};

}  // namespace shoal::service::store
