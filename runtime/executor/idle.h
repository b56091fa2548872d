// idle: which workers are parked, and how many are searching for work.
//
// The protocol keeps wake-ups rare and never loses one: a worker that finds new work wakes a
// parked worker only when no worker is already searching (a searcher will find the work); a
// worker that stops searching and parks re-checks every queue if it was the last searcher. At
// most half of the workers search at once, so stealing does not become a thundering herd.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "runtime/internal/spin_lock.h"

namespace shoal::rt::detail {

class idle {
 public:
  explicit idle(int workers) : workers_(workers) {
    state_.store(static_cast<uint32_t>(workers) << k_unparked_shift, std::memory_order_relaxed);
    sleepers_.reserve(workers);
  }

  // After new work was published: the worker to unpark, or -1.
  int worker_to_notify() {
    // A seq_cst read-modify-write orders the work just published before this read of the state
    // (a fence would do, but ThreadSanitizer does not model fences).
    if (!should_wake(state_.fetch_add(0, std::memory_order_seq_cst))) return -1;
    spin_guard lock(mu_);
    if (!should_wake(state_.load(std::memory_order_seq_cst)) || sleepers_.empty()) return -1;
    state_.fetch_add(k_one_searching | k_one_unparked, std::memory_order_seq_cst);
    int id = sleepers_.back();
    sleepers_.pop_back();
    return id;
  }

  // A worker with no local work starts stealing; false if enough workers already search.
  bool transition_to_searching() {
    uint32_t s = state_.load(std::memory_order_seq_cst);
    if (2 * searching(s) >= static_cast<uint32_t>(workers_)) return false;
    state_.fetch_add(k_one_searching, std::memory_order_seq_cst);
    return true;
  }

  // A searching worker found work. True if it was the last searcher (it should wake another).
  bool transition_from_searching() {
    uint32_t prev = state_.fetch_sub(k_one_searching, std::memory_order_seq_cst);
    return searching(prev) == 1;
  }

  // True if this was the last searching worker (it must re-check all queues before parking).
  bool transition_to_parked(int id, bool is_searching) {
    spin_guard lock(mu_);
    uint32_t dec = k_one_unparked | (is_searching ? k_one_searching : 0);
    uint32_t prev = state_.fetch_sub(dec, std::memory_order_seq_cst);
    sleepers_.push_back(id);
    return is_searching && searching(prev) == 1;
  }

  // A parked worker woke by itself (an event or a timer). False if someone notified it (it was
  // removed from the sleepers and counted as searching).
  bool unpark_self(int id) {
    spin_guard lock(mu_);
    auto it = std::find(sleepers_.begin(), sleepers_.end(), id);
    if (it == sleepers_.end()) return false;
    sleepers_.erase(it);
    state_.fetch_add(k_one_unparked, std::memory_order_seq_cst);
    return true;
  }

  bool is_parked(int id) {
    spin_guard lock(mu_);
    return std::find(sleepers_.begin(), sleepers_.end(), id) != sleepers_.end();
  }

  int unparked() const { return static_cast<int>(state_.load() >> k_unparked_shift); }

 private:
  static constexpr uint32_t k_unparked_shift = 16;
  static constexpr uint32_t k_one_searching = 1;
  static constexpr uint32_t k_one_unparked = 1u << k_unparked_shift;
  static uint32_t searching(uint32_t s) { return s & 0xffff; }
  bool should_wake(uint32_t s) const {
    return searching(s) == 0 && (s >> k_unparked_shift) < static_cast<uint32_t>(workers_);
  }

  const int workers_;
  std::atomic<uint32_t> state_{0};
  spin_lock mu_;
  std::vector<int> sleepers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::rt::detail
