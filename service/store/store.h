// store: Shoal's sharded key-value store. Synchronous: every method locks one shard at a time,
// works and unlocks, so a coroutine can call it and no lock is ever held across co_await.
//
// A write holds its shard's lock while the hub (the innermost lock) gives it a revision and
// publishes its event: events leave in revision order. Whatever finds an expired entry expires it
// in the same critical section (its own revision and an EXPIRE event), so an expired key is never
// visible.
//
//   store s({.shards = 16, .clock = &rt.clock(), .hub = &hub});
//   auto r = s.put("k", "v", ttl_spec{}, condition{}, limits{},
//                  [&](const entry_view* before, const entry_view* after, bool applied) { ... });
//   s.get("k", [&](const entry& e) { reply.set_value(e.value()); });
//
// (tests/service/store_test.cc makes these calls.)
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/sync/notify.h"
#include "runtime/time/clock.h"
#include "service/store/entry.h"
#include "service/store/shard.h"
#include "service/watch/hub.h"

namespace shoal::service::store {

struct condition {
  enum class kind { none, if_absent, if_present, if_mod_revision };
  kind type = kind::none;
  uint64_t revision = 0;
  bool holds(const entry* current) const;
};

// A write refused at a store-wide limit carries this payload, naming the limit (k_limit_max_keys
// or k_limit_max_bytes), so that the handler edge can count it; the store counts nothing itself.
inline constexpr char k_limit_payload[] = "shoal.store.limit";
inline constexpr char k_limit_max_keys[] = "max_keys";
inline constexpr char k_limit_max_bytes[] = "max_bytes";

// Store-wide limits, from the live configuration at the time of the call.
struct limits {
  uint64_t max_keys = UINT64_MAX;
  uint64_t max_bytes = UINT64_MAX;
};

// The longest TTL a write may ask for: 100 years. A deadline is a signed 64-bit count of
// nanoseconds, which a longer TTL could overflow (the handlers refuse one with INVALID_ARGUMENT;
// the store saturates, should one reach it).
inline constexpr int64_t k_max_ttl_ms = 3'155'760'000'000;

// What a write's TTL becomes.
struct ttl_spec {
  enum class kind { none, after_ms, keep };
  kind type = kind::none;
  int64_t ms = 0;
};

struct write_result {
  bool applied = false;
  uint64_t revision = 0;  // of the write (applied), else the store's revision
};

// The smallest key greater than every key that starts with `prefix`, for a Range's exclusive end;
// false if there is none (the prefix is empty or all 0xff bytes).
bool prefix_end(std::string_view prefix, std::string* end);

// A copy taken under a shard's lock, for results gathered across shards (Range).
struct entry_copy {
  std::string key;
  std::string value;
  entry::meta meta;
};

struct range_query {
  std::string from;  // inclusive
  std::string to;    // exclusive, when has_to
  bool has_to = false;
  std::size_t max_items = 1000;
  std::size_t max_bytes = 1 << 20;  // at least one entry is returned, unless strict_bytes
  // The page stays within max_bytes even if that leaves it empty (a Range inside a Batch or a
  // Txn, whose reply has only so much room left): an empty page with a continuation.
  bool strict_bytes = false;
  bool keys_only = false;
};

struct range_page {
  std::vector<entry_copy> entries;
  std::string continuation;  // empty when the range is exhausted
};

// The value of `current` (absent: 0) plus delta: FAILED_PRECONDITION if the value is not a
// decimal integer, OUT_OF_RANGE on overflow.
absl::StatusOr<int64_t> incremented(const entry* current, int64_t delta);

// A Txn, as the store runs it (the handler has validated it: no key written twice in a branch).
struct txn_compare {
  enum class target { value, version, create_revision, mod_revision, exists };
  enum class result { equal, not_equal, less, greater };
  std::string key;
  target what = target::value;
  result how = result::equal;
  std::string value;   // value
  int64_t number = 0;  // version, create_revision, mod_revision
  bool exists = false;
  bool holds(const entry* current) const;
};

struct txn_op {
  enum class kind { get, put, remove, increment, range };
  kind type = kind::get;
  std::string key;
  std::string value;  // put
  ttl_spec ttl;       // put, increment
  int64_t delta = 0;  // increment
  range_query range;  // range (key unused): makes the Txn lock every shard
};

struct txn_request {
  std::vector<txn_compare> compares;
  std::vector<txn_op> success;
  std::vector<txn_op> failure;
  // Room for the results, in bytes (keys, values and a little per result). A branch whose gets
  // would need more is refused whole, before anything is written (RESOURCE_EXHAUSTED); its ranges
  // are cut to what is left (an empty page with a continuation, if need be).
  std::size_t reply_budget = SIZE_MAX;
};

// What a result costs in a reply besides its key and value: revisions, version, TTL, framing.
inline constexpr std::size_t k_result_overhead_bytes = 64;

struct txn_op_result {
  bool found = false;  // get: the key exists; remove: it existed; put/increment: it existed
  entry_copy entry;    // get: the entry; put: key and metadata; increment: the whole entry
  int64_t number = 0;  // increment: the new value
  range_page page;     // range
};

struct txn_result {
  bool succeeded = false;
  uint64_t revision = 0;  // 0: the branch only read
  std::vector<txn_op_result> results;
};

// One change read back from a log (a durable server's start): applied as it was first made.
struct restored_op {
  enum class kind { put, remove, expire };
  kind type = kind::put;
  std::string_view key;
  std::string_view value;  // put
  uint64_t create_revision = 0;
  uint64_t version = 0;
  int64_t expires_at_ns = 0;  // runtime-clock time; 0 = no TTL
};

class store {
 public:
  struct options {
    uint32_t shards = 16;  // a power of two
    const rt::clock* clock = nullptr;
    watch::hub* hub = nullptr;
    // Notified when a write sets an expiry earlier than the purge task's next wake-up.
    rt::notify* expiry_changed = nullptr;
    // Whether whatever finds an expired entry expires it. A replica's store must not (its clock
    // is its own: only the leader decides expiries, as log entries, expire_if): an expired entry
    // is then hidden from reads and left in place for writes until its expiry is applied.
    bool expire_on_access = true;
  };
  explicit store(options o);
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  using visit = absl::FunctionRef<void(const entry&)>;
  // before: the entry replaced or removed (null if none); after: the entry written (null on
  // delete), or, when the condition did not hold, the current entry (null if none).
  using observe = absl::FunctionRef<void(const entry_view* before, const entry_view* after)>;
  // As observe, and whether the write was applied (the condition held).
  using observe_write =
      absl::FunctionRef<void(const entry_view* before, const entry_view* after, bool applied)>;

