#include "service/handlers/admin.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "runtime/blocking.h"
#include "service/build_info.h"
#include "service/handlers/convert.h"
#include "service/replica/raft_store.h"

namespace shoal::service::handlers {

namespace {

void fill_durability(const context& ctx, v1::Durability* d) {
  const wal::journal& j = *ctx.journal;
  d->set_data_dir(ctx.durability_info.data_dir);
  switch (j.policy()) {
    case wal::sync_policy::always:
      d->set_fsync("always");
      break;
    case wal::sync_policy::interval:
      d->set_fsync("interval");
      break;
    case wal::sync_policy::none:
      d->set_fsync("none");
      break;
  }
  d->set_durable_revision(j.durable_revision());
  if (j.failed()) d->set_log_error(j.failure());
  const wal::journal::stats s = j.statistics();
  d->set_log_segment_bytes(s.segment_bytes);
  d->set_log_syncs(s.syncs);
  d->set_recovered_records(ctx.durability_info.recovered_records);
  d->set_recovery_ms(ctx.durability_info.recovery_ms);
  d->set_log_closed_bytes(s.closed_bytes);
  if (ctx.durability_info.snapshot) ctx.durability_info.snapshot(d);
}

}  // namespace

grpc::Status status(context& ctx, const v1::StatusRequest&, v1::StatusResponse& resp) {
  const auto cfg = ctx.current_config();
  ctx.fill(resp.mutable_header());
  resp.set_keys(ctx.kv->keys());
  resp.set_bytes(ctx.kv->bytes());
  resp.set_watchers(static_cast<uint32_t>(ctx.watchers.load(std::memory_order_relaxed)));
  resp.set_in_flight(static_cast<uint32_t>(ctx.calls->in_flight()));
  resp.set_uptime_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - ctx.started)
                         .count());
  resp.set_version(build_info::version());
  resp.set_config_version(cfg->version);
  resp.set_config_source(cfg->source);
  resp.set_last_config_error(cfg->last_error);
  resp.set_compact_revision(ctx.hub->compact_revision());
  if (ctx.journal != nullptr) fill_durability(ctx, resp.mutable_durability());
  if (ctx.raft != nullptr) ctx.raft->describe(resp.mutable_replication());
  return grpc::Status::OK;
}

grpc::Status get_config(context& ctx, const v1::GetConfigRequest&, v1::GetConfigResponse& resp) {
  const auto cfg = ctx.current_config();
  ctx.fill(resp.mutable_header());
  *resp.mutable_config() = config::redacted(cfg->config);
  resp.set_config_version(cfg->version);
  return grpc::Status::OK;
}

grpc::Status health_check(context& ctx, const grpc::health::v1::HealthCheckRequest& req,
                          grpc::health::v1::HealthCheckResponse& resp) {
  using hc = grpc::health::v1::HealthCheckResponse;
  if (req.service().empty()) {
    resp.set_status(hc::SERVING);  // liveness: the process answers
    return grpc::Status::OK;
  }
  if (req.service() != "shoal.v1.KV") {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("unknown service \"", req.service(),
                                     "\"; this server reports \"\" (liveness) and shoal.v1.KV "
                                     "(readiness)"));
  }
  resp.set_status(ctx.serving->borrow()->ready() ? hc::SERVING : hc::NOT_SERVING);
  return grpc::Status::OK;
}

namespace {
grpc::Status single_server() {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                      "this shoald is a single server (no --raft_id): it has no members to change");
}
}  // namespace

grpc::Status not_replicated(context&, const v1::AddMemberRequest&, v1::MembersResponse&) {
  return single_server();
}
grpc::Status not_replicated(context&, const v1::RemoveMemberRequest&, v1::MembersResponse&) {
  return single_server();
}
grpc::Status not_replicated(context&, const v1::TransferLeadershipRequest&, v1::MembersResponse&) {
  return single_server();
}

rt::task<grpc::Status> snapshot(context& ctx, const v1::SnapshotRequest&,
                                stream_writer<v1::SnapshotChunk>& out, const call_done&) {
  if (!ctx.durability_info.backup) {
    co_return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                           "this shoald keeps its store in memory only (no --data_dir): there is "
                           "nothing durable to copy");
  }
  // The copy is made on the blocking pool: a single server's reads files and folds them, never
  // the store; a replica's copies its store on the Raft thread, between applies. One at a time:
  // each holds a second copy of the data while it is made.
  auto making = rt::spawn_blocking(  // named: g++ 12 (runtime/README)
      [&ctx]() -> absl::StatusOr<std::pair<uint64_t, std::string>> {
        if (ctx.backing_up.exchange(true)) {
          return absl::ResourceExhaustedError(
              "a snapshot is being made for another client; try again when it is done");
        }
        struct done_t {
          std::atomic<bool>* flag;
          ~done_t() { flag->store(false); }
        } done{&ctx.backing_up};
        return ctx.durability_info.backup();
      });
  auto made = co_await std::move(making);
  if (!made) co_return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping");
  if (!made->ok()) co_return to_grpc(made->status());
  const auto& [revision, bytes] = **made;
  const std::size_t chunk = std::min<std::size_t>(1 << 20, reply_room(*ctx.current_config()));
  v1::SnapshotChunk c;
  c.set_revision(revision);
  c.set_total_bytes(bytes.size());
  // A copy of every key: each chunk goes only while the rules in force still make the caller an
  // admin (a reload may come while a large copy streams).
  auth::stream_caller caller(out.call(), metrics::method::snapshot);
  for (std::size_t at = 0; at < bytes.size() || at == 0; at += chunk) {
    c.set_data(bytes.substr(at, chunk));
    if (!caller.still_allowed(ctx.current_config(), v1::SnapshotRequest())) {
      co_return caller.revoked();
    }
    if (!co_await out.write(c)) co_return grpc::Status::CANCELLED;
    c.Clear();
    if (at + chunk >= bytes.size()) break;
  }
  co_return grpc::Status::OK;
}

}  // namespace shoal::service::handlers
