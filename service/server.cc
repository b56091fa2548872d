#include "service/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "runtime/blocking.h"
#include "runtime/grpc/completion_queue_driver.h"
#include "runtime/runtime.h"
#include "runtime/sync/notify.h"
#include "runtime/sync/select.h"
#include "runtime/sync/watch.h"
#include "runtime/time/sleep.h"
#include "service/auth/tls.h"
#include "service/config/config_watcher.h"
#include "service/context.h"
#include "service/durable.h"
#include "service/handlers/admin.h"
#include "service/handlers/call.h"
#include "service/handlers/kv.h"
#include "service/handlers/pipeline.h"
#include "service/handlers/screen.h"
#include "service/handlers/watch.h"
#include "service/log.h"
#include "service/metrics/metrics.h"
#include "service/probe.h"
#include "service/replica/raft_store.h"
#include "shoal/v1/admin.grpc.pb.h"
#include "shoal/v1/kv.grpc.pb.h"

namespace shoal::service {
namespace {

namespace health = grpc::health::v1;
using namespace std::chrono_literals;

// Requests kept posted per completion queue: enough for the hot methods' concurrency, few for
// the rest (each posted request holds a ServerContext, about 1 KiB).
constexpr int k_posted_hot = 128;
constexpr int k_posted_cold = 8;
// How often the progress clock ticks through the watch channel (the granularity of progress
// notifications, and how soon a watcher notices its client left).
constexpr auto k_tick = 250ms;

// Two shards per worker, at least four. A write holds its shard for well under a microsecond, so
// two workers rarely meet on one; a Range page seeks every shard, so more shards make pages
// slower (docs/benchmarks.md measures both).
uint32_t shards_for(const v1::StartupSettings& s, int workers) {
  if (s.shards() != 0) return s.shards();
  uint32_t n = 4;
  while (n < static_cast<uint32_t>(workers) * 2) n <<= 1;
  return n;
}

// gRPC's buffers (messages read and not yet handed over, messages queued to send): sixteen
// messages of the largest size, and at least 128 MiB. The quota is what bounds them in all: 1 GiB
// (gRPC's own figure) is a pod's whole memory limit.
int64_t grpc_buffer_quota(const v1::StartupSettings& s) {
  return std::max<int64_t>(int64_t{128} << 20, int64_t{16} * s.max_message_bytes());
}

// Expires entries as they come due: sleeps until the earliest expiry, or until a write sets an
// earlier one. Visits only expired entries.
rt::task<> purge_expired(store::store* kv, rt::notify* expiry_changed) {
  for (;;) {
    kv->set_purge_wakeup(0);
    kv->expire_due();
    const int64_t next = kv->earliest_expiry();
    kv->set_purge_wakeup(next);
    if (next == 0) {
      co_await expiry_changed->notified();
      continue;
    }
    const rt::clock::time_point when{std::chrono::nanoseconds(next)};
    (void)co_await rt::select(rt::to_task(rt::sleep_until(when)),
                              rt::to_task(expiry_changed->notified()));
  }
}

// The progress clock: a tick through the watch channel while anyone watches.
rt::task<> tick_watchers(context* ctx) {
  rt::interval tick(k_tick, rt::missed_tick_behavior::skip);
  for (;;) {
    co_await tick.tick();
    if (ctx->watchers.load(std::memory_order_relaxed) > 0) {
      ctx->hub->publish_control(watch::event::kind::tick);
    }
  }
}

// The admission limits follow the live configuration.
rt::task<> follow_limits(rt::watch::receiver<config::snapshot_ptr> rx, admission* calls) {
  for (;;) {
    const bool changed = co_await rx.changed();
    if (!changed) co_return;
    calls->follow((*rx.borrow_and_update())->live());
  }
}

// After a reload with auth on, open watches check their callers against the new rules (a reload
// that changed something else costs each watcher a look at them). (Whether calls check at all,
// context::auth_enabled, the config watcher sets around publishing.) Auth turned on while
// reflection, started without it, is served: say that it stays until a restart.
rt::task<> follow_auth(rt::watch::receiver<config::snapshot_ptr> rx, context* ctx,
                       bool reflection) {
  bool warned = false;
  for (;;) {
    const bool changed = co_await rx.changed();
    if (!changed) co_return;
    if (!(*rx.borrow_and_update())->auth_on()) continue;
    if (reflection && !warned) {
      warned = true;
      SHOAL_LOG(warn,
                "auth is on; gRPC reflection, started without it, is served until a restart "
                "(it shows the API's schema, no data)");
    }
    ctx->hub->publish_control(watch::event::kind::rules);
  }
}

// A durable server's sync policy follows live.fsync (recorded in the data directory first when
// it stops syncing before replies: a blocking write, on the blocking pool).
rt::task<> follow_fsync(rt::watch::receiver<config::snapshot_ptr> rx, durable* d) {
  std::string policy = (*rx.borrow_and_update())->live().fsync();
  uint32_t interval = (*rx.borrow())->live().fsync_interval_ms();
  for (;;) {
    const bool changed = co_await rx.changed();
    if (!changed) co_return;
    const v1::LiveSettings live = (*rx.borrow_and_update())->live();
    if (live.fsync() == policy && live.fsync_interval_ms() == interval) continue;
    policy = live.fsync();
    interval = live.fsync_interval_ms();
    auto following = rt::spawn_blocking([d, live] { return d->follow(live); });  // named: g++ 12
    auto done = co_await std::move(following);
    if (!done || !done->ok()) {
      SHOAL_LOG(error, "live.fsync could not be changed",
                {{"error", done ? std::string(done->message()) : std::string("stopped")}});
    }
  }
}

// Waits until every admitted call has gone, or the grace period is over; true if none is left.
rt::task<bool> drain_calls(admission* calls, std::chrono::seconds grace) {
  auto first = co_await rt::select(rt::biased, calls->close(), rt::sleep(grace));
  co_return first.index() == 0;
}

}  // namespace

struct server::impl {
  v1::ServerConfig flags;
  std::string config_path;

