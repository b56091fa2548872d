// local_queue: a worker's bounded run queue. One owner pushes and pops; other workers steal half.
//
// A ring of 256 slots with a consumer index (`head`, advanced by CAS by the owner and by stealers)
// and a producer index (`tail`, written by the owner only). Why it is safe for a stealer to read
// slots before its CAS: the owner writes slot `tail % cap` only when `tail - head < cap` for a head
// it has loaded, so it never overwrites a slot in [head, tail); if head moved meanwhile, the
// stealer's CAS fails and it discards what it read. Slots are relaxed atomics so that racing
// reads of discarded slots are not data races.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "runtime/internal/task_header.h"

namespace shoal::rt::detail {

class local_queue {
 public:
  static constexpr uint32_t k_capacity = 256;

  // Owner only. Returns false when full (the caller moves half to the inject queue).
  bool push(task_header* t) noexcept {
    uint32_t tail = tail_.load(std::memory_order_relaxed);
    uint32_t head = head_.load(std::memory_order_acquire);
    if (tail - head >= k_capacity) return false;
    slots_[tail & k_mask].store(t, std::memory_order_relaxed);
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

  // Owner only: oldest first.
  task_header* pop() noexcept {
    uint32_t head = head_.load(std::memory_order_acquire);
    for (;;) {
      uint32_t tail = tail_.load(std::memory_order_relaxed);
      if (head == tail) return nullptr;
      task_header* t = slots_[head & k_mask].load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(head, head + 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        return t;
      }
    }
  }

  // Owner only, when no other worker can steal (a single-worker runtime): no atomic RMW.
  task_header* pop_unshared() noexcept {
    const uint32_t head = head_.load(std::memory_order_relaxed);
    if (head == tail_.load(std::memory_order_relaxed)) return nullptr;
    task_header* t = slots_[head & k_mask].load(std::memory_order_relaxed);
    head_.store(head + 1, std::memory_order_release);
    return t;
  }

  // Any thread: takes up to half of the queue (rounded up), at most `max`, into `out`.
  uint32_t steal(task_header** out, uint32_t max) noexcept {
    uint32_t head = head_.load(std::memory_order_acquire);
    for (;;) {
      uint32_t tail = tail_.load(std::memory_order_acquire);
      uint32_t n = tail - head;
      if (n == 0 || n > k_capacity) return 0;  // empty, or a stale head: nothing safe to take
      n -= n / 2;
      if (n > max) n = max;
      for (uint32_t i = 0; i < n; ++i) {
        out[i] = slots_[(head + i) & k_mask].load(std::memory_order_relaxed);
      }
      if (head_.compare_exchange_weak(head, head + n, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        return n;
      }
    }
  }

  bool empty() const noexcept {
    return head_.load(std::memory_order_acquire) == tail_.load(std::memory_order_acquire);
  }
  uint32_t size() const noexcept {
    return tail_.load(std::memory_order_acquire) - head_.load(std::memory_order_acquire);
  }

 private:
  static constexpr uint32_t k_mask = k_capacity - 1;
  alignas(64) std::atomic<uint32_t> head_{0};
  alignas(64) std::atomic<uint32_t> tail_{0};
  std::array<std::atomic<task_header*>, k_capacity> slots_{};
};

}  // namespace shoal::rt::detail
