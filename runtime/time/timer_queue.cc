#include "runtime/time/timer_queue.h"

#include <utility>

namespace shoal::rt::detail {

void timer_queue::insert(timer_entry* e) {
  spin_guard lock(mu_);
  e->index = heap_.size();
  heap_.push_back(e);
  sift_up(e->index);
  publish_next();
}

bool timer_queue::remove(timer_entry* e) {
  spin_guard lock(mu_);
  if (e->index == timer_entry::k_not_queued) return false;
  erase_at(e->index);
  publish_next();
  return true;
}

std::size_t timer_queue::fire_due(clock::time_point now) {
  if (next_.load(std::memory_order_acquire) > now.time_since_epoch().count()) return 0;
  std::size_t fired = 0;
  for (;;) {
    wake_list wakes;
    {
      spin_guard lock(mu_);
      while (!heap_.empty() && heap_.front()->deadline <= now && !wakes.full()) {
        timer_entry* e = heap_.front();
        erase_at(0);
        wakes.push(e->task);
        ++fired;
      }
      publish_next();
      if (!wakes.full()) break;
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
  while (i > 0) {
    std::size_t parent = (i - 1) / 2;
    if (!(heap_[i]->deadline < heap_[parent]->deadline)) break;
    std::swap(heap_[i], heap_[parent]);
    heap_[i]->index = i;
    heap_[parent]->index = parent;
    i = parent;
  }
}

void timer_queue::sift_down(std::size_t i) {
  const std::size_t n = heap_.size();
  for (;;) {
    std::size_t smallest = i;
    std::size_t l = 2 * i + 1, r = l + 1;
    if (l < n && heap_[l]->deadline < heap_[smallest]->deadline) smallest = l;
    if (r < n && heap_[r]->deadline < heap_[smallest]->deadline) smallest = r;
    if (smallest == i) return;
    std::swap(heap_[i], heap_[smallest]);
    heap_[i]->index = i;
    heap_[smallest]->index = smallest;
    i = smallest;
  }
}

void timer_queue::erase_at(std::size_t i) {
  heap_[i]->index = timer_entry::k_not_queued;
  timer_entry* last = heap_.back();
  heap_.pop_back();
  if (i == heap_.size()) return;
  heap_[i] = last;
  last->index = i;
  sift_up(i);
  sift_down(last->index);
}

void timer_queue::publish_next() {
  next_.store(heap_.empty() ? k_none : heap_.front()->deadline.time_since_epoch().count(),
              std::memory_order_release);
}

}  // namespace shoal::rt::detail