  // The configuration channel and what handlers read from it.
  rt::watch::sender<config::snapshot_ptr> config_tx;
  rt::watch::receiver<config::snapshot_ptr> config_rx;
  rt::watch::sender<serving_state> serving_tx;
  rt::watch::receiver<serving_state> serving_rx;

  admission calls;
  std::unique_ptr<watch::hub> hub;
  rt::notify expiry_changed;
  std::unique_ptr<store::store> kv;
  std::unique_ptr<durable> durability;               // with startup.data_dir, alone
  std::unique_ptr<replica::raft_store> replication;  // with startup.raft_id
  context ctx;

  // Batch's requests and Pipeline's frames are read raw, screened before they are parsed
  // (handlers/screen.h).
  using kv_async =
      v1::KV::WithRawMethod_Batch<v1::KV::WithRawMethod_Pipeline<v1::KV::AsyncService>>;
  kv_async kv_service;
  v1::Admin::AsyncService admin_service;
  health::Health::AsyncService health_service;
  std::unique_ptr<grpc::Server> grpc_server;
  std::vector<grpc::ServerCompletionQueue*> queues;  // owned by the runtime's drivers
  std::unique_ptr<rt::runtime> runtime;
  std::unique_ptr<config::config_watcher> watcher;
  std::unique_ptr<metrics::exporter> metrics;
  std::unique_ptr<probe_server> probes;  // with startup.probe_listen
  std::string address;
  bool stopped = false;

  impl(config::snapshot_ptr initial)
      : config_tx(rt::watch::channel<config::snapshot_ptr>(initial).first),
        config_rx(config_tx.subscribe()),
        serving_tx(rt::watch::channel<serving_state>(serving_state{}).first),
        serving_rx(serving_tx.subscribe()),
        calls(initial->live()) {
    ctx.calls = &calls;
  }

