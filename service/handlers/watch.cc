#include "service/handlers/watch.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "runtime/sync/select.h"
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

grpc::Status parse_filters(const v1::WatchRequest& req, filters* out) {
  for (int f : req.filters()) {
    if (f == v1::NO_PUT) {
      out->no_put = true;
    } else if (f == v1::NO_DELETE) {
      out->no_delete = true;
    } else {
      return invalid(
          absl::StrCat("unknown watch filter ", f, "; known: NO_PUT (1), NO_DELETE (2)"));
    }
  }
  return grpc::Status::OK;
}

// One Watch stream once it is admitted and subscribed: its steps are replay (the history from
// the start revision), follow (the live channel until the client leaves, the server drains or
// the watcher lags out) and flush (the events gathered so far, as one response, written once
// they are a message's worth or nothing more is ready).
class watch_stream {
 public:
  watch_stream(context& ctx, const v1::WatchRequest& req, filters f,
               stream_writer<v1::WatchResponse>& out, std::size_t max_batch_bytes, uint64_t next)
      : ctx_(ctx),
        req_(req),
        filter_(f),
        out_(out),
        caller_(out.call(), metrics::method::watch),
        config_(*ctx.config),
        max_batch_bytes_(max_batch_bytes),
        next_(next) {}

  // How the stream ends after a write that did not happen: the rules revoked it (a last response
  // says so), or the client is gone.
  rt::task<grpc::Status> ended() {
    grpc::Status status = grpc::Status::CANCELLED;
    if (revoked_) {
      std::string reason = "the rules changed (live.auth): this watch is no longer allowed";
      co_await cancel(std::move(reason));
      status = caller_.revoked();
    }
    co_return status;
  }

  // Writes the history's events in batches. False if the client is gone or the rules revoked
  // the watch (then ended() says which).
  rt::task<bool> replay(const std::vector<watch::event_ptr>& events) {
    for (const auto& e : events) {
      take(*e);
      if (full() && !co_await flush()) co_return false;
    }
    co_return co_await flush();
  }

  // Follows the live channel: each wake-up takes what is ready (up to a message's worth) and
  // flushes it; a progress tick is answered when the stream has been quiet long enough.
  rt::task<grpc::Status> follow(rt::broadcast::receiver<watch::event_ptr>& live,
                                const call_done& done, std::chrono::milliseconds progress_every) {
    clk::time_point last_sent = clk::now();
    for (;;) {
      // The next event, the client gone (gRPC's notice, through call_done) or the drain:
      // nothing polls.
      auto woke =
          co_await rt::select(rt::biased, live.recv(), done.ended(), ctx_.shutdown.cancelled());
      if (woke.index() == 1) co_return grpc::Status::CANCELLED;  // the client went away
      if (woke.index() == 2) {
        co_await cancel("the server is shutting down");
        co_return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
      }
      std::optional<received> r(std::move(std::get<0>(woke)));
      const uint64_t revision = ctx_.hub->revision();  // once: a put may land meanwhile
      metrics::observe_watch_lag(revision - std::min(revision, next_ - 1));
      std::optional<uint64_t> tick;   // the revision of a progress tick among them, if any
      std::optional<uint64_t> reset;  // a snapshot this replica loaded past what was delivered
      bool rules_changed = false;
      for (; r && !reset; r = full() ? std::nullopt : live.try_recv()) {
        if (!*r) co_return co_await fell_out(r->error());
        const watch::event& e = ***r;
        if (e.type == watch::event::kind::tick) {
          tick = e.revision;
        } else if (e.type == watch::event::kind::rules) {
          rules_changed = true;
        } else if (e.type == watch::event::kind::reset) {
          if (e.revision >= next_) reset = e.revision;
        } else {
          take(e);
        }
      }
      if (reset) {
        grpc::Status st = co_await replaced(*reset);  // named: g++ 12 (runtime/README.md)
        co_return st;
      }
      // The rules event wakes a watcher that has nothing to write (allowed() is asked again
      // before every write).
      if (rules_changed && !allowed()) co_return co_await ended();
      if (resp_.events_size() > 0) {
        // Written here rather than through flush(): the busiest path of a watcher keeps to the
        // one coroutine frame of the write itself.
        ctx_.fill(resp_.mutable_header());
        if (!settled() && !co_await settle()) co_return ctx_.log_failed();
        if (!allowed()) co_return co_await ended();
        const bool sent = co_await out_.write(resp_);
        clear_batch();
        if (!sent) co_return grpc::Status::CANCELLED;
        last_sent = clk::now();
      }
      if (tick && progress_every.count() > 0 && clk::now() - last_sent >= progress_every) {
        if (!co_await progress(*tick)) co_return co_await ended();
        last_sent = clk::now();
      }
    }
  }

