// hub: where the store publishes its changes and watchers subscribe. It assigns revisions and
// publishes events in revision order, keeps the recent ones (history.h) and fans them out on a
// broadcast channel bounded by count and bytes.
//
//   watch::hub hub(watch::hub::options{});
//   store::store kv({.shards = 16, .clock = &rt.clock(), .hub = &hub});  // writes publish here
//   auto sub = hub.subscribe(0);    // sub.replay: history; *sub.live: every later event
//
// The innermost lock of the server. A writer holds its shard's lock, builds its event, and calls
// publish(): under the hub's lock the event gets the next revision, joins the history and
// goes out on the broadcast channel — so events leave in revision order, and a watcher that
// subscribes under the same lock sees the history up to some revision and the channel from the
// next one: no gap, no duplicate.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/functional/function_ref.h"
#include "runtime/plain_mutex.h"
#include "runtime/sync/broadcast.h"
#include "service/watch/event.h"
#include "service/watch/history.h"

namespace shoal::service::watch {

// Where a durable server's log takes every change (wal::journal). record() is called under the
// hub's lock, once the event has its revision: in revision order, and before any watcher or
// reader can see it. It must not block.
class journal_sink {
 public:
  virtual ~journal_sink() = default;
  virtual void record(const event& e) = 0;
};

class hub {
 public:
  struct options {
    std::size_t history_max_events = 100'000;
    std::size_t history_max_bytes = 64 << 20;
    std::size_t channel_capacity = 4096;  // events a watcher may fall behind before it lags out
    // ... and bytes: the channel holds each event (its value and previous value) until its slot
    // is overwritten, read or not, so large values need a bound by size too.
    std::size_t channel_max_bytes = 64 << 20;
  };
  explicit hub(options o);

  // Gives `e` the next revision (and, for a put, its mod_revision, and its create_revision if it
  // creates the key), records and publishes it. Returns the revision.
  uint64_t publish(const event_ptr& e);
  // A Txn's writes: under the hub's lock, `apply` gets the revision, makes the writes and
  // returns their events; they are published as one group with that revision. Returns the
  // revision, or 0 (and none is used) if `apply` wrote nothing. `apply` must take no lock.
  uint64_t publish_txn(
      absl::FunctionRef<void(uint64_t revision, std::vector<event_ptr>& parts)> apply);
  // Before the first publish that is to be logged (a durable server attaches its log once the
  // store is restored from it).
  void set_journal(journal_sink* j) { journal_ = j; }
  // A store loaded from a snapshot taken at `revision`: the next publish gets revision + 1, and a
  // watch may start only after it (the history holds nothing older). Before the first publish.
  void start_at(uint64_t revision) { revision_.store(revision, std::memory_order_release); }

  // A replica that loaded a snapshot at `revision` in place of its state: the history is
  // dropped (a watch resumes from after `revision`), the next publish gets revision + 1, and
  // live watchers get a reset event (a watcher behind it is told where to resume).
  void reset(uint64_t revision);

  // Control messages (ticks, rule changes): published without a revision or a place in the history.
  void publish_control(event::kind k);

  uint64_t revision() const { return revision_.load(std::memory_order_acquire); }
  uint64_t compact_revision();
  struct history_size {
    std::size_t events = 0;
    std::size_t bytes = 0;
  };
  // What the history holds now (takes the hub's lock briefly).
  history_size history_stats();

  struct subscription {
    bool compacted = false;
    uint64_t compact_revision = 0;  // when compacted: the oldest revision still available
    uint64_t start_revision = 0;    // the first revision this subscriber will see
    std::vector<event_ptr> replay;  // from the history, oldest first
    std::optional<rt::broadcast::receiver<event_ptr>> live;  // everything after replay
  };
  // start == 0: from the next revision.
  subscription subscribe(uint64_t start);

 private:
  rt::plain_mutex mu_;
  std::atomic<uint64_t> revision_{0};
  watch::history history_ ABSL_GUARDED_BY(mu_);
  rt::broadcast::sender<event_ptr> tx_;
  journal_sink* journal_ = nullptr;
};

}  // namespace shoal::service::watch
