#include "service/watch/history.h"

#include <algorithm>

namespace shoal::service::watch {

void history::append(event_ptr e, evicted_events& evicted) {
  const std::size_t size = e->bytes();
  bytes_ += size;
  const uint64_t revision = e->revision;
  events_.push_back(slot{revision, size, std::move(e)});
  // Keep at least the newest event, whatever its size: a watcher that is just behind can resume.
  while (events_.size() > 1 && (events_.size() > max_events_ || bytes_ > max_bytes_)) {
    bytes_ -= events_.front().bytes;
    evicted.push_back(std::move(events_.front().event));
    events_.pop_front();
  }
}

void history::collect(uint64_t from, std::vector<event_ptr>& out) const {
  auto first = std::lower_bound(events_.begin(), events_.end(), from,
                                [](const slot& s, uint64_t r) { return s.revision < r; });
  for (auto it = first; it != events_.end(); ++it) out.push_back(it->event);
}

}  // namespace shoal::service::watch