 private:
  using received = rt::expected<watch::event_ptr, rt::broadcast::recv_error>;

  bool full() const { return batch_bytes_ >= max_batch_bytes_; }

  // Adds `e` (a Txn's matching parts, together: a batch is flushed only between events) unless
  // the replay delivered it already.
  void take(const watch::event& e) {
    if (e.revision < next_) return;
    next_ = e.revision + 1;
    if (e.type == watch::event::kind::txn) {
      for (const auto& part : e.parts()) add(*part);
      return;
    }
    add(e);
  }

  void add(const watch::event& e) {
    if (!matches(req_, filter_, e)) return;
    add_event(req_, e, *ctx_.kv, resp_);
    batch_bytes_ += e.bytes();
  }

  // Writes the gathered events, if any. False if the client is gone.
  rt::task<bool> flush() {
    if (resp_.events_size() == 0) co_return true;
    co_return co_await write();
  }

  // Every event up to the tick's revision has passed through the channel before it.
  rt::task<bool> progress(uint64_t revision) {
    resp_.set_progress(true);
    ctx_.fill(resp_.mutable_header());
    resp_.mutable_header()->set_revision(revision);
    if (!settled() && !co_await settle()) co_return false;
    if (!allowed()) co_return false;
    const bool sent = co_await out_.write(resp_);
    resp_.Clear();
    co_return sent;
  }

  rt::task<bool> write() {
    ctx_.fill(resp_.mutable_header());
    if (!settled() && !co_await settle()) co_return false;
    if (!allowed()) co_return false;
    const bool sent = co_await out_.write(resp_);
    clear_batch();
    co_return sent;
  }

  // Nothing goes to a caller the rules in force refuse: asked right before every write, after
  // any wait (one atomic load while the configuration has not changed). Once refused, always.
  bool allowed() {
    if (revoked_) return false;
    if (!config_.has_changed()) return true;
    if (caller_.still_allowed(*config_.borrow_and_update(), req_)) return true;
    revoked_ = true;
    return false;
  }

  // A watcher sends nothing the log could still lose: the response's header revision (which
  // covers its events) must be settled first; settle() yields false if the log failed.
  bool settled() const { return ctx_.settled(resp_.header().revision()); }
  rt::task<bool> settle() { return ctx_.journal->settle(resp_.header().revision()); }

  void clear_batch() {
    resp_.Clear();
    batch_bytes_ = 0;
  }

  // A last response that ends the watch and says where to resume (it carries no event: written
  // even to a caller the rules now refuse).
  rt::task<> cancel(std::string reason) {
    resp_.Clear();
    resp_.set_canceled(true);
    resp_.set_resume_revision(next_);
    resp_.set_cancel_reason(std::move(reason));
    ctx_.fill(resp_.mutable_header());
    // Named results: g++ 12 miscompiles a co_await in the condition of a void task's co_return
    // (runtime/README.md).
    bool durable = settled();
    if (!durable) durable = co_await settle();
    if (durable) {
      const bool sent = co_await out_.write(resp_);
      (void)sent;
    }
  }

  // This replica loaded the leader's snapshot at `revision` while the watcher had delivered less:
  // what it gathered goes out, then where to resume (another replica may hold the rest).
  rt::task<grpc::Status> replaced(uint64_t revision) {
    const bool flushed = co_await flush();  // named: g++ 12 (runtime/README.md)
    if (!flushed) co_return grpc::Status::CANCELLED;
    metrics::count(metrics::event::watcher_lagged);
    co_await cancel(absl::StrCat(
        "this replica fell behind and loaded the leader's snapshot at "
        "revision ",
        revision, "; resume from revision ", next_, " on another replica, or list again"));
    co_return grpc::Status(
        grpc::StatusCode::ABORTED,
        absl::StrCat("this replica replaced its store with the leader's snapshot; resume from "
                     "revision ",
                     next_));
  }

