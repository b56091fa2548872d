// timer_queue: the runtime's pending timers, a binary min-heap of intrusive entries.
//
// Entries live in the awaiting coroutine's frame (no allocation per timer); each knows its heap
// index, so a cancelled sleep removes itself in O(log n). Workers fire due entries between tasks
// and park no longer than the earliest deadline; an insert that becomes the earliest says so, so
// that a worker parked with a later deadline can be told (runtime_core::timer_inserted).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "runtime/internal/spin_lock.h"
#include "runtime/internal/wake_list.h"
#include "runtime/time/clock.h"

namespace shoal::rt::detail {

struct timer_entry {
  static constexpr std::size_t k_not_queued = std::numeric_limits<std::size_t>::max();

  clock::time_point deadline;
  std::size_t index = k_not_queued;  // position in the heap; guarded by the queue's mutex
  task_header* task = nullptr;       // woken when the deadline passes
};

class timer_queue {
 public:
  // Returns true if `e` is now the earliest deadline.
  bool insert(timer_entry* e);
  // Removes e if it has not fired yet. Returns true if it was still queued.
  bool remove(timer_entry* e);
  // Wakes the tasks of entries due at `now`, earliest first, at most `max` of them (the rest stay
  // due for the next call). Returns how many fired.
  std::size_t fire_due(clock::time_point now,
                       std::size_t max = std::numeric_limits<std::size_t>::max());
  std::optional<clock::time_point> next_deadline() const noexcept {
    int64_t ns = next_.load(std::memory_order_seq_cst);  // see runtime_core::timer_inserted
    if (ns == k_none) return std::nullopt;
    return clock::time_point(clock::duration(ns));
  }
  std::size_t size() const;

 private:
  static constexpr int64_t k_none = std::numeric_limits<int64_t>::max();
  void sift_up(std::size_t i) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void sift_down(std::size_t i) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void erase_at(std::size_t i) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void publish_next() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The deadline sits beside its entry, so that sifting compares keys in one array instead of
  // chasing pointers into scattered task frames (perf: most of the heap's time was those misses).
  struct slot {
    int64_t deadline;
    timer_entry* entry;
  };
  void place(std::size_t i, slot s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    heap_[i] = s;
    s.entry->index = i;
  }

  mutable spin_lock mu_;
  std::vector<slot> heap_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> next_{k_none};  // earliest deadline, readable without the lock
};

}  // namespace shoal::rt::detail
