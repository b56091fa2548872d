// raft_store: the store of a replicated shoald — the handlers' store, kept in step on every
// replica by applying the Raft log (node.h) in order.
//
// What: the state machine Raft applies to, and the two doors the call path goes through:
//  - write(): a mutating call (Put, Delete, Increment, Txn, Batch) becomes an entry (entry.h)
//    proposed to the leader's log; once committed it is applied on every replica by running the
//    same handler on the same state, and the replica that proposed it runs the handler on the
//    waiting call's own request and reply, so the client gets exactly what the apply did. A
//    write is acknowledged once committed and applied here. Not the leader: UNAVAILABLE (the
//    caller adds the leader's client address as `shoal-leader` metadata), nothing applied.
//  - linearize(): a read waits for a Raft barrier (shared by every read waiting for one:
//    node.h), after which this leader's store holds every write acknowledged before the read
//    began. A serializable read skips it and reads this replica's store as it is.
// Expiries are the leader's decision (purge()): it proposes the keys that are due, and each
// replica expires them at that point of the log. The store id is the cluster's: the first
// leader proposes one, and it is part of every snapshot. `caught_up` is called once, when this
// replica has applied what its leader had committed when it connected to it (node.h): the health
// service's readiness waits for it.
//
// When: a shoald started with startup.raft_id (server.cc).
//
//   auto rs = replica::raft_store::open(startup, &ctx, &rt.clock(),
//                                       [] { /* caught up: ready (on the Raft thread) */ });
//   ctx.raft = rs->get();
//   ctx.store_id = (*rs)->wait_store_id();             // blocks: not on a runtime worker
//   rt.spawn((*rs)->purge(&expiry_changed)).detach();
//   ... in a call: grpc::Status st = co_await ctx.raft->write(m, req, &run, &bound);
//   ... at exit: (*rs)->stop();
//
// Cancel safety: a write whose task is destroyed while it waits is forgotten (its entry still
// commits and applies; nothing touches the task's frame); linearize() takes nothing.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message_lite.h"
#include "grpcpp/grpcpp.h"
#include "runtime/plain_mutex.h"
#include "runtime/sync/notify.h"
#include "runtime/sync/oneshot.h"
#include "runtime/sync/watch.h"
#include "runtime/task.h"
#include "runtime/time/clock.h"
#include "service/config/config.h"
#include "service/metrics/metrics.h"
#include "service/replica/node.h"
#include "service/store/store.h"
#include "service/wal/snapshot.h"
#include "service/watch/hub.h"
#include "shoal/v1/admin.pb.h"

namespace shoal::service {
struct context;
}

namespace shoal::service::replica {

class raft_store final : public state_machine {
 public:
  static absl::StatusOr<std::unique_ptr<raft_store>> open(const v1::StartupSettings& startup,
                                                          context* ctx, const rt::clock* clock,
                                                          std::function<void()> caught_up);
  ~raft_store() override;

  // Blocks the calling thread (never a runtime worker) until the cluster's store id is known:
  // this replica applied it, from its log, a snapshot or the leader.
  std::string wait_store_id();

  // Runs the waiting call's handler on its request and reply; the proposer's apply calls it.
  using run_fn = grpc::Status (*)(void* call);
  rt::task<grpc::Status> write(metrics::method m, const google::protobuf::MessageLite& request,
                               run_fn run, void* call);

  // write() in two halves, for a caller that proposes in order without waiting for each outcome
  // (Pipeline): submit() proposes at once (entries keep the order of the submits), outcome()
  // awaits what write() would return. `call` must live until then; a ticket dropped unawaited
  // forgets its call (the entry still commits and applies).
  //
  //   auto t = ctx.raft->submit(m, req, run, &bound);    // proposed now
  //   ... submit more ...
  //   grpc::Status st = co_await ctx.raft->outcome(std::move(t));
  class ticket {
   public:
    ticket(ticket&& o) noexcept;
    ticket& operator=(ticket&&) = delete;
    ~ticket();
    // False: refused before anything was proposed (this replica does not lead).
    bool proposed() const { return owner_ != nullptr; }

   private:
    friend class raft_store;
    ticket(raft_store* owner, uint64_t sequence, rt::oneshot::receiver<grpc::Status> outcome)
        : owner_(owner), sequence_(sequence), outcome_(std::move(outcome)) {}
    explicit ticket(grpc::Status refused) : refused_(std::move(refused)) {}
    raft_store* owner_ = nullptr;  // null: refused before anything was proposed
    uint64_t sequence_ = 0;
    std::optional<rt::oneshot::receiver<grpc::Status>> outcome_;
    grpc::Status refused_;
  };
  ticket submit(metrics::method m, const google::protobuf::MessageLite& request, run_fn run,
                void* call);
  rt::task<grpc::Status> outcome(ticket t);
  rt::task<grpc::Status> linearize();
  // UNAVAILABLE: this replica does not lead (nothing was applied). Every such refusal, and only
  // they, begin with k_not_leading: the call path names the leader for them alone (a client may
  // send the call there, write or not), never for a write whose outcome is unknown.
  static constexpr char k_not_leading[] = "this replica does not lead";
  grpc::Status not_leader() const;
  static bool refused_for_not_leading(const grpc::Status& s) {
    return s.error_code() == grpc::StatusCode::UNAVAILABLE &&
           s.error_message().rfind(k_not_leading, 0) == 0;
  }
  // The leader's client address (host:port), empty if none is known.
  std::string leader_client() const;
  bool leader() const { return leader_.load(std::memory_order_acquire); }

