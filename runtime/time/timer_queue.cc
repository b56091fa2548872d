#include "runtime/time/timer_queue.h"

#include <utility>

namespace shoal::rt::detail {

bool timer_queue::insert(timer_entry* e) {
  spin_guard lock(mu_);
  heap_.push_back({e->deadline.time_since_epoch().count(), e});
  e->index = heap_.size() - 1;
  sift_up(e->index);
  publish_next();
  return e->index == 0;
}

bool timer_queue::remove(timer_entry* e) {
  spin_guard lock(mu_);
  if (e->index == timer_entry::k_not_queued) return false;
  erase_at(e->index);
  publish_next();
  return true;
}

std::size_t timer_queue::fire_due(clock::time_point now, std::size_t max) {
  const int64_t at = now.time_since_epoch().count();
  if (max == 0 || next_.load(std::memory_order_acquire) > at) return 0;
  std::size_t fired = 0;
  for (;;) {
    wake_list wakes;
    {
      spin_guard lock(mu_);
      while (!heap_.empty() && heap_.front().deadline <= at && !wakes.full() && fired < max) {
        timer_entry* e = heap_.front().entry;
        erase_at(0);
        wakes.push(e->task);
        ++fired;
      }
      publish_next();
      if (!wakes.full() || fired == max) break;
    }
    // wakes.~wake_list wakes the batch outside the lock; loop for the next one
  }
  return fired;
}

std::size_t timer_queue::size() const {
  spin_guard lock(mu_);
  return heap_.size();
}

void timer_queue::sift_up(std::size_t i) {
  const slot moving = heap_[i];
  while (i > 0) {
    const std::size_t parent = (i - 1) / 2;
    if (!(moving.deadline < heap_[parent].deadline)) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, moving);
}

void timer_queue::sift_down(std::size_t i) {
  const std::size_t n = heap_.size();
  const slot moving = heap_[i];
  for (;;) {
    std::size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && heap_[child + 1].deadline < heap_[child].deadline) ++child;
    if (!(heap_[child].deadline < moving.deadline)) break;
    place(i, heap_[child]);
    i = child;
  }
  place(i, moving);
}

void timer_queue::erase_at(std::size_t i) {
  heap_[i].entry->index = timer_entry::k_not_queued;
  const slot last = heap_.back();
  heap_.pop_back();
  if (i == heap_.size()) return;
  place(i, last);
  sift_up(i);
  sift_down(last.entry->index);
}

void timer_queue::publish_next() {
  next_.store(heap_.empty() ? k_none : heap_.front().deadline, std::memory_order_seq_cst);
}

}  // namespace shoal::rt::detail
