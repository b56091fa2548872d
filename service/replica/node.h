// node: one Raft member — libraft 0.15 (Debian's libraft-dev) on a libuv loop of its own thread.
//
// What: the consensus half of a replicated shoald. The node owns the loop, the Raft instance, its
// disk log (raft_uv, in <data_dir>/raft) and the peer transport (transport.h). Everything Raft
// does — appending, electing, applying committed entries to the state machine — happens on that
// thread; the runtime's tasks hand it work through a queue and an async wake-up, and learn the
// outcome through a callback the loop thread calls (the caller completes a oneshot from it), so
// no runtime worker ever blocks on Raft and no Raft callback ever awaits.
//
// When: a shoald started with startup.raft_id (replica.h builds it; server.cc starts it).
//
//   class my_fsm : public replica::state_machine { ... };
//   auto n = replica::node::start({.id = 1, .members = *members, .dir = "/data/raft",
//                                  .bootstrap = true, .fsm = &fsm});
//   (*n)->propose(bytes, [](int raft_status) { ... });   // on the loop thread, once done
//   (*n)->barrier([](int raft_status) { ... });          // reads after it see every commit
//   (*n)->stop();                                        // closes Raft, joins the thread
//
// Barriers are shared: every read that asks while none is in flight rides on the next one, and a
// read that asks while one is in flight waits for the one after (the one in flight may have been
// appended before a write the read must see).
//
// A follower watches its leader's process (transport.h's transport_watch): when the leader's Raft
// port refuses connections, the followers compare their logs and the most up-to-date one starts
// an election at once (leader_gone), instead of every follower waiting out its election timeout.
//
// Cancel safety: a callback passed to propose or barrier is always called exactly once (with
// RAFT_SHUTDOWN if the node stops first).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/plain_mutex.h"
#include "service/replica/member.h"
#include "service/replica/raft_c.h"
#include "service/replica/tls_link.h"
#include "service/replica/transport.h"

namespace shoal::service::replica {

class node;

// What Raft applies entries to. Every method runs on the node's loop thread and must not block.
class state_machine {
 public:
  virtual ~state_machine() = default;
  // One committed proposal, in log order, on every member.
  virtual void apply(std::string_view entry) = 0;
  // The whole state, for a snapshot; restore() replaces the state with one.
  virtual std::string snapshot() = 0;
  virtual bool restore(std::string_view state) = 0;
  // After a loop iteration in which this member became leader or stopped being one; `self` may
  // propose_here().
  virtual void leadership_changed(bool leader, node& self) = 0;
};

// A member's view of the cluster, refreshed after every turn of the loop.
struct raft_view {
  enum class role { unavailable, follower, candidate, leader } state = role::unavailable;
  uint64_t term = 0;
  uint64_t leader_id = 0;
  std::string leader_address;  // "peer/client" of the leader (empty: none known)
  uint64_t commit_index = 0;
  uint64_t applied_index = 0;
  uint64_t last_index = 0;
  std::vector<member> members;
  // Members refused for coming back under their id with another disk (transport.h).
  std::vector<uint64_t> refused;
  // Peer connections refused for TLS reasons, each with why ("to 2: ..."), until one succeeds.
  std::vector<std::string> peer_problems;
  // Since this process started, it has once applied everything its leader had committed when it
  // connected to it (a leader: everything committed). Stays true.
  bool caught_up = false;
  // Times this replica saw another leader (the first one it knew included), since it started.
  uint64_t leader_changes = 0;
  // Elections this replica started at once because its leader's process was gone (leader_gone).
  uint64_t dead_leader_elections = 0;
};

class node {
 public:
  struct options {
    uint64_t id = 0;
    std::vector<member> members;  // this member's own address is found here by id
    std::string dir;              // created if missing
    // Where the replica's incarnation (which disk it is) and those of its peers are kept: a
    // replica back with an empty disk under its old id is refused (transport.h).
    std::string identity_dir;
    std::string listen;      // host:port the transport binds (default: this member's peer)
    bool bootstrap = false;  // an empty dir starts the cluster with `members`
    tls_files tls;           // peers under mutual TLS when tls.on() (tls_link.h)
    // Called once, on the loop thread, when the view's caught_up becomes true.
    std::function<void()> on_caught_up;
    unsigned election_ms = 1000;
    unsigned heartbeat_ms = 100;
    unsigned snapshot_threshold = 16384;  // entries between snapshots
    unsigned snapshot_trailing = 8192;    // entries kept after one, for slow followers
    // The in-memory log's bound in bytes (log_bound below): a snapshot once half of it has been
    // applied since the last one, at most the other half kept after it.
    uint64_t log_max_bytes = 64u << 20;
    // Where the current term is published for any thread (may be null): after each turn of the
    // loop and before each apply, so that a write's handler, run by the apply, sees the term of
    // the leader applying it.
    std::atomic<uint64_t>* term = nullptr;
    state_machine* fsm = nullptr;
  };
  using done_fn = std::function<void(int raft_status)>;  // 0: done

