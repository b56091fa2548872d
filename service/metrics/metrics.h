// metrics: shoald's Prometheus metrics, served as text on their own port (--metrics_listen,
// 127.0.0.1:9090 by default). Calls are counted under the grpc_server_* names that gRPC
// dashboards query (grpc_server_handled_total, grpc_server_handling_seconds, labelled
// grpc_service, grpc_method, grpc_type, grpc_code); the process_* metrics come from /proc;
// shoal_build_info, and shoal_* gauges of the store and the watch history (and, on a replica,
// shoal_raft_* of its view of Raft).
//
// The call path writes only to its own thread's block of counters (one writer per block: no
// lock, no shared cache line); a scrape sums the blocks and reads the server's gauges at that
// moment. A scrape therefore costs the calls nothing but the memory bandwidth of the sum.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/support/status.h"

namespace shoal::service::metrics {

enum class method : uint8_t {
  get,
  put,
  remove,
  increment,
  range,
  watch,
  status,
  get_config,
  watch_config,
  health_check,
  health_watch,
  batch,
  txn,
  pipeline,
  snapshot,
  add_member,
  remove_member,
  transfer_leadership,
  count_
};

enum class event : uint8_t {
  watcher_lagged,     // a watcher fell behind and was let go (it resumes with a new Watch)
  watcher_cancelled,  // a watch stream ended by the client
  rejected_in_flight,
  rejected_streams,
  rejected_control,
  rejected_watchers,
  rejected_keys,
  rejected_bytes,
  config_reloaded,
  config_reload_failed,
  auth_unauthenticated,  // a call without valid credentials (auth on)
  auth_denied,           // a call (or a Pipeline request) its caller had no permission for
  auth_revoked,          // a stream ended because a reload took its permission away
  count_
};

// "shoal.v1.KV/Get": the method's full name, as logs give it.
std::string method_name(method m);

// On the call path: one finished call.
void record_call(method m, grpc::StatusCode code, std::chrono::steady_clock::duration took);
void count(event e);
// On the watch path, each time a watcher wakes to read: how many revisions the store is ahead of
// the last one it took. A scrape reports the largest since the previous scrape.
void observe_watch_lag(uint64_t revisions);
// On a durable server's log writer (the blocking pool): one fdatasync and how long it took.
void observe_fsync(std::chrono::nanoseconds took);

// What a scrape reads of the server's state, besides the counters.
struct gauges {
  uint64_t keys = 0;
  uint64_t bytes = 0;
  uint64_t revision = 0;
  uint64_t watchers = 0;
  uint64_t in_flight = 0;
  uint64_t history_events = 0;
  uint64_t history_bytes = 0;
  uint64_t compact_revision = 0;
  // With --data_dir only (durable false: none of these is exported).
  bool durable = false;
  uint64_t durable_revision = 0;
  bool log_failed = false;
  uint64_t log_bytes = 0;  // the open segment and the closed ones not yet in a snapshot
  uint64_t snapshot_revision = 0;
  uint64_t snapshot_bytes = 0;
  uint64_t snapshots_taken = 0;
  double recovery_seconds = 0;
  // A replica (docs/replication.md) only (replicated false: none of these is exported): its
  // view of Raft.
  bool replicated = false;
  bool is_leader = false;
  bool has_leader = false;
  uint64_t raft_term = 0;
  uint64_t raft_leader_id = 0;
  uint64_t raft_commit_index = 0;
  uint64_t raft_applied_index = 0;
  uint64_t raft_last_index = 0;
  uint64_t raft_members = 0;
  bool raft_caught_up = false;
  uint64_t raft_leader_changes = 0;
  uint64_t raft_dead_leader_elections = 0;
  uint64_t raft_refused_members = 0;
  uint64_t raft_peer_problems = 0;
};

// The /metrics endpoint. Stops serving when destroyed. It serves the call counters from the
// start (so that an address that cannot be bound stops the server before gRPC starts), and the
// gauges once publish() has handed it a way to read them, when the server is whole.
//
//   auto m = metrics::exporter::start("127.0.0.1:0");   // StatusOr<unique_ptr<exporter>>
//   ...                                                 // the store, the runtime, ...
//   (*m)->publish([&] { return metrics::gauges{.keys = kv.keys()}; });
class exporter {
 public:
  static absl::StatusOr<std::unique_ptr<exporter>> start(const std::string& listen);
  // Once; `read` is called on the exporter's thread, at each scrape.
  void publish(std::function<gauges()> read);
  ~exporter();
  std::string address() const;

 private:
  struct impl;
  explicit exporter(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace shoal::service::metrics
