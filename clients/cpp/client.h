// shoal::client — Shoal's C++ client: a blocking API, and a coroutine API for tasks on the Shoal
// runtime (with the completion-queue driver).
//
//   shoal::client::client kv;                          // $SHOAL_ADDR, else 127.0.0.1:50051
//   auto put = kv.put("greeting", "hello", {.ttl_ms = 60'000});
//   auto got = kv.get("greeting");                     // StatusOr<optional<Entry>>
//   for (auto r = kv.range({.prefix = "app/"}); auto e = r.next();) { ... }   // follows pages
//   auto w = kv.watch({.key = "app/", .prefix = true});
//   while (auto ev = w.next()) { ... }                 // resumes by itself after a dropped stream
//
//   kv.open_pipeline().run(ops, 64, [](const v1::PipelineResponse& r) { ... });  // in order
//
//   co_await kv.get_async("greeting");                 // inside a task on the runtime
//   auto aw = kv.watch_async({.key = "app/", .prefix = true});
//   auto ev = co_await aw.next();
//
// TLS, client certificates and a bearer token come from the options or the environment
// (channel.h). Every call has a deadline (options::deadline). Reads (Get, Range, Status, GetConfig)
// are retried with exponential backoff when the server is UNAVAILABLE; writes are not (a write
// whose answer was lost may have been applied), except when the server could not be reached at
// all (nothing was sent). Errors keep the server's gRPC code and message.
//
// A replicated store (docs/replication.md): the target lists its replicas,
// "a:50051,b:50051,c:50051". The blocking calls follow the leader: a replica's refusal that names
// it (`shoal-leader`, nothing applied) sends any call there, and an unreachable replica moves the
// client to the next one (reads are retried there). The coroutine calls do the same, sleeping on
// the runtime's clock. A watch (blocking or coroutine) whose replica went away resumes on the next
// one (every replica serves watches, at the same revisions). A pipeline opens on the replica the
// client last found; its run() sends what a follower refused (nothing applied) to the leader the
// refusal names, and a stream that could not connect to the next replica. A pipeline broken
// after it reached its replica is the caller's to open again: its writes may have applied.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "clients/cpp/pipeline.h"
#include "clients/cpp/range_reader.h"
#include "clients/cpp/watcher.h"
#include "runtime/task.h"
#include "shoal/v1/admin.grpc.pb.h"
#include "shoal/v1/kv.grpc.pb.h"

namespace shoal::client {

struct options {
  std::string target;  // host:port; empty: $SHOAL_ADDR, else 127.0.0.1:50051
  // TLS (docs/security.md): the CAs (a PEM file) the server's certificate must chain to. Empty:
  // $SHOAL_CACERT; neither: plaintext (unless a client certificate is given: then the system's
  // CAs).
  std::string ca_file;
  // mTLS: this client's certificate chain and key (PEM files); empty: $SHOAL_CERT, $SHOAL_KEY.
  std::string cert_file;
  std::string key_file;
  // Sent on every call as "authorization: Bearer <token>"; empty: $SHOAL_TOKEN.
  std::string token;
  std::chrono::milliseconds deadline{5000};
  int max_attempts = 4;  // reads only, on UNAVAILABLE
  std::chrono::milliseconds initial_backoff{50};
  std::chrono::milliseconds max_backoff{1000};
};

struct get_options {
  // Read this replica's store as it is, without the leader's barrier: possibly stale on a
  // follower (it may lag), never refused for not leading. A single server ignores it.
  bool serializable = false;
};

struct put_options {
  std::optional<int64_t> ttl_ms;  // none: the server's default TTL
  bool keep_ttl = false;          // keep the key's current expiry
  bool if_absent = false;
  bool if_present = false;
  uint64_t if_revision = 0;  // compare-and-swap on mod_revision (0: no condition)
  bool return_previous = false;
};

struct put_result {
  bool applied = false;
  uint64_t revision = 0;  // the write's (applied), else the store's
  v1::Entry entry;        // applied: metadata as written; not applied: the current entry
  std::optional<v1::Entry> previous;
};

struct delete_options {
  uint64_t if_revision = 0;  // only if the key's mod_revision equals it (0: no condition)
  bool return_previous = false;
};

struct delete_result {
  bool applied = false;
  uint64_t deleted = 0;
  uint64_t revision = 0;
  std::optional<v1::Entry> previous;
};

class client {
 public:
  explicit client(options o = {});
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  // As given: one address, or a comma-separated list of a cluster's replicas.
  const std::string& target() const { return target_; }
  // The replica calls go to now (it follows the leader).
  std::string current_target() const;
  // Not OK when the TLS files could not be read (it names the file): the client then has no
  // connection and every call fails (UNAVAILABLE). Check it before the first call.
  const absl::Status& setup() const { return setup_; }

