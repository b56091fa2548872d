// durable: what makes a shoald with a data directory durable — the directory locked before the
// port is bound, the store restored from the log before any call is served, the log attached to
// the hub, and a clean mark at exit.
//
//   auto d = durable::open(startup);                        // locks --data_dir
//   auto id = (*d)->restore(kv, hub, rt.clock(), live);      // replays the log; the store id
//   rt.spawn((*d)->log().run()).detach();                   // the writer task
//   ... handlers: ctx.journal = &(*d)->log();
//   ... at exit, the runtime stopped:
//   (*d)->close();                                          // syncs the rest, marks a clean stop
//
// The store id is kept when nothing a client saw can be missing: the last run stopped cleanly,
// or it synced every write before acknowledging it (fsync `always`) and the log was not cut for
// damage. Otherwise it is new, and clients holding revisions of the old one can tell.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "runtime/plain_mutex.h"
#include "runtime/task.h"
#include "runtime/time/clock.h"
#include "service/store/store.h"
#include "service/wal/data_dir.h"
#include "service/wal/journal.h"
#include "service/wal/snapshot.h"
#include "service/watch/hub.h"
#include "shoal/v1/admin.pb.h"

namespace shoal::service {

// A random store id: 16 hex digits.
std::string new_store_id();

class durable {
 public:
  static absl::StatusOr<std::unique_ptr<durable>> open(const v1::StartupSettings& startup,
                                                       wal::file_system& fs);
  ~durable();

  // Replays the log into the (empty) store, opens the log for appending and attaches it to the
  // hub. Returns the store id to serve.
  absl::StatusOr<std::string> restore(store::store& kv, watch::hub& hub, const rt::clock& clock,
                                      const v1::LiveSettings& live);

  wal::journal& log() { return *journal_; }

  // The compactor: each time the closed segments reach startup.snapshot_log_bytes, folds them
  // into a new snapshot (wal::compact, on the blocking pool) and lets them go.
  rt::task<> compact_when_due();
  struct snapshot_state {
    uint64_t revision = 0;  // of the newest snapshot (0: none)
    uint64_t file_bytes = 0;
    uint64_t keys = 0;
    uint64_t taken = 0;  // snapshots made since start
  };
  snapshot_state last_snapshot() const;

  // A consistent copy of the store at the durable revision, as a snapshot file's bytes (the
  // newest snapshot and the log after it, folded; the store itself is not touched). Blocking: on
  // the blocking pool. RESOURCE_EXHAUSTED while another copy is being made.
  struct backup_file {
    uint64_t revision = 0;
    std::string bytes;
  };
  absl::StatusOr<backup_file> backup();

  // Follows live.fsync: a change to a policy that acknowledges before syncing is first recorded
  // in the directory (a crash after it changes the store id). Blocking: on the blocking pool.
  absl::Status follow(const v1::LiveSettings& live);

  struct recovery {
    uint64_t records = 0;
    uint64_t bytes = 0;
    uint64_t revision = 0;
    std::chrono::milliseconds took{0};
  };
  const recovery& recovered() const { return recovered_; }

  // After the runtime has stopped: syncs what is left and marks a clean stop.
  void close();

 private:
  // On the blocking pool: wal::compact on a thread of its own at the lowest priority.
  absl::StatusOr<wal::snapshot_info> compact_in_background(uint64_t open_first);
  durable(wal::file_system& fs, std::unique_ptr<wal::data_dir> dir,
          const v1::StartupSettings& startup);
  wal::file_system& fs_;
  std::unique_ptr<wal::data_dir> dir_;
  uint64_t segment_bytes_;
  uint64_t snapshot_log_bytes_;
  bool truncate_damaged_;
  // Held (on the blocking pool) while a compaction or a backup reads the directory: a backup
  // never reads a segment a compaction is removing.
  rt::plain_mutex files_mu_;
  mutable rt::plain_mutex snap_mu_;
  snapshot_state snap_ ABSL_GUARDED_BY(snap_mu_);
  std::unique_ptr<wal::journal> journal_;
  std::string store_id_;
  bool loose_ = false;           // recorded in the directory's meta
  uint64_t start_revision_ = 0;  // the revision the start recovered
  recovery recovered_;
};

}  // namespace shoal::service
