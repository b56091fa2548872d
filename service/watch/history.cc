#include "service/watch/history.h"

#include <algorithm>

namespace shoal::service::watch {

void history::append(event_ptr e, evicted_events& evicted) {
  bytes_ += e->bytes();
  events_.push_back(std::move(e));
  // Keep at least the newest event, whatever its size: a watcher that is just behind can resume.
  while (events_.size() > 1 && (events_.size() > max_events_ || bytes_ > max_bytes_)) {
    bytes_ -= events_.front()->bytes();
    evicted.push_back(std::move(events_.front()));
    events_.pop_front();
  }
}

void history::collect(uint64_t from, std::vector<event_ptr>& out) const {
  auto first = std::lower_bound(events_.begin(), events_.end(), from,
                                [](const event_ptr& e, uint64_t r) { return e->revision < r; });
  out.insert(out.end(), first, events_.end());
}

}  // namespace shoal::service::watch