  // The channel closed (the server stops) or the watcher fell behind by more than it holds.
  rt::task<grpc::Status> fell_out(const rt::broadcast::recv_error& error) {
    if (error.kind == rt::broadcast::recv_error::closed) {
      co_return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
    }
    metrics::count(metrics::event::watcher_lagged);
    co_await cancel(absl::StrCat("watcher fell behind by more than the server buffers; ",
                                 "resume from revision ", next_));
    co_return grpc::Status(grpc::StatusCode::ABORTED,
                           absl::StrCat("watcher fell behind; resume from revision ", next_));
  }

  context& ctx_;
  const v1::WatchRequest& req_;
  const filters filter_;
  stream_writer<v1::WatchResponse>& out_;
  auth::stream_caller caller_;                        // checked again when the rules change
  rt::watch::receiver<config::snapshot_ptr> config_;  // to see that they did
  bool revoked_ = false;
  const std::size_t max_batch_bytes_;
  uint64_t next_;  // the first revision not yet delivered
  std::size_t batch_bytes_ = 0;
  v1::WatchResponse resp_;
};

// A watch from a revision the history no longer holds, or from another store's revision.
rt::task<grpc::Status> refuse_start(context& ctx, const v1::WatchRequest& req,
                                    stream_writer<v1::WatchResponse>& out, bool other_store,
                                    uint64_t compact) {
  v1::WatchResponse resp;
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

}  // namespace

rt::task<grpc::Status> watch(context& ctx, const v1::WatchRequest& req,
                             stream_writer<v1::WatchResponse>& out, const call_done& done) {
  const auto cfg = ctx.current_config();
  if (req.key().empty() && !req.prefix()) {
    co_return invalid("key is empty; set prefix to watch every key");
  }
  if (req.key().size() > cfg->live().max_key_bytes()) co_return check_key(req.key(), *cfg);
  filters filter;
  if (auto st = parse_filters(req, &filter); !st.ok()) co_return st;
  watcher_slot slot(ctx);
  if (!slot.admit(cfg->live().max_watchers())) {
    metrics::count(metrics::event::rejected_watchers);
    co_return grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("the server has its maximum of ", cfg->live().max_watchers(),
                     " watchers (live.max_watchers)"));
  }
  const bool other_store =
      req.start_revision() != 0 && !req.store_id().empty() && req.store_id() != ctx.store_id;
  if (other_store) {
    co_return co_await refuse_start(ctx, req, out, true, ctx.hub->compact_revision());
  }
  watch::hub::subscription sub = ctx.hub->subscribe(req.start_revision());
  if (sub.compacted) co_return co_await refuse_start(ctx, req, out, false, sub.compact_revision);

  const auto progress_every = std::chrono::milliseconds(req.progress_interval_ms() != 0
                                                            ? req.progress_interval_ms()
                                                            : cfg->live().progress_interval_ms());
  watch_stream stream(ctx, req, filter, out, cfg->startup().max_message_bytes() / 2,
                      sub.start_revision);
  if (!co_await stream.replay(sub.replay)) co_return co_await stream.ended();
  sub.replay.clear();  // what the history held is out: the events need not wait for the stream
  co_return co_await stream.follow(*sub.live, done, progress_every);
}

rt::task<grpc::Status> watch_config(context& ctx, const v1::WatchConfigRequest&,
                                    stream_writer<v1::GetConfigResponse>& out,
                                    const call_done& done) {
  rt::watch::receiver<config::snapshot_ptr> rx = *ctx.config;
  auth::stream_caller caller(out.call(), metrics::method::watch_config);
  for (;;) {
    v1::GetConfigResponse resp;
    {
      const config::snapshot_ptr snap = *rx.borrow_and_update();
      // The configuration holds the rules: an admin that no longer is sees none of it.
      if (!caller.still_allowed(snap, v1::WatchConfigRequest())) co_return caller.revoked();
      *resp.mutable_config() = config::redacted(snap->config);
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