  // Calls `found` under the shard's lock if the key exists. Returns whether it does.
  bool get(std::string_view key, visit found);

  absl::StatusOr<write_result> put(std::string_view key, std::string_view value, ttl_spec ttl,
                                   const condition& cond, const limits& lim, observe_write obs);
  absl::StatusOr<write_result> remove(std::string_view key, const condition& cond, observe obs);
  // Deletes every key starting with prefix, each in its own revision. Calls `each` for every
  // deleted entry. Returns how many were deleted.
  uint64_t remove_prefix(std::string_view prefix, visit each);
  // Adds delta to a decimal-integer value (absent = 0). FAILED_PRECONDITION if the value is not an
  // integer, OUT_OF_RANGE on overflow. Calls `after` with the entry written.
  absl::StatusOr<int64_t> increment(std::string_view key, int64_t delta, ttl_spec ttl,
                                    const limits& lim, visit after);

  // Runs a Txn atomically (docs/design.md): the touched shards locked in index order, the
  // compares, then the branch, in one revision. An operation that fails (a limit, an increment of
  // a non-integer) fails the whole Txn and nothing is written.
  absl::StatusOr<txn_result> txn(const txn_request& t, const limits& lim);

  // Applies one revision read back from a log: its changes publish as they first did (one event,
  // or one group for a Txn's writes) with the same revision, beyond any limit. DATA_LOSS if they
  // do not follow from the store as it is (a log that is not this store's).
  absl::Status restore(uint64_t revision, bool group, const std::vector<restored_op>& ops);
  // Loads one entry of a snapshot as it was (no event, no revision: the hub starts after the
  // snapshot's). DATA_LOSS if the key is already there.
  absl::Status load(std::string_view key, std::string_view value, const entry::meta& m);

