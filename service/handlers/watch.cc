#include "service/handlers/watch.h"

#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "runtime/sync/select.h"
#include "runtime/time/sleep.h"
#include "service/handlers/convert.h"

namespace shoal::service::handlers {
namespace {

using clk = std::chrono::steady_clock;
namespace health = grpc::health::v1;

// The name readiness answers for; liveness is the empty name.
constexpr const char* k_kv_service = "shoal.v1.KV";

struct filters {
  bool no_put = false;
  bool no_delete = false;
};

bool matches(const v1::WatchRequest& req, const filters& f, const watch::event& e) {
  if (e.type == watch::event::kind::put ? f.no_put : f.no_delete) return false;
  const std::string_view k = e.key();
  const absl::string_view key(k.data(), k.size());
  const absl::string_view want(req.key().data(), req.key().size());
  return req.prefix() ? absl::StartsWith(key, want) : key == want;
}

void add_event(const v1::WatchRequest& req, const watch::event& e, const store::store& kv,
               v1::WatchResponse& resp) {
  v1::Event* out = resp.add_events();
  out->set_revision(e.revision);
  switch (e.type) {
    case watch::event::kind::put:
      out->set_type(v1::Event::PUT);
      fill_entry(out->mutable_entry(), e.entry(), kv);
      break;
    case watch::event::kind::remove:
    case watch::event::kind::expire:
      out->set_type(e.type == watch::event::kind::remove ? v1::Event::DELETE : v1::Event::EXPIRE);
      out->mutable_entry()->set_key(e.key().data(), e.key().size());
      out->mutable_entry()->set_mod_revision(e.revision);
      break;
    default:
      break;
  }
  if (req.prev_kv() && e.has_previous()) fill_entry(out->mutable_previous(), e.previous(), kv);
}

// A slot against live.max_watchers, held for the life of the stream.
class watcher_slot {
 public:
  explicit watcher_slot(context& ctx) : ctx_(ctx) {}
  bool admit(int64_t max) {
    if (ctx_.watchers.fetch_add(1, std::memory_order_relaxed) >= max) {
      ctx_.watchers.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    held_ = true;
    return true;
  }
  ~watcher_slot() {
    if (held_) ctx_.watchers.fetch_sub(1, std::memory_order_relaxed);
  }

 private:
  context& ctx_;
  bool held_ = false;
};

template <class T>
rt::task<bool> changed(rt::watch::receiver<T>* rx) {
  const bool ok = co_await rx->changed();
  co_return ok;
}

}  // namespace

rt::task<grpc::Status> watch(context& ctx, const v1::WatchRequest& req,
                             stream_writer<v1::WatchResponse>& out, const call_done& done) {
  const auto cfg = ctx.current_config();
  if (req.key().empty() && !req.prefix()) {
    co_return invalid("key is empty; set prefix to watch every key");
  }
  if (req.key().size() > cfg->live().max_key_bytes()) co_return check_key(req.key(), *cfg);
  filters filter;
  for (int f : req.filters()) {
    if (f == v1::NO_PUT) {
      filter.no_put = true;
    } else if (f == v1::NO_DELETE) {
      filter.no_delete = true;
    } else {
      co_return invalid(
          absl::StrCat("unknown watch filter ", f, "; known: NO_PUT (1), NO_DELETE (2)"));
    }
  }
  watcher_slot slot(ctx);
  if (!slot.admit(cfg->live().max_watchers())) {
    metrics::count(metrics::event::rejected_watchers);
    co_return grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("the server has its maximum of ", cfg->live().max_watchers(),
                     " watchers (live.max_watchers)"));
  }
  const auto progress_every = std::chrono::milliseconds(req.progress_interval_ms() != 0
                                                            ? req.progress_interval_ms()
                                                            : cfg->live().progress_interval_ms());
  const std::size_t max_batch_bytes = cfg->startup().max_message_bytes() / 2;

  v1::WatchResponse resp;
  const bool other_store =
      req.start_revision() != 0 && !req.store_id().empty() && req.store_id() != ctx.store_id;
  store::sequencer::subscription sub;
  if (!other_store) sub = ctx.seq->subscribe(req.start_revision());
  if (other_store || sub.compacted) {
    const uint64_t compact = other_store ? ctx.seq->compact_revision() : sub.compact_revision;
    resp.set_compacted(true);
    resp.set_compact_revision(compact);
    ctx.fill(resp.mutable_header());
    (void)co_await out.write(resp);
    co_return grpc::Status(
        grpc::StatusCode::OUT_OF_RANGE,
        other_store
            ? absl::StrCat("start_revision belongs to store ", req.store_id(), "; this is store ",
                           ctx.store_id, " (it restarted): list again, then watch")
            : absl::StrCat("revision ", req.start_revision(),
                           " is no longer in the history; the oldest is ", compact,
                           ": list again, then watch from the list's revision + 1"));
  }

  uint64_t next = sub.start_revision;  // the first revision not yet delivered
  std::size_t batch_bytes = 0;
  auto take = [&](const watch::event& e) {
    if (e.revision < next) return;  // already delivered by the replay
    next = e.revision + 1;
    // A Txn's events go into the response together: a batch is flushed only between events.
    if (e.type == watch::event::kind::txn) {
      for (const auto& part : e.parts()) {
        if (!matches(req, filter, *part)) continue;
        add_event(req, *part, *ctx.kv, resp);
        batch_bytes += part->bytes();
      }
      return;
    }
    if (!matches(req, filter, e)) return;
    add_event(req, e, *ctx.kv, resp);
    batch_bytes += e.bytes();
  };