  using completion_queues = std::vector<std::unique_ptr<grpc::ServerCompletionQueue>>;
  // The start-up, a step each, in order (create): gRPC listening with a queue per worker, the
  // runtime driving those queues, the store and what handlers share, the tasks.
  absl::Status start_grpc(const config::snapshot& cfg, int workers, completion_queues* cqs);
  void start_runtime(const v1::StartupSettings& startup, int workers, completion_queues& cqs);
  // With a data directory, the store is restored from its log (before any call is served).
  absl::Status open_store(const config::snapshot& cfg, int workers);
  void start_tasks();
  // Keeps every method's requests posted on `cq`.
  void post_calls(grpc::ServerCompletionQueue* cq);
  void stop();
};

void server::impl::post_calls(grpc::ServerCompletionQueue* cq) {
  using namespace handlers;
  auto& rt = *runtime;
  using KV = kv_async;
  using Admin = v1::Admin::AsyncService;
  using Health = health::Health::AsyncService;
  post_unary(rt, &kv_service, &KV::RequestGet, &handlers::get, cq, &ctx, metrics::method::get,
             k_posted_hot);
  post_unary(rt, &kv_service, &KV::RequestPut, &handlers::put, cq, &ctx, metrics::method::put,
             k_posted_hot);
  post_unary(rt, &kv_service, &KV::RequestDelete, &handlers::remove, cq, &ctx,
             metrics::method::remove, k_posted_cold);
  post_unary(rt, &kv_service, &KV::RequestIncrement, &handlers::increment, cq, &ctx,
             metrics::method::increment, k_posted_cold);
  post_unary(rt, &kv_service, &KV::RequestTxn, &handlers::txn, cq, &ctx, metrics::method::txn,
             k_posted_cold);
  post_raw_unary(rt, &kv_service, &KV::RequestBatch, &handlers::batch, &handlers::screen_batch, cq,
                 &ctx, metrics::method::batch, k_posted_cold);
  post_unary(rt, &kv_service, &KV::RequestRange, &handlers::range, cq, &ctx, metrics::method::range,
             k_posted_cold);
  post_stream(rt, &kv_service, &KV::RequestWatch, &handlers::watch, cq, &ctx,
              metrics::method::watch, k_posted_cold);
  post_bidi(rt, &kv_service, &KV::RequestPipeline, &handlers::pipeline, cq, &ctx,
            metrics::method::pipeline, k_posted_cold);
  post_unary(rt, &admin_service, &Admin::RequestStatus, &handlers::status, cq, &ctx,
             metrics::method::status, 2);
  post_unary(rt, &admin_service, &Admin::RequestGetConfig, &handlers::get_config, cq, &ctx,
             metrics::method::get_config, 2);
  post_stream(rt, &admin_service, &Admin::RequestWatchConfig, &handlers::watch_config, cq, &ctx,
              metrics::method::watch_config, 2);
  post_stream(rt, &admin_service, &Admin::RequestSnapshot, &handlers::snapshot, cq, &ctx,
              metrics::method::snapshot, 1);
  using add_fn = grpc::Status (*)(context&, const v1::AddMemberRequest&, v1::MembersResponse&);
  using remove_fn =
      grpc::Status (*)(context&, const v1::RemoveMemberRequest&, v1::MembersResponse&);
  using transfer_fn =
      grpc::Status (*)(context&, const v1::TransferLeadershipRequest&, v1::MembersResponse&);
  post_unary(rt, &admin_service, &Admin::RequestAddMember,
             static_cast<add_fn>(&handlers::not_replicated), cq, &ctx, metrics::method::add_member,
             1);
  post_unary(rt, &admin_service, &Admin::RequestRemoveMember,
             static_cast<remove_fn>(&handlers::not_replicated), cq, &ctx,
             metrics::method::remove_member, 1);
  post_unary(rt, &admin_service, &Admin::RequestTransferLeadership,
             static_cast<transfer_fn>(&handlers::not_replicated), cq, &ctx,
             metrics::method::transfer_leadership, 1);
  post_unary(rt, &health_service, &Health::RequestCheck, &handlers::health_check, cq, &ctx,
             metrics::method::health_check, k_posted_cold);
  post_stream(rt, &health_service, &Health::RequestWatch, &handlers::health_watch, cq, &ctx,
              metrics::method::health_watch, 4);
}

namespace {

// defaults < file < flags, validated: the configuration the server starts with.
absl::StatusOr<config::snapshot_ptr> initial_config(const server::options& o) {
  const v1::ServerConfig base = config::defaults();
  v1::ServerConfig file;
  std::string source = "defaults";
  if (!o.config_path.empty()) {
    auto loaded = config::load_file(o.config_path);
    if (!loaded.ok()) return loaded.status();
    file = *std::move(loaded);
    absl::StrAppend(&source, "+file:", o.config_path);
  }
  if (o.flags.ByteSizeLong() > 0) absl::StrAppend(&source, "+flags");
  auto snap = std::make_shared<config::snapshot>();
  snap->config = config::merge({&base, &file, &o.flags});
  snap->version = 1;
  snap->source = source;
  if (auto st = config::validate(snap->config); !st.ok()) return st;
  if (auto st = config::seal(*snap); !st.ok()) return st;
  return snap;
}

// Whether `listen` can be reached from another machine: any host but a loopback one.
bool beyond_loopback(const std::string& listen) {
  if (listen.rfind("unix:", 0) == 0) return false;
  const std::string host = listen.substr(0, listen.rfind(':'));
  return !(host == "localhost" || host == "[::1]" || host.rfind("127.", 0) == 0);
}

// A replica's view of Raft, for /metrics.
void add_raft_gauges(const replica::raft_view& v, metrics::gauges* g) {
  g->replicated = true;
  g->is_leader = v.state == replica::raft_view::role::leader;
  g->has_leader = v.leader_id != 0;
  g->raft_term = v.term;
  g->raft_leader_id = v.leader_id;
  g->raft_commit_index = v.commit_index;
  g->raft_applied_index = v.applied_index;
  g->raft_last_index = v.last_index;
  g->raft_members = v.members.size();
  g->raft_caught_up = v.caught_up;
  g->raft_leader_changes = v.leader_changes;
  g->raft_dead_leader_elections = v.dead_leader_elections;
  g->raft_refused_members = v.refused.size();
  g->raft_peer_problems = v.peer_problems.size();
}

int worker_count(const v1::StartupSettings& startup) {
  if (startup.runtime() == "current_thread") return 1;
  if (startup.workers() != 0) return static_cast<int>(startup.workers());
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace

absl::Status server::impl::start_grpc(const config::snapshot& cfg, int workers,
                                      completion_queues* cqs) {
  const v1::StartupSettings& startup = cfg.startup();
  auto credentials = auth::server_credentials(startup);
  if (!credentials.ok()) return credentials.status();
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // gRPC's reflection service runs outside Shoal's handlers, where no call is admitted: with auth
  // on at start it is not served (docs/security.md).
  if (cfg.auth_on()) builder.SetOption(without_reflection());
  int port = 0;
  builder.AddListeningPort(startup.listen(), *credentials, &port);
  builder.RegisterService(&kv_service);
  builder.RegisterService(&admin_service);
  builder.RegisterService(&health_service);
  builder.SetMaxReceiveMessageSize(static_cast<int>(startup.max_message_bytes()));
  builder.SetMaxSendMessageSize(static_cast<int>(startup.max_message_bytes()));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 1000);
  // gRPC would set SO_REUSEPORT: a second shoald on this port would bind beside this one and
  // take a share of its connections, each with a store of its own. Off, the bind fails.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Dead clients must not hold watcher slots: ping idle connections, drop silent ones.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5'000);
  grpc::ResourceQuota quota("shoald");
  quota.SetMaxThreads(8);  // the reflection service's synchronous threads
  quota.Resize(grpc_buffer_quota(startup));
  builder.SetResourceQuota(quota);
  for (int i = 0; i < workers; ++i) cqs->push_back(builder.AddCompletionQueue());
  grpc_server = builder.BuildAndStart();
  if (!grpc_server || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", startup.listen(),
                     " (--listen): the port is in use, or the host is not an address of this "
                     "machine"));
  }
  const auto colon = startup.listen().rfind(':');
  address = absl::StrCat(startup.listen().substr(0, colon), ":", port);
  return absl::OkStatus();
}

