// history: the most recent events, so that a watch can start from a past revision.
//
// Bounded by a number of events and a number of bytes, both fixed at start-up; the oldest events
// go first. Not thread-safe: the hub guards it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "service/watch/event.h"

namespace shoal::service::watch {

class history {
 public:
  history(std::size_t max_events, std::size_t max_bytes)
      : max_events_(max_events), max_bytes_(max_bytes) {}

  // Appends `e` and moves the events it pushes out into `evicted`, so that the caller can free
  // them after it lets go of its lock.
  using evicted_events = absl::InlinedVector<event_ptr, 2>;
  void append(event_ptr e, evicted_events& evicted);
  // The oldest revision a watch may start from: every event from there on is here.
  uint64_t compact_revision(uint64_t current_revision) const {
    return events_.empty() ? current_revision + 1 : events_.front().revision;
  }
  // Appends to `out` every event with revision >= from.
  void collect(uint64_t from, std::vector<event_ptr>& out) const;
  std::size_t size() const { return events_.size(); }
  void clear() {
    events_.clear();
    bytes_ = 0;
  }
  std::size_t bytes() const { return bytes_; }

 private:
  // The revision and size sit beside the pointer: evicting the oldest event, long out of the
  // cache, then costs no load of its memory under the hub's lock.
  struct slot {
    uint64_t revision;
    std::size_t bytes;
    event_ptr event;
  };
  const std::size_t max_events_;
  const std::size_t max_bytes_;
  std::deque<slot> events_;
  std::size_t bytes_ = 0;
};

}  // namespace shoal::service::watch
