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
  prefetch_evictions();
}

// In a full history every append evicts the oldest event, written long ago and out of the cache;
// freeing it touches the event, its control block, and the entries it holds (one miss each).
// Starting those loads a few appends early overlaps them with useful work.
void history::prefetch_evictions() const {
  constexpr std::size_t k_event_ahead = 4;
  constexpr std::size_t k_entries_ahead = 2;  // its event was prefetched two appends ago
  if (events_.size() <= k_event_ahead) return;
  const auto* next = reinterpret_cast<const char*>(events_[k_event_ahead].event.get());
  __builtin_prefetch(next);
  __builtin_prefetch(next - 16);  // make_shared's control block sits just before the event
  const event* soon = events_[k_entries_ahead].event.get();
  if (soon->entry) soon->entry->prefetch_refs();
  if (soon->previous) soon->previous->prefetch_refs();
}

void history::collect(uint64_t from, std::vector<event_ptr>& out) const {
  auto first = std::lower_bound(events_.begin(), events_.end(), from,
                                [](const slot& s, uint64_t r) { return s.revision < r; });
  for (auto it = first; it != events_.end(); ++it) out.push_back(it->event);
}

}  // namespace shoal::service::watch