  // The leader's purge: proposes the keys that are due (a follower waits to lead).
  rt::task<> purge(rt::notify* expiry_changed);

  // Calls apply with the settings of the log, not each replica's own (a ConfigMap reaches pods
  // at different times; a value one replica's limit takes and another's refuses would make them
  // differ for good). A leader proposes its settings when it starts to lead and, with this task,
  // whenever they change; every replica applies each call with the last ones before it.
  //   rt.spawn(rs->publish_settings(config_tx.subscribe())).detach();
  rt::task<> publish_settings(rt::watch::receiver<config::snapshot_ptr> rx);

  // Admin's membership calls, on the leader: the change, then the members as they stand.
  rt::task<grpc::Status> change_members(const v1::AddMemberRequest& req, v1::MembersResponse& resp);
  rt::task<grpc::Status> change_members(const v1::RemoveMemberRequest& req,
                                        v1::MembersResponse& resp);
  rt::task<grpc::Status> change_members(const v1::TransferLeadershipRequest& req,
                                        v1::MembersResponse& resp);

  // A leader that is stopping hands leadership to the most up-to-date follower first, so that the
  // cluster writes on without waiting out an election timeout. Returns whether it led.
  rt::task<bool> hand_over();

  // A consistent copy of this replica's store, in the snapshot file format (wal/snapshot.h):
  // its revision and the file's bytes. Copied on the Raft thread between applies (Raft waits
  // while the store is copied, as for its own snapshots), encoded on the caller's. Blocks: call
  // it on the blocking pool (Admin/Snapshot does, one at a time).
  absl::StatusOr<std::pair<uint64_t, std::string>> backup();

  raft_view view() const { return node_->view(); }

  void describe(v1::Replication* out) const;
  // Stops Raft (pending writes fail with UNAVAILABLE). Idempotent.
  void stop();

  // state_machine, on the Raft thread.
  void apply(std::string_view entry) override;
  std::string snapshot() override;
  bool restore(std::string_view state) override;
  void leadership_changed(bool leader, node& self) override;

 private:
  struct pending {
    run_fn run;
    void* call;
    rt::oneshot::sender<grpc::Status> done;
  };
  raft_store(context* ctx, const rt::clock* clock);
  void apply_call(metrics::method m, std::string_view request);
  // The Raft thread's: a settings entry's config becomes the one calls apply with.
  void adopt_settings(std::string_view server_config);
  // The Raft thread's: whether this replica's own settings differ from the log's (Status; logged
  // once per difference).
  void compare_own_settings();
  // What a settings entry carries: `cfg`'s live settings (not live.auth: calls are authorized
  // before they are proposed; not what this process alone reads, like log_level and fsync) and
  // startup.max_message_bytes.
  static std::string settings_of(const config::snapshot& cfg);
  void fail(uint64_t sequence, int raft_status);
  void forget(uint64_t sequence);
  grpc::Status status_of(int raft_status) const;
  void set_store_id(std::string_view id);
  rt::task<bool> expire(std::vector<store::store::due_entry> due);
  // Runs `start` (which hands the node a callback) and awaits the callback's Raft status.
  rt::task<int> on_loop(std::function<void(node::done_fn)> start);
  grpc::Status change_status(int raft_status, uint64_t id) const;
  // A membership change of member `id` on the loop (`start` hands the node its callback): the
  // members as they stand after it, or why it failed.
  rt::task<grpc::Status> change(uint64_t id, std::function<void(node::done_fn)> start,
                                v1::MembersResponse& resp);
  grpc::Status members(v1::MembersResponse& resp) const;
  int64_t wall_ns() const;
  // The Raft thread's: the store into `out`; its revision.
  uint64_t copy_store(wal::snap_state* out) const;

  context* ctx_;
  const rt::clock* clock_;
  const uint64_t origin_;
  std::unique_ptr<node> node_;
  std::atomic<uint64_t> next_sequence_{1};
  std::atomic<bool> leader_{false};
  rt::notify leadership_;
  rt::plain_mutex pending_mu_;
  absl::flat_hash_map<uint64_t, pending> pending_ ABSL_GUARDED_BY(pending_mu_);
  std::mutex id_mu_;
  std::condition_variable id_cv_;
  std::string store_id_;  // under id_mu_; set once
  // The Raft thread's: the last settings entry applied (null before the first), its bytes, and
  // the last local settings found to differ from it (logged once each).
  config::snapshot_ptr log_settings_;
  std::string log_settings_bytes_;
  std::string differing_logged_;
  std::atomic<bool> own_settings_differ_{false};  // for Status, read anywhere
};

}  // namespace shoal::service::replica
