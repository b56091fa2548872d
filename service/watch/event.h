// event: one change to the store, as watchers and the history see it. Immutable once published.
//
// An event reports the entry written and the one it replaced or removed. Each side is either
// shared with the store (an entry the store will not write again: one it just created, or one it
// let go of) or copied into the event's own allocation (an entry the store rewrote in place).
// Sharing keeps a bulk load's history small; copying lets an overwrite stay in place.
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
  // Before the event is published only (the hub stamps its revision).
  event* unpublished() const { return e_; }
  // Another reference to an event no other thread can see yet: a plain increment, where a
  // shared event needs an atomic one (the hub takes the history's and the channel's).
  event_ptr share_unpublished() const;

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
    // A control message on the same channel, never in the history, carrying the revision it
    // was sent at: the progress clock (watchers idle long enough report progress). It travels
    // with the events because its meaning is their order: every event up to its revision came
    // before it. The drain is not a message: streams await context::shutdown.
    tick,
    // A control message: the configuration's auth rules changed, and each watcher checks that
    // its caller may still watch what it watches.
    rules,
    // A control message: a replica replaced its state with the leader's snapshot, taken at this
    // revision (hub::reset). A watcher that had not delivered up to it missed events no history
    // here holds: it is told where to resume (another replica may hold them).
    reset,
  };

  // A put of key = value with metadata `m` (its mod_revision is the event's revision, which
  // the hub stamps when it publishes it, with create_revision if that is 0).
  //   share_written: the entry just created for the key, shared instead of copied.
  //   previous: the entry replaced (null for a new key), shared if share_previous (the store lets
  //   go of it), else copied (the store rewrites it in place).
  static event_ptr put(std::string_view key, std::string_view value, const store::entry::meta& m,
                       const store::entry* share_written, const store::entry* previous,
                       bool share_previous);
  // DELETE or EXPIRE of `removed` (shared: the store lets go of it).
  static event_ptr removal(kind k, const store::entry& removed);
  static event_ptr group(uint64_t revision, std::vector<event_ptr> parts);
  static event_ptr control(kind k, uint64_t revision);
  ~event();

  // Before publishing: gives the event its revision (and a creating put its create_revision).
  void stamp(uint64_t rev) {
    revision = rev;
    if (type == kind::put && create_revision_ == 0) create_revision_ = rev;
  }

 private:
  mutable std::atomic<uint32_t> refs_{1};

 public:
  const kind type;

 private:
  bool has_previous_ = false;
  // Copied bytes in data_: key (unless the written entry is shared) | value | previous value.
  uint16_t key_size_ = 0;
  uint32_t value_size_ = 0;
  uint32_t previous_value_size_ = 0;

 public:
  uint64_t revision = 0;

  std::string_view key() const;
  // put: the entry written.
  bool has_entry() const { return type == kind::put; }
  store::entry_view entry() const;
  // The entry replaced or removed, if there was one (else previous() is empty).
  bool has_previous() const { return has_previous_; }
  store::entry_view previous() const;
  // txn: its writes.
  const std::vector<event_ptr>& parts() const;

  // What the event keeps alive, counted against the history's byte bound as if nothing were
  // shared with the store (a replaced or removed entry lives on only through its events).
  std::size_t bytes() const;

 private:
  friend class event_ptr;
  // A copied previous entry's revision and expiry, at the front of data_; its create_revision is
  // the written entry's and its version one less.
  struct previous_meta {
    uint64_t mod_revision;
    int64_t expires_at_ns;
  };
  explicit event(kind k) : type(k) {}
  void ref() const noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void unref() const noexcept;
  bool previous_copied() const { return has_previous_ && shared_previous_ == nullptr; }
  const char* bytes_begin() const {
    return data_ + (previous_copied() ? sizeof(previous_meta) : 0);
  }

  union {
    const store::entry* shared_written_ = nullptr;  // put
    std::vector<event_ptr>* parts_;                 // txn
  };
  const store::entry* shared_previous_ = nullptr;
  // The written entry's metadata (its mod_revision is `revision`).
  uint64_t create_revision_ = 0;
  uint64_t version_ = 0;
  int64_t expires_at_ns_ = 0;
  alignas(8) char data_[];  // NOLINT: flexible array member
};
static_assert(sizeof(event) == 64, "an event's header is one cache line");

inline event_ptr::event_ptr(const event_ptr& o) noexcept : e_(o.e_) {
  if (e_) e_->ref();
}
inline event_ptr event_ptr::share_unpublished() const {
  e_->refs_.store(e_->refs_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  return event_ptr(e_);
}
inline event_ptr::~event_ptr() {
  if (e_) e_->unref();
}

}  // namespace shoal::service::watch
