// entry: one key and its value, with their metadata, in a single allocation.
//
//   [ revisions, version, expiry, lengths (40 bytes) | key bytes | value bytes ]
//
// Entries are immutable once in a shard: a write allocates a new entry and swaps it in, under the
// shard's lock. Nothing outside that lock holds a pointer to an entry.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
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

  static entry* make(std::string_view key, std::string_view value, const meta& m) {
    void* p = ::operator new(sizeof(entry) + key.size() + value.size());
    auto* e = new (p) entry(m, static_cast<uint32_t>(key.size()), static_cast<uint32_t>(value.size()));
    std::memcpy(e->data_, key.data(), key.size());
    std::memcpy(e->data_ + key.size(), value.data(), value.size());
    return e;
  }
  static void destroy(entry* e) noexcept { ::operator delete(static_cast<void*>(e)); }

  std::string_view key() const { return {data_, key_size_}; }
  std::string_view value() const { return {data_ + key_size_, value_size_}; }
  const meta& metadata() const { return meta_; }
  uint64_t create_revision() const { return meta_.create_revision; }
  uint64_t mod_revision() const { return meta_.mod_revision; }
  uint64_t version() const { return meta_.version; }
  int64_t expires_at_ns() const { return meta_.expires_at_ns; }
  bool expired(int64_t now_ns) const { return meta_.expires_at_ns != 0 && meta_.expires_at_ns <= now_ns; }
  // What the entry counts against the store's byte limit.
  std::size_t charged_bytes() const { return key_size_ + value_size_; }
  void set_mod_revision(uint64_t r) { meta_.mod_revision = r; }
  void set_create_revision(uint64_t r) { meta_.create_revision = r; }

 private:
  entry(const meta& m, uint32_t k, uint32_t v) : meta_(m), key_size_(k), value_size_(v) {}
  meta meta_;
  uint32_t key_size_;
  uint32_t value_size_;
  char data_[];  // NOLINT: flexible array member (a GNU extension g++ and clang accept)
};

struct entry_deleter {
  void operator()(entry* e) const noexcept { entry::destroy(e); }
};
using entry_ptr = std::unique_ptr<entry, entry_deleter>;

}  // namespace shoal::service::store
