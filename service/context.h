// context: what every handler shares — the store, the hub, the live configuration, the
// counters behind the limits, and the server's identity. Owned by the server; handlers get a
// reference.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "grpcpp/grpcpp.h"
#include "runtime/sync/cancellation_token.h"
#include "runtime/sync/watch.h"
#include "service/admission.h"
#include "service/config/config.h"
#include "service/store/store.h"
#include "service/wal/journal.h"
#include "service/watch/hub.h"
#include "shoal/v1/admin.pb.h"
#include "shoal/v1/kv.pb.h"

namespace shoal::service {

namespace replica {
class raft_store;
}

// What the health service reports, published on a watch channel. Read-only does not make the
// server unready: reads go on, and a Service must keep routing them to it. A replica is ready
// once it has caught up (replica/node.h), and stays so until it drains.
struct serving_state {
  bool draining = false;
  bool caught_up = true;
  bool ready() const { return !draining && caught_up; }
};

struct context {
  std::string store_id;
  std::chrono::steady_clock::time_point started;
  watch::hub* hub = nullptr;
  store::store* kv = nullptr;
  // A durable server's log (--data_dir), else null. Nothing leaves the server before the log
  // allows it: see settled().
  wal::journal* journal = nullptr;
  struct durability {
    std::string data_dir;
    uint64_t recovered_records = 0;
    uint64_t recovery_ms = 0;
    // The newest snapshot (durable::last_snapshot), read when asked.
    std::function<void(v1::Durability*)> snapshot;
    // A consistent copy of the store as a snapshot file (durable::backup; on a replica,
    // raft_store::backup): blocking.
    std::function<absl::StatusOr<std::pair<uint64_t, std::string>>()> backup;
  } durability_info;  // with a journal (backup alone on a replica): set once at start

  // A replicated server's store (startup.raft_id), else null: writes go through its Raft log,
  // reads through its barrier (handlers/call.h, replica/raft_store.h).
  replica::raft_store* raft = nullptr;
  // On a replicated server, set before its Raft thread starts: this replica's Raft id, and its
  // current term, which the Raft thread keeps (replica/node.h), for response headers.
  uint64_t member_id = 0;
  std::atomic<uint64_t> raft_term{0};

  // The live configuration: handlers read the latest snapshot.
  rt::watch::receiver<config::snapshot_ptr>* config = nullptr;
  // The configuration a call runs with: the live one, except on a replica's Raft thread while an
  // entry applies, where it is the one the log carries (replica/raft_store.h), so that every
  // replica applies with the same limits whatever its own file says.
  config::snapshot_ptr current_config() const {
    if (applying_config != nullptr) return *applying_config;
    return *config->borrow();
  }
  // Set by raft_store around an apply (null otherwise), on the Raft thread only.
  static inline thread_local const config::snapshot_ptr* applying_config = nullptr;
  // Whether the configuration in force may have auth on (live.auth.enabled): calls read it first,
  // and take the configuration only when it is set. The config watcher sets it before it
  // publishes a configuration with auth on, and clears it after one with auth off.
  std::atomic<bool> auth_enabled{false};
  bool auth_on() const { return auth_enabled.load(std::memory_order_acquire); }

  rt::watch::receiver<serving_state>* serving = nullptr;
  // Cancelled once, when the drain begins: every stream ends on it (a select branch beside its
  // work).
  rt::cancellation_token shutdown;

  // Admits each call by its class and counts the calls in flight (admission.h).
  admission* calls = nullptr;
  std::atomic<int64_t> watchers{0};
  // Set when the drain starts: new calls are refused with UNAVAILABLE.
  std::atomic<bool> draining{false};
  // An Admin/Snapshot copy is being made (durability_info.backup, on the blocking pool): one at
  // a time.
  std::atomic<bool> backing_up{false};

  // Whether a reply (or a watcher's events) that saw the store at `revision` may go now: always
  // in memory; with a log, once the revision is durable (fsync always), or at once (interval,
  // none). If not, await journal->settle(revision); false from it means the log failed, and the
  // reply must be log_failed() instead.
  bool settled(uint64_t revision) const { return journal == nullptr || journal->settled(revision); }
  grpc::Status log_failed() const {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "the write-ahead log failed (" + journal->failure() +
                            "); shoald answers nothing that is not on disk: restart it once the "
                            "data directory is writable");
  }

  void fill(v1::ResponseHeader* h) const {
    h->set_revision(hub->revision());
    h->set_store_id(store_id);
    if (member_id != 0) {
      h->set_member_id(member_id);
      h->set_raft_term(raft_term.load(std::memory_order_relaxed));
    }
  }
};

// absl and gRPC status codes are equal: the mapping is a cast.
inline grpc::Status to_grpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace shoal::service
