// journal: the write-ahead log of a durable shoald — records in, group commit, durability out.
//
// Every change reaches the store's hub, which gives it a revision under its lock and hands it to
// the journal there (watch::journal_sink): the journal encodes it (record.h) onto a pending
// buffer, so the log's order is the revision order, and takes no other lock. One writer task owns
// the files (the manager-task pattern): it takes everything pending, writes it and, by the sync
// policy, syncs it on the blocking pool (never on a worker), then raises the durable revision and
// wakes whoever waits for it. Records that arrive while a sync runs go together in the next one
// (group commit: one fdatasync covers them all).
//
// Nothing is shown to a client before it is durable: a handler, once its store call is done and
// its locks released, awaits settle(the revision it saw) before it replies, and so do watchers
// before they send events. Under `always` that is the revision's fdatasync; under `interval`
// (a sync every interval_ms: a crash loses at most that window, and the store id changes) and
// `none` (the kernel decides) a reply waits only while more than max_pending_bytes wait to be
// written — the bound on the journal's memory.
//
//   wal::journal j(fs, "/data/wal", {.clock = &rt.clock()}, /*next_revision=*/1);
//   hub.set_journal(&j);
//   rt.spawn(j.run()).detach();
//   ... a handler, after its store call:
//   if (!j.settled(rev) && !co_await j.settle(rev)) reply(UNAVAILABLE, j.failure());
//   ... at exit, the runtime stopped:
//   j.close();
//
// A failed write or sync is final (fail-stop): an fdatasync that failed may have dropped the
// pages, and retrying would report success for data that is gone. Writes are then refused, reads
// of what is durable go on, and Status and /metrics say why.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "runtime/plain_mutex.h"
#include "runtime/sync/notify.h"
#include "runtime/task.h"
#include "runtime/time/clock.h"
#include "service/wal/file_system.h"
#include "service/watch/hub.h"

namespace shoal::service::wal {

enum class sync_policy : uint8_t { always, interval, none };
bool parse_sync_policy(std::string_view s, sync_policy* out);

class journal final : public watch::journal_sink {
 public:
  struct options {
    const rt::clock* clock = nullptr;  // the store's clock (TTL deadlines are on it)
    uint64_t segment_bytes = 64 << 20;
    std::size_t max_pending_bytes = 64 << 20;
  };
  // Appends from next_revision on, in a new segment (or an empty one of that name).
  static absl::StatusOr<std::unique_ptr<journal>> open(file_system& fs, std::string dir, options o,
                                                       uint64_t next_revision);
  ~journal() override;

  // watch::journal_sink, under the hub's lock.
  void record(const watch::event& e) override;

  // The writer task. Ends when the runtime stops, or after a failure.
  rt::task<> run();

  void set_policy(sync_policy p, std::chrono::milliseconds interval);
  sync_policy policy() const { return policy_.load(std::memory_order_acquire); }

  // Whether a reply that saw `revision` may go now.
  bool settled(uint64_t revision) const;
  // Completes once it may: true, or false if the log failed first (the reply must be an error).
  rt::task<bool> settle(uint64_t revision);

  uint64_t durable_revision() const { return synced_.load(std::memory_order_acquire); }
  // Every revision up to here is written (in the kernel's hands; synced or not).
  uint64_t written_revision() const { return written_.load(std::memory_order_acquire); }
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  // Why the log failed (empty if it has not).
  std::string failure() const;

  struct stats {
    uint64_t syncs = 0;
    uint64_t bytes_written = 0;  // since start
    uint64_t segment_bytes = 0;  // the open segment's size
    uint64_t closed_bytes = 0;   // closed segments not yet folded into a snapshot
  };
  stats statistics() const;

  // Segments: the open one begins at this revision; closed ones (synced) may be compacted.
  uint64_t open_segment_first() const { return open_first_.load(std::memory_order_acquire); }
  // Awaitable: the next segment roll.
  auto rolled() { return rolled_.notified(); }
  // Closed segments holding `bytes` were folded into a snapshot; at start, the closed segments
  // found on disk.
  void forget_closed(uint64_t bytes) { closed_bytes_.fetch_sub(bytes); }
  void add_closed(uint64_t bytes) { closed_bytes_.fetch_add(bytes); }

  // Every sync's duration is reported here (metrics), from the blocking thread.
  void set_sync_observer(void (*observe)(std::chrono::nanoseconds)) { observe_sync_ = observe; }

  // After the runtime has stopped: writes and syncs whatever is left. Returns the first error.
  absl::Status close();

 private:
  journal(file_system& fs, std::string dir, options o, std::unique_ptr<append_file> f,
          uint64_t next_revision);
  struct batch {
    std::string bytes;
    uint64_t last_revision = 0;
  };
  // Moves the pending records behind any staged ones; returns the staged size and last revision.
  struct staging {
    std::size_t bytes = 0;
    uint64_t last_revision = 0;
  };
  staging stage_pending();
  // On the blocking pool: writes what is staged, then moves the written and synced revisions
  // (or fails the journal).
  absl::Status write_staged(bool sync);
  // On a blocking thread: writes the batch (rolling the segment when it is full), syncs if asked.
  // Returns whether it synced (a roll syncs too).
  absl::StatusOr<bool> write_out(const batch& b, bool sync);
  void fail(const absl::Status& st);

  file_system& fs_;
  const std::string dir_;
  const options opt_;

  rt::plain_mutex mu_;
  std::string pending_ ABSL_GUARDED_BY(mu_);
  uint64_t pending_last_ ABSL_GUARDED_BY(mu_) = 0;
  std::string staged_ ABSL_GUARDED_BY(mu_);  // taken from pending_, not yet written
  uint64_t staged_last_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<std::size_t> pending_bytes_{0};
  std::string failure_ ABSL_GUARDED_BY(mu_);

  // The writer's: touched only by write_staged and write_out, one call at a time.
  batch writing_;
  std::unique_ptr<append_file> file_;
  uint64_t file_written_ = 0;  // bytes in the open segment

  std::atomic<sync_policy> policy_{sync_policy::always};
  std::atomic<int64_t> interval_ms_{100};
  std::atomic<uint64_t> written_{0};  // every revision up to here is written
  std::atomic<uint64_t> synced_{0};   // ... and synced
  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> syncs_{0};
  std::atomic<uint64_t> bytes_written_{0};
  std::atomic<uint64_t> segment_size_{0};
  std::atomic<uint64_t> open_first_{0};
  std::atomic<uint64_t> closed_bytes_{0};
  void (*observe_sync_)(std::chrono::nanoseconds) = nullptr;
  rt::notify rolled_;
  rt::notify work_;      // records are pending (or the policy changed)
  rt::notify progress_;  // written_ or synced_ moved, or the log failed
};

}  // namespace shoal::service::wal