void server::impl::start_runtime(const v1::StartupSettings& startup, int workers,
                                 completion_queues& cqs) {
  for (auto& cq : cqs) queues.push_back(cq.get());
  rt::runtime_options ro;
  ro.kind =
      startup.runtime() == "current_thread" ? rt::flavor::current_thread : rt::flavor::multi_thread;
  ro.workers = workers;
  ro.thread_name = "shoald";
  ro.make_driver = [&cqs](int i) {
    return rt::grpc::completion_queue_driver::adopt(std::move(cqs[i]));
  };
  runtime = std::make_unique<rt::runtime>(ro);
}

absl::Status server::impl::open_store(const config::snapshot& cfg, int workers) {
  const v1::StartupSettings& startup = cfg.startup();
  const bool replicated = startup.raft_id() != 0;
  kv = std::make_unique<store::store>(store::store::options{.shards = shards_for(startup, workers),
                                                            .clock = &runtime->clock(),
                                                            .hub = hub.get(),
                                                            .expiry_changed = &expiry_changed,
                                                            .expire_on_access = !replicated});
  if (durability) {
    auto id = durability->restore(*kv, *hub, runtime->clock(), cfg.live());
    if (!id.ok()) return id.status();
    ctx.store_id = *id;
    ctx.journal = &durability->log();
    durability->log().set_sync_observer(&metrics::observe_fsync);
    ctx.durability_info = {
        startup.data_dir(), durability->recovered().records,
        static_cast<uint64_t>(durability->recovered().took.count()),
        [d = durability.get()](v1::Durability* out) {
          const durable::snapshot_state s = d->last_snapshot();
          out->set_snapshot_revision(s.revision);
          out->set_snapshot_bytes(s.file_bytes);
          out->set_snapshot_keys(s.keys);
        },
        [d = durability.get()]() -> absl::StatusOr<std::pair<uint64_t, std::string>> {
          auto b = d->backup();
          if (!b.ok()) return b.status();
          return std::make_pair(b->revision, std::move(b->bytes));
        }};
  } else {
    ctx.store_id = new_store_id();
  }
  ctx.started = std::chrono::steady_clock::now();
  ctx.hub = hub.get();
  ctx.kv = kv.get();
  ctx.config = &config_rx;
  ctx.auth_enabled.store(cfg.auth_on());
  ctx.serving = &serving_rx;
  if (replicated) {
    // The store is the Raft log's: entries apply to it from here on (replica/raft_store.h).
    serving_tx.send_modify([](serving_state& s) { s.caught_up = false; });
    ctx.member_id = startup.raft_id();  // before the Raft thread applies anything
    auto rs = replica::raft_store::open(startup, &ctx, &runtime->clock(), [this] {
      serving_tx.send_modify([](serving_state& s) { s.caught_up = true; });
    });
    if (!rs.ok()) return rs.status();
    replication = std::move(*rs);
    ctx.raft = replication.get();
    ctx.durability_info.backup = [r = replication.get()] { return r->backup(); };
  }
  if (metrics) {  // the store's gauges, now that it exists
    metrics->publish([c = &ctx, d = durability.get(), r = replication.get()] {
      const auto history = c->hub->history_stats();
      metrics::gauges g{
          .keys = c->kv->keys(),
          .bytes = c->kv->bytes(),
          .revision = c->hub->revision(),
          .watchers = static_cast<uint64_t>(c->watchers.load(std::memory_order_relaxed)),
          .in_flight = c->calls->in_flight(),
          .history_events = history.events,
          .history_bytes = history.bytes,
          .compact_revision = c->hub->compact_revision()};
      if (d != nullptr) {
        const wal::journal::stats js = d->log().statistics();
        const durable::snapshot_state snap = d->last_snapshot();
        g.durable = true;
        g.durable_revision = d->log().durable_revision();
        g.log_failed = d->log().failed();
        g.log_bytes = js.segment_bytes + js.closed_bytes;
        g.snapshot_revision = snap.revision;
        g.snapshot_bytes = snap.file_bytes;
        g.snapshots_taken = snap.taken;
        g.recovery_seconds = std::chrono::duration<double>(d->recovered().took).count();
      }
      if (r != nullptr) add_raft_gauges(r->view(), &g);
      return g;
    });
  }
  // A replica serves once the cluster's store id is known, which takes a majority; its Raft
  // gauges are published before (a replica that cannot reach one is what they must show).
  if (replication) ctx.store_id = replication->wait_store_id();
  return absl::OkStatus();
}