  using range_query = ::shoal::service::store::range_query;
  using range_page = ::shoal::service::store::range_page;
  range_page range(const range_query& q);
  uint64_t count(const range_query& q);

  // Milliseconds left before `e` expires (0 = no TTL), rounded up.
  int64_t ttl_remaining_ms(const entry::meta& m) const;

  // TTL housekeeping: the earliest expiry (runtime-clock ns, 0 = none), and expiring what is due.
  int64_t earliest_expiry();
  // Expires every entry due now. Returns how many entries it looked at (all of them expired).
  std::size_t expire_due();
  // A replica's purge (expire_on_access off): up to `max` entries due now, with the revision
  // that wrote each, for the leader to propose; and, applying that proposal on every replica,
  // the expiry of `key` if it is still the entry written at `mod_revision` (an EXPIRE event,
  // with its revision). Returns whether it expired.
  struct due_entry {
    std::string key;
    uint64_t mod_revision = 0;
  };
  std::vector<due_entry> due(std::size_t max);
  bool expire_if(std::string_view key, uint64_t mod_revision);
  // Every entry, expired or not, a shard at a time under its lock (a replica's snapshot, taken
  // when nothing else writes).
  void for_each(visit each);
  // Removes every entry without an event (a replica about to load a snapshot).
  void clear();

  // The purge task's next wake-up (0: computing it, or none): writes with an earlier expiry
  // notify options.expiry_changed.
  void set_purge_wakeup(int64_t ns) { purge_wakeup_.store(ns, std::memory_order_seq_cst); }

  uint64_t keys() const { return keys_.load(std::memory_order_relaxed); }
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  uint64_t revision() const { return hub_->revision(); }
  std::size_t shard_count() const { return shards_.size(); }

 private:
  shard& shard_for(std::string_view key) { return *shards_[shard_index(key)]; }
  int64_t now_ns() const;
  int64_t expiry_for(ttl_spec ttl, const entry* current) const;
  // Under the shard's lock: the live entry for key (expiring it first if it is due).
  entry* live_entry(shard& s, std::string_view key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  void expire_locked(shard& s, entry* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  // Publishes the removal (DELETE or EXPIRE), stores its revision if asked, and takes e out of
  // the shard; the caller frees it.
  entry* unlink_locked(shard& s, entry* e, bool expired, uint64_t* revision = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  // A put, before it is published: its event, and a new entry unless `current` (null for a new
  // key) can be rewritten in place.
  struct planned_put {
    entry* fresh;
    watch::event_ptr event;
  };
  static planned_put plan_put(std::string_view key, std::string_view value, const entry::meta& m,
                              entry* current);
  // Once the event is published: writes the put into the shard with the event's metadata (its
  // revisions now stamped). Returns the entry that holds the key.
  static entry* apply_put(shard& s, entry* current, const planned_put& p, std::string_view value)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  // Publishes a put of key = value over `current` (null for a new key) and writes it into the
  // shard. Returns the entry written and the event, which holds what `current` held before.
  struct written {
    entry* stored;
    watch::event_ptr event;
  };
  written write_locked(shard& s, std::string_view key, std::string_view value, entry* current,
                       int64_t expires_at) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  absl::Status reserve(const entry* current, std::size_t new_bytes, const limits& lim);
  // Gives back what reserve() took, for a write that will not happen after all.
  void unreserve(const entry* current, std::size_t new_bytes);
  // A Range page for a Txn, which holds every shard's lock (and the hub's).
  range_page range_locked(const range_query& q);
  std::size_t shard_index(std::string_view key) const;

  const rt::clock* clock_;
  watch::hub* hub_;
  std::vector<std::unique_ptr<shard>> shards_;
  uint64_t shard_mask_;
  std::atomic<uint64_t> keys_{0};
  std::atomic<uint64_t> bytes_{0};
  rt::notify* expiry_changed_;
  bool expire_on_access_;
  std::atomic<int64_t> purge_wakeup_{0};
};

}  // namespace shoal::service::store
