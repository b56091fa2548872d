#include "service/watch/hub.h"

namespace shoal::service::watch {

hub::hub(options o)
    : history_(o.history_max_events, o.history_max_bytes),
      tx_(rt::broadcast::channel<event_ptr>(
              o.channel_capacity, o.channel_max_bytes,
              [](const event_ptr& e) -> std::size_t { return e ? e->bytes() : 0; })
              .first) {}

uint64_t hub::publish(const event_ptr& e) {
  // Declared before the lock, so destroyed after it: freeing evicted events touches cold memory
  // and the allocator, which is no work for the innermost lock.
  watch::history::evicted_events evicted;
  rt::plain_lock lock(mu_);
  const uint64_t rev = revision_.load(std::memory_order_relaxed) + 1;
  e.unpublished()->stamp(rev);
  if (journal_ != nullptr) journal_->record(*e);
  // Watchers subscribe under this lock, so a count of 0 here stays 0 until the send is done.
  const bool watched = tx_.receiver_count() > 0;
  history_.append(e.share_unpublished(), evicted);
  if (watched) tx_.send(e.share_unpublished());
  revision_.store(rev, std::memory_order_release);
  return rev;
}

uint64_t hub::publish_txn(
    absl::FunctionRef<void(uint64_t revision, std::vector<event_ptr>& parts)> apply) {
  watch::history::evicted_events evicted;  // freed after the lock, as in publish()
  rt::plain_lock lock(mu_);
  const uint64_t rev = revision_.load(std::memory_order_relaxed) + 1;
  std::vector<event_ptr> parts;
  apply(rev, parts);
  if (parts.empty()) return 0;
  event_ptr group = event::group(rev, std::move(parts));
  if (journal_ != nullptr) journal_->record(*group);
  history_.append(group, evicted);
  tx_.send(std::move(group));
  revision_.store(rev, std::memory_order_release);
  return rev;
}

void hub::reset(uint64_t revision) {
  rt::plain_lock lock(mu_);
  history_.clear();
  revision_.store(revision, std::memory_order_release);
  tx_.send(event::control(event::kind::reset, revision));
}

void hub::publish_control(event::kind k) {
  rt::plain_lock lock(mu_);
  tx_.send(event::control(k, revision_.load(std::memory_order_relaxed)));
}

uint64_t hub::compact_revision() {
  rt::plain_lock lock(mu_);
  return history_.compact_revision(revision_.load(std::memory_order_relaxed));
}

hub::history_size hub::history_stats() {
  rt::plain_lock lock(mu_);
  return {history_.size(), history_.bytes()};
}

hub::subscription hub::subscribe(uint64_t start) {
  subscription s;
  rt::plain_lock lock(mu_);
  const uint64_t current = revision_.load(std::memory_order_relaxed);
  const uint64_t compact = history_.compact_revision(current);
  if (start == 0) start = current + 1;
  if (start < compact) {
    s.compacted = true;
    s.compact_revision = compact;
    return s;
  }
  // A start in the future is allowed: the subscriber skips what comes before it.
  s.start_revision = start;
  if (start <= current) history_.collect(start, s.replay);
  s.live.emplace(tx_.subscribe());
  return s;
}

}  // namespace shoal::service::watch
