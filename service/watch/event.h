// event: one change to the store, as watchers and the history see it. Immutable once published.
//
// An event owns copies of what it reports, in one allocation with its header: the entry written
// (key, value, metadata) and the entry it replaced or removed. Nothing is shared with the store,
// so the store may rewrite an entry in place, and dropping an old event frees one block.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "service/store/entry.h"

namespace shoal::service::watch {

class event;

// A counted reference to an event (the history, the broadcast channel and watchers share them).
class event_ptr {
 public:
  event_ptr() = default;
  event_ptr(const event_ptr& o) noexcept;
  event_ptr(event_ptr&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
  event_ptr& operator=(event_ptr o) noexcept {
    std::swap(e_, o.e_);
    return *this;
  }
  ~event_ptr();

  const event* get() const { return e_; }
  const event* operator->() const { return e_; }
  const event& operator*() const { return *e_; }
  explicit operator bool() const { return e_ != nullptr; }
  // Before the event is published only (the sequencer stamps its revision).
  event* unpublished() const { return e_; }

 private:
  friend class event;
  explicit event_ptr(event* adopted) noexcept : e_(adopted) {}
  event* e_ = nullptr;
};

class event {
 public:
  enum class kind : uint8_t {
    put,
    remove,  // DELETE
    expire,  // EXPIRE
    txn,     // a Txn's writes: `parts`, all with this revision, delivered together
    // Control messages on the same channel, never in the history and without a revision:
    tick,      // the progress clock: watchers that have been idle long enough report progress
    shutdown,  // the server is draining: end every stream now
  };

  // A put of key = value with metadata `m` over `previous` (null for a new key). The sequencer
  // stamps the revisions when it publishes it, unless `m` has them already (a Txn's parts).
  static event_ptr put(std::string_view key, std::string_view value, const store::entry::meta& m,
                       const store::entry* previous);
  // DELETE or EXPIRE of `removed`.
  static event_ptr removal(kind k, const store::entry& removed);
  static event_ptr group(uint64_t revision, std::vector<event_ptr> parts);
  static event_ptr control(kind k, uint64_t revision);

  const kind type;
  uint64_t revision = 0;
  const std::vector<event_ptr> parts;  // txn only

  std::string_view key() const { return {data_, key_size_}; }
  // put: the entry written.
  bool has_entry() const { return type == kind::put; }
  store::entry_view entry() const { return {key(), {data_ + key_size_, value_size_}, meta_}; }
  // The entry replaced or removed, if there was one.
  bool has_previous() const { return has_previous_; }
  store::entry_view previous() const {
    return {key(), {data_ + key_size_ + value_size_, previous_value_size_}, previous_meta_};
  }
  // The written entry's metadata, for the sequencer to stamp before publishing.
  store::entry::meta& unpublished_meta() { return meta_; }

  // What the event keeps alive, counted against the history's byte bound.
  std::size_t bytes() const {
    std::size_t n = sizeof(event) + key_size_ + value_size_ + previous_value_size_;
    for (const auto& p : parts) n += p->bytes();
    return n;
  }

 private:
  friend class event_ptr;
  event(kind k, std::vector<event_ptr> parts) : type(k), parts(std::move(parts)) {}
  static event_ptr make(kind k, std::string_view key, std::string_view value,
                        const store::entry::meta& m, const store::entry* previous,
                        std::vector<event_ptr> parts);
  void ref() const noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void unref() const noexcept;

  mutable std::atomic<uint32_t> refs_{1};
  bool has_previous_ = false;
  uint32_t key_size_ = 0;
  uint32_t value_size_ = 0;
  uint32_t previous_value_size_ = 0;
  store::entry::meta meta_;
  store::entry::meta previous_meta_;
  char data_[];  // NOLINT: key | value | previous value
};

inline event_ptr::event_ptr(const event_ptr& o) noexcept : e_(o.e_) {
  if (e_) e_->ref();
}
inline event_ptr::~event_ptr() {
  if (e_) e_->unref();
}

}  // namespace shoal::service::watch