void server::impl::start_tasks() {
  for (grpc::ServerCompletionQueue* cq : queues) post_calls(cq);
  if (replication) {
    runtime->spawn(replication->purge(&expiry_changed)).detach();
    runtime->spawn(replication->publish_settings(config_tx.subscribe())).detach();
  } else {
    runtime->spawn(purge_expired(kv.get(), &expiry_changed)).detach();
  }
  runtime->spawn(tick_watchers(&ctx)).detach();
  runtime->spawn(follow_limits(config_tx.subscribe(), &calls)).detach();
  runtime->spawn(follow_auth(config_tx.subscribe(), &ctx, !ctx.auth_on())).detach();
  if (durability) {
    runtime->spawn(durability->log().run()).detach();
    runtime->spawn(follow_fsync(config_tx.subscribe(), durability.get())).detach();
    runtime->spawn(durability->compact_when_due()).detach();
  }
  if (!config_path.empty()) {
    watcher =
        std::make_unique<config::config_watcher>(config_path, flags, &config_tx, &ctx.auth_enabled);
    if (auto st = watcher->start(); !st.ok()) {
      SHOAL_LOG(warn, "config file will not be reloaded", {{"error", std::string(st.message())}});
    }
  }
}

absl::StatusOr<std::unique_ptr<server>> server::create(options o) {
  auto snap = initial_config(o);
  if (!snap.ok()) return snap.status();
  log::level lvl;
  if (log::parse_level((*snap)->live().log_level(), &lvl)) log::set_level(lvl);
  const v1::StartupSettings startup = (*snap)->startup();
  const int workers = worker_count(startup);

  auto p = std::make_unique<impl>(*snap);
  p->flags = o.flags;
  p->config_path = o.config_path;
  p->hub = std::make_unique<watch::hub>(
      watch::hub::options{.history_max_events = startup.history_max_events(),
                          .history_max_bytes = startup.history_max_bytes(),
                          .channel_capacity = 4096,
                          .channel_max_bytes = startup.history_max_bytes()});
  // Before gRPC starts: a metrics address that cannot be bound stops the start cleanly.
  if (!startup.metrics_listen().empty()) {
    auto m = metrics::exporter::start(startup.metrics_listen());
    if (!m.ok()) return m.status();
    p->metrics = std::move(*m);
  }
  // Before the port is bound too: a data directory another shoald holds stops the start.
  if (!startup.data_dir().empty() && startup.raft_id() == 0) {
    auto d = durable::open(startup, wal::posix_file_system());
    if (!d.ok()) return d.status();
    p->durability = std::move(*d);
  }
  impl::completion_queues cqs;  // one per worker
  if (auto st = p->start_grpc(**snap, workers, &cqs); !st.ok()) return st;
  p->start_runtime(startup, workers, cqs);
  if (auto st = p->open_store(**snap, workers); !st.ok()) {
    p->grpc_server->Shutdown(std::chrono::system_clock::now());
    p->runtime->shutdown();
    return st;
  }
  p->start_tasks();
  if (!startup.probe_listen().empty()) {
    auto probes = probe_server::start(startup.probe_listen(), &p->ctx);
    if (!probes.ok()) {
      p->stop();
      return probes.status();
    }
    p->probes = *std::move(probes);
  }
  if (beyond_loopback(startup.listen()) && !(*snap)->auth_on()) {
    SHOAL_LOG(warn,
              "listening beyond loopback without auth: anyone who reaches the port can read and "
              "delete every key (set live.auth: docs/security.md)",
              {{"address", p->address}});
  } else if (beyond_loopback(startup.listen()) && !auth::tls_on(startup)) {
    SHOAL_LOG(warn,
              "listening beyond loopback without TLS: tokens and data cross the network in clear "
              "(set startup.tls_cert_file and tls_key_file: docs/security.md)",
              {{"address", p->address}});
  }
  SHOAL_LOG(
      info, "shoald started",
      {{"address", p->address},
       {"tls", auth::tls_on(startup) ? startup.tls_client_auth() == "off"
                                           ? "on"
                                           : "on, client certificates " + startup.tls_client_auth()
                                     : std::string("off")},
       {"auth", (*snap)->auth_on() ? "on" : "off"},
       {"store_id", p->ctx.store_id},
       {"runtime", startup.runtime()},
       {"workers", workers},
       {"shards", p->kv->shard_count()},
       {"config", (*snap)->source}});
  return std::unique_ptr<server>(new server(std::move(p)));
}