  // Blocking calls.
  absl::StatusOr<std::optional<v1::Entry>> get(std::string_view key, const get_options& o = {});
  absl::StatusOr<put_result> put(std::string_view key, std::string_view value,
                                 const put_options& o = {});
  absl::StatusOr<delete_result> remove(std::string_view key, const delete_options& o = {});
  // Deletes every key starting with prefix; an empty prefix needs all_keys. Returns the count.
  absl::StatusOr<uint64_t> remove_prefix(std::string_view prefix, bool all_keys = false);
  absl::StatusOr<int64_t> increment(std::string_view key, int64_t delta = 1);
  range_reader range(range_options o);
  watcher watch(watch_options o);
  // Many independent operations in one call (not atomic): a result or an error for each, in
  // order. Fails as a whole only if the batch itself is refused (e.g. too many operations).
  absl::StatusOr<v1::BatchResponse> batch(const v1::BatchRequest& req);
  // Compares, then one branch, atomically in one revision (not retried: it may write).
  absl::StatusOr<v1::TxnResponse> txn(const v1::TxnRequest& req);
  // A Pipeline stream: requests sent without waiting, replies in order (see pipeline.h). It has
  // no deadline; it must not outlive this client. Its run() follows the leader.
  pipeline open_pipeline() { return pipeline(*this); }
  absl::StatusOr<v1::StatusResponse> status();
  absl::StatusOr<v1::ServerConfig> config();

  // The same calls as tasks, on a runtime whose workers run the completion-queue driver.
  rt::task<absl::StatusOr<std::optional<v1::Entry>>> get_async(std::string key);
  rt::task<absl::StatusOr<put_result>> put_async(std::string key, std::string value,
                                                 put_options o = {});
  rt::task<absl::StatusOr<delete_result>> remove_async(std::string key, delete_options o = {});
  rt::task<absl::StatusOr<int64_t>> increment_async(std::string key, int64_t delta = 1);
  // One Range page (pass back its continuation for the next).
  rt::task<absl::StatusOr<v1::RangeResponse>> range_page_async(range_options o,
                                                               std::string continuation = {});
  // A watch read from tasks (the stream opens on the first next()).
  async_watcher watch_async(watch_options o);

  // For what the wrappers do not cover: the current replica's stubs.
  v1::KV::Stub& kv_stub() { return *endpoint_at(current_.load()).kv; }
  v1::Admin::Stub& admin_stub() { return *endpoint_at(current_.load()).admin; }
  const options& opts() const { return options_; }

 private:
  friend class range_reader;
  friend class watcher;
  friend class async_watcher;
  friend class pipeline;
  struct endpoint {
    std::string target;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<v1::KV::Stub> kv;
    std::unique_ptr<v1::Admin::Stub> admin;
  };
  endpoint& endpoint_at(std::size_t i);
  // The endpoint for `target` (a leader hint), added if it is not one of the given ones.
  std::size_t endpoint_for(const std::string& target);
  // Runs call(stub's endpoint, context) on the current replica, following the cluster (above).
  // `read`: retried on UNAVAILABLE with backoff; otherwise only where nothing was applied.
  grpc::Status on_cluster(bool read,
                          const std::function<grpc::Status(endpoint&, grpc::ClientContext&)>& call);
  // The same as a task (async.cc): prepare(endpoint&, context*, queue) starts the call.
  template <class Resp, class Prepare>
  rt::task<grpc::Status> on_cluster_async(bool read, Prepare prepare, Resp* resp);
  // How often a call may be tried: the read retries, and once more per replica.
  int attempts() const;
  // After an UNAVAILABLE answer from replica i (`ctx` holds its trailers): moves the client on (to
  // the leader it names, or past i) and returns how long to wait before the next try, or nothing
  // when the call must not be sent again (a write that may have been applied).
  std::optional<std::chrono::milliseconds> after_unavailable(std::size_t i,
                                                             const grpc::ClientContext& ctx,
                                                             const grpc::Status& s, bool read,
                                                             int* pauses);
  // Replica i refused for not leading (nothing applied) and named `leader` (empty: none known):
  // moves the client there (or past i) and returns how long to wait before the next try.
  std::chrono::milliseconds follow_leader(std::size_t i, const std::string& leader, int* pauses);
  // A stream's replica failed: the client moves past it (unless it has moved already).
  void move_past(std::size_t i);
  // gRPC's status when no connection could be made: the call was never sent.
  static bool never_sent(const grpc::Status& s);
  std::size_t endpoint_count() const;
  options options_;
  std::string target_;
  absl::Status setup_;
  mutable std::mutex endpoints_mu_;
  std::deque<endpoint> endpoints_;  // never shrinks, never moves an element
  std::atomic<std::size_t> current_{0};
};

// A gRPC status as an absl::Status (the codes are the same numbers).
absl::Status to_status(const grpc::Status& s);

}  // namespace shoal::client