  static absl::StatusOr<std::unique_ptr<node>> start(options o);
  ~node();

  // Leader only (else RAFT_NOTLEADER): appends `entry` (not empty, and its first byte not 0);
  // `done` once it was applied here, or failed. From any thread. The proposals the loop finds
  // queued together are appended as one Raft entry (frame.h), applied in their order.
  void propose(std::string entry, done_fn done);
  // From the loop thread (a state machine's leadership_changed): the same, without the queue.
  void propose_here(std::string entry);
  void barrier(done_fn done);
  // Leader only: hands leadership to member `id` (0: the most up-to-date voter; raft_transfer);
  // `done` once another member leads, or it failed.
  void transfer(uint64_t id, done_fn done);
  // Leader only: adds member `id` at `address` ("peer/client") and, once it has caught up, makes
  // it a voter (raft_add, then raft_assign); removes one (raft_remove).
  void add(uint64_t id, std::string address, done_fn done);
  void remove(uint64_t id, done_fn done);
  // Calls fn(true) on the loop thread, between applies (a consistent look at the state
  // machine), or fn(false) if the node stops first; false, `fn` never called, if it has stopped.
  // `fn` must not block for long: Raft waits for it.
  bool run_on_loop(std::function<void(bool live)> fn);
  raft_view view() const;
  uint64_t id() const { return id_; }
  // Closes Raft and joins the loop thread. Idempotent.
  void stop();

 private:
  struct work {
    enum class kind { apply, barrier, transfer, add, remove, run, stop } type;
    std::string entry;  // apply: the entry; add: the member's address
    done_fn done;
    uint64_t id = 0;               // transfer, add, remove
    std::function<void(bool)> fn;  // run
  };
  // Queues `w` (moved from) for the loop thread; false, `w` untouched, once the node stops.
  bool enqueue(work& w);
  void start_change(work w);
  explicit node(options o);
  absl::Status open();
  // This disk's incarnation: read, or made (fresh: the Raft directory was empty).
  absl::Status load_identity(bool fresh);
  // The transport's admission (loop thread): a peer's first incarnation is kept; another one
  // under the same id is refused.
  bool admit(uint64_t id, uint64_t incarnation);
  bool caught_up(const raft_view& v);  // loop thread: the latch, updated
  // Member `id`'s peer address as this member knows it, or "" (loop thread).
  std::string peer_of(uint64_t id) const;
  // The transport's report on a peer connection (loop thread): logged when it changes.
  void peer_problem(const std::string& peer, const std::string& problem);
  void run();
  void drain();  // on the loop thread: takes the queued work
  void submit_apply(std::vector<std::string> entries, std::vector<done_fn> dones);
  void submit_entry(std::string entry, std::vector<done_fn> dones);  // one raft_apply
  void start_barrier();
  void refresh();  // on the loop thread, after each turn
  void begin_close();
  static void on_async(uv_async_t* a);
  // After each turn of the loop, outside libraft's callbacks: refresh(), then the next barrier
  // if reads wait for one (never started from a libraft callback: see on_barrier).
  static void on_check(uv_check_t* c);
  static void on_applied(struct raft_apply* req, int status, void* result);
  static void on_barrier(struct raft_barrier* req, int status);
  void start_transfer(uint64_t id, done_fn done);
  static void on_closed(struct raft* r);
  static int fsm_apply(raft_fsm* fsm, const raft_buffer* buf, void** result);
  static int fsm_snapshot(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n);
  static int fsm_finalize(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n);
  static int fsm_restore(raft_fsm* fsm, raft_buffer* buf);
  // The in-memory log, bounded by bytes (loop thread). libraft counts entries only, and keeps
  // every entry since its last snapshot plus snapshot_trailing before it: 24,576 entries of up to
  // max_message_bytes each by default. applied() counts each applied entry's bytes; past half of
  // log_max_bytes since the last snapshot it lowers libraft's threshold so that one is taken after
  // this apply. snapshot_taken() puts the threshold back and sets how many entries stay after
  // the snapshot: as many of the newest as fit in the other half (at least one).
  void applied(std::size_t bytes);
  void publish_term();  // into opts_.term
  void snapshot_taken();
  void restore_threshold();  // raft_snapshot_entries again, if applied() lowered it
  // raft_uv's start, through which libraft hands the I/O its receive callback: kept (recv_), so
  // that leader_gone can deliver a TimeoutNow.
  static int start_io(raft_io* io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv);
  // The transport's report that leader `id`'s process is gone (transport_watch: its Raft port
  // refuses connections). A voter that follows it, once it has not heard from it for two
  // heartbeats, asks the other voters where their logs end and whether they still hear it
  // (transport_probe). If none does, the one with the most up-to-date log (the lowest id among
  // equals), which the others will vote for, starts an election at once instead of waiting out
  // its election timeout, as libraft's leadership transfer does: a TimeoutNow "from" that
  // leader, so that voters which still know it vote all the same. Each follower compares the
  // same logs (the leader is gone: they no longer grow), so one starts; if the followers
  // disagree (a probe failed on one side), two may start, split the vote, and the election
  // timeout settles it, as it always did. Raft's vote rules are untouched.
  void leader_gone(uint64_t id);
  void probe_voters();  // after the silence: the round's probes, with a deadline
  void probed(uint64_t round, const probe_answer& a);
  // Starts the election if the round's comparison names this member, nobody still hears the
  // leader, and this member still follows it in the round's term.
  void elect();
  probe_answer probe_view();  // this member's answer to a probe
  // Another voter probed this one: it found the leader gone. This member dials the leader again
  // (a fresh watch), so that it does not miss the leader's end — its own watch may have given up
  // on a path that dropped connections — and, if the port refuses it too, joins the comparison.
  void recheck_leader();
  // Electing: this candidate's vote request again, to the voters other than the gone leader.
  // libraft writes on the connection it dialled long ago, and never reads it: to a member that
  // restarted since, the first write after the restart is lost (a reset comes back), the next
  // fails, and only then does libraft dial again, queuing what follows. A vote request sent
  // again is one Raft allows (a voter answers the same candidate the same way in a term).
  void resend_vote_requests();
  static void on_gone_timer(uv_timer_t* t);
  // Follows the leader with transport_watch while this member follows one (loop thread).
  void watch_leader(const raft_view& v);