  for (const auto& e : sub.replay) {
    take(*e);
    if (batch_bytes >= max_batch_bytes) {
      ctx.fill(resp.mutable_header());
      if (!co_await out.write(resp)) co_return grpc::Status::CANCELLED;
      resp.Clear();
      batch_bytes = 0;
    }
  }
  if (resp.events_size() > 0) {
    ctx.fill(resp.mutable_header());
    if (!co_await out.write(resp)) co_return grpc::Status::CANCELLED;
    resp.Clear();
    batch_bytes = 0;
  }

  auto& live = *sub.live;
  clk::time_point last_sent = clk::now();
  for (;;) {
    // The next event, the client gone (gRPC's notice, through call_done) or the drain: nothing
    // polls.
    auto woke =
        co_await rt::select(rt::biased, live.recv(), done.ended(), ctx.shutdown.cancelled());
    if (woke.index() == 1) co_return grpc::Status::CANCELLED;  // the client went away
    if (woke.index() == 2) {
      resp.set_canceled(true);
      resp.set_resume_revision(next);
      resp.set_cancel_reason("the server is shutting down");
      ctx.fill(resp.mutable_header());
      (void)co_await out.write(resp);
      co_return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
    }
    bool progress = false;
    uint64_t progress_revision = 0;
    std::optional<rt::expected<watch::event_ptr, rt::broadcast::recv_error>> r(
        std::move(std::get<0>(woke)));
    // Take what else is already there, up to a message's worth.
    while (r) {
      if (!*r) {
        if (r->error().kind == rt::broadcast::recv_error::closed) {
          co_return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
        }
        // Fell behind by more than the channel holds: say where to resume.
        metrics::count(metrics::event::watcher_lagged);
        resp.Clear();
        resp.set_canceled(true);
        resp.set_resume_revision(next);
        resp.set_cancel_reason(absl::StrCat("watcher fell behind by more than the server buffers; ",
                                            "resume from revision ", next));
        ctx.fill(resp.mutable_header());
        (void)co_await out.write(resp);
        co_return grpc::Status(grpc::StatusCode::ABORTED,
                               absl::StrCat("watcher fell behind; resume from revision ", next));
      }
      const watch::event& e = ***r;
      if (e.type == watch::event::kind::tick) {
        progress = true;
        progress_revision = e.revision;
      } else {
        take(e);
      }
      if (batch_bytes >= max_batch_bytes) break;
      r = live.try_recv();
    }
    if (resp.events_size() > 0) {
      ctx.fill(resp.mutable_header());
      if (!co_await out.write(resp)) co_return grpc::Status::CANCELLED;
      resp.Clear();
      batch_bytes = 0;
      last_sent = clk::now();
    }
    if (progress) {
      if (progress_every.count() > 0 && clk::now() - last_sent >= progress_every) {
        // Every event up to the tick's revision has passed through this channel before it.
        resp.set_progress(true);
        ctx.fill(resp.mutable_header());
        resp.mutable_header()->set_revision(progress_revision);
        if (!co_await out.write(resp)) co_return grpc::Status::CANCELLED;
        resp.Clear();
        last_sent = clk::now();
      }
    }
  }
}

rt::task<grpc::Status> watch_config(context& ctx, const v1::WatchConfigRequest&,
                                    stream_writer<v1::GetConfigResponse>& out,
                                    const call_done& done) {
  rt::watch::receiver<config::snapshot_ptr> rx = *ctx.config;
  for (;;) {
    v1::GetConfigResponse resp;
    {
      const config::snapshot_ptr snap = *rx.borrow_and_update();
      *resp.mutable_config() = snap->config;
      resp.set_config_version(snap->version);
    }
    ctx.fill(resp.mutable_header());
    if (!co_await out.write(resp)) co_return grpc::Status::CANCELLED;
    auto r = co_await rt::select(changed(&rx), ctx.shutdown.cancelled(), done.ended());
    if (r.index() == 1 || ctx.shutdown.is_cancelled()) {
      co_return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
    }
    if (r.index() == 2) co_return grpc::Status::CANCELLED;
    // Otherwise a new configuration: written at the top of the loop.
  }
}

rt::task<grpc::Status> health_watch(context& ctx, const health::HealthCheckRequest& req,
                                    stream_writer<health::HealthCheckResponse>& out,
                                    const call_done& done) {
  rt::watch::receiver<serving_state> rx = *ctx.serving;
  auto status_now = [&]() {
    if (req.service().empty()) return health::HealthCheckResponse::SERVING;  // liveness
    if (req.service() != k_kv_service) return health::HealthCheckResponse::SERVICE_UNKNOWN;
    return rx.borrow_and_update()->ready() ? health::HealthCheckResponse::SERVING
                                           : health::HealthCheckResponse::NOT_SERVING;
  };
  health::HealthCheckResponse resp;
  resp.set_status(status_now());
  if (!co_await out.write(resp)) co_return grpc::Status::CANCELLED;
  for (;;) {
    auto r = co_await rt::select(changed(&rx), ctx.shutdown.cancelled(), done.ended());
    if (r.index() == 2) co_return grpc::Status::CANCELLED;  // the client went away
    const bool stop = r.index() == 1 || ctx.shutdown.is_cancelled();
    if (r.index() == 0 || stop) {
      // Report the latest status first: a drain shows NOT_SERVING before the stream ends.
      const auto s = status_now();
      if (s != resp.status()) {
        resp.set_status(s);
        if (!co_await out.write(resp)) co_return grpc::Status::CANCELLED;
      }
    }
    if (stop) co_return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
  }
}

}  // namespace shoal::service::handlers