server::server(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

server::~server() { shutdown(); }

std::string server::address() const { return impl_->address; }

std::string server::metrics_address() const {
  if (!impl_->metrics) return "";
  const std::string& listen = impl_->config_rx.borrow()->get()->startup().metrics_listen();
  return absl::StrCat(listen.substr(0, listen.rfind(':')), ":", impl_->metrics->address());
}

std::string server::probe_address() const {
  return impl_->probes ? impl_->probes->address() : std::string();
}

void server::shutdown() { impl_->stop(); }

void server::impl::stop() {
  if (stopped) return;
  stopped = true;
  const auto grace =
      std::chrono::seconds(config_rx.borrow()->get()->startup().shutdown_grace_seconds());
  SHOAL_LOG(info, "draining", {{"grace_seconds", static_cast<int64_t>(grace.count())}});
  // Readiness first, so that load balancers stop sending; new calls are refused with
  // UNAVAILABLE; every stream ends with UNAVAILABLE.
  serving_tx.send_modify([](serving_state& s) { s.draining = true; });
  ctx.draining.store(true);  // sequentially consistent: a Pipeline reader pairs with it
  ctx.shutdown.cancel();
  watcher.reset();
  // Calls in flight get the grace period. (gRPC's own Shutdown would also wait for every client
  // to close its connection, which an idle client may never do: drain here, then shut down at
  // once, which closes the connections.)
  if (!runtime->block_on(drain_calls(&calls, grace))) {
    SHOAL_LOG(warn, "grace period over; cancelling calls", {{"calls", calls.in_flight()}});
  }
  // A replica that leads hands over once its own calls are done: the others write on at once.
  if (replication) (void)runtime->block_on(replication->hand_over());
  // Nothing is in flight: stop at once. (During a shutdown window gRPC core keeps connections
  // open but cancels the calls that arrive on them, so the window is kept to nothing; only a
  // call in transit at this very instant can be cut short.)
  grpc_server->Shutdown(std::chrono::system_clock::now());
  probes.reset();  // NOT_SERVING until here
  SHOAL_LOG(debug, "gRPC server stopped");
  if (replication) replication->stop();  // its callbacks wake tasks: before the runtime stops
  runtime->shutdown();  // cancels what is left (posted requests, background tasks), drains queues
  SHOAL_LOG(debug, "runtime stopped");
  if (durability) durability->close();  // nothing writes any more
  grpc_server.reset();
  SHOAL_LOG(info, "stopped");
}

}  // namespace shoal::service