  options opts_;
  uint64_t id_;
  uint64_t incarnation_ = 0;
  std::map<uint64_t, uint64_t> peers_;               // loop thread only (after open)
  std::set<std::pair<uint64_t, uint64_t>> refused_;  // logged once each
  // A peer connection's last problem and when it was last seen (uv_now): one not seen again for
  // k_problem_forgotten_ms is dropped (a pod that moved comes back from another address, and a
  // stray connection does not recur). Loop thread only; at most 64.
  struct peer_problem_seen {
    std::string why;
    uint64_t seen_ms = 0;
  };
  std::map<std::string, peer_problem_seen> peer_problems_;
  std::map<uint64_t, uint64_t> peer_commit_;  // loop thread: what each peer answered
  bool caught_up_ = false;                    // loop thread only
  uint64_t last_leader_ = 0;                  // loop thread only
  uint64_t leader_changes_ = 0;               // loop thread only
  uint64_t dead_leader_elections_ = 0;        // loop thread only
  uint64_t watched_ = 0;                      // loop thread: the leader watched, 0: none
  // Loop thread: a round of leader_gone — the leader, the term, the answers so far (this member's
  // included), the probes not yet answered; `number` tells a late answer from a later round's.
  struct gone_round {
    uint64_t number = 0;
    uint64_t leader = 0;
    uint64_t term = 0;
    enum class stage { none, silence, probing, electing } at = stage::none;
    int resends = 0;  // electing: the vote requests sent again so far
    std::vector<probe_answer> answers;
    int waiting = 0;
  };
  gone_round round_;
  uv_timer_t gone_timer_{};  // the silence, then the probes' deadline
  int (*uv_start_)(raft_io*, unsigned, raft_io_tick_cb, raft_io_recv_cb) = nullptr;
  raft_io_recv_cb recv_ = nullptr;  // libraft's, once started
  uv_loop_t loop_{};
  uv_async_t async_{};
  uv_check_t check_{};
  raft_uv_transport transport_{};
  raft_io io_{};
  raft_fsm fsm_{};
  struct raft raft_ {};
  bool closing_ = false;  // loop thread only
  bool was_leader_ = false;
  // Loop thread: entry bytes applied since the last snapshot; the sizes of the latest entries
  // (at most snapshot_trailing, the newest last); whether the threshold is lowered.
  uint64_t applied_bytes_ = 0;
  std::deque<uint32_t> recent_sizes_;
  bool snapshot_due_ = false;
  std::vector<done_fn> reads_waiting_;    // loop thread only
  std::vector<done_fn> reads_in_flight_;  // loop thread only
  bool barrier_in_flight_ = false;
  std::thread thread_;
  bool stopped_ = true;  // until the loop thread runs; the owner's thread only

  rt::plain_mutex queue_mu_;
  std::vector<work> queue_ ABSL_GUARDED_BY(queue_mu_);
  bool accepting_ ABSL_GUARDED_BY(queue_mu_) = true;
  mutable rt::plain_mutex view_mu_;
  raft_view view_ ABSL_GUARDED_BY(view_mu_);
};

}  // namespace shoal::service::replica
