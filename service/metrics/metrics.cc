#include "service/metrics/metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "prometheus/collectable.h"
#include "prometheus/exposer.h"
#include "prometheus/metric_family.h"
#include "service/build_info.h"

namespace shoal::service::metrics {
namespace {

constexpr std::size_t k_methods = static_cast<std::size_t>(method::count_);
constexpr std::size_t k_events = static_cast<std::size_t>(event::count_);
constexpr std::size_t k_codes = 17;  // gRPC status codes 0..16
// Call latency buckets, in seconds: a loopback call takes tens of microseconds.
constexpr std::array<double, 12> k_bounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                             0.01,   0.025,   0.05,   0.1,   0.25,   1.0};

// Each method as the grpc_server_* metrics label it: service, method, and the call's shape.
struct method_labels {
  const char* service;
  const char* method;
  const char* type;  // unary, server_stream, client_stream or bidi_stream
};
constexpr std::array<method_labels, k_methods> k_method_labels = {{
    {"shoal.v1.KV", "Get", "unary"},
    {"shoal.v1.KV", "Put", "unary"},
    {"shoal.v1.KV", "Delete", "unary"},
    {"shoal.v1.KV", "Increment", "unary"},
    {"shoal.v1.KV", "Range", "unary"},
    {"shoal.v1.KV", "Watch", "server_stream"},
    {"shoal.v1.Admin", "Status", "unary"},
    {"shoal.v1.Admin", "GetConfig", "unary"},
    {"shoal.v1.Admin", "WatchConfig", "server_stream"},
    {"grpc.health.v1.Health", "Check", "unary"},
    {"grpc.health.v1.Health", "Watch", "server_stream"},
    {"shoal.v1.KV", "Batch", "unary"},
    {"shoal.v1.KV", "Txn", "unary"},
    {"shoal.v1.KV", "Pipeline", "bidi_stream"},
    {"shoal.v1.Admin", "Snapshot", "server_stream"},
    {"shoal.v1.Admin", "AddMember", "unary"},
    {"shoal.v1.Admin", "RemoveMember", "unary"},
    {"shoal.v1.Admin", "TransferLeadership", "unary"},
}};

// Status codes as gRPC dashboards label them (the names Go's gRPC gives the codes).
constexpr std::array<const char*, k_codes> k_code_names = {
    "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
    "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
    "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
    "DataLoss", "Unauthenticated"};

}  // namespace

std::string method_name(method m) {
  const method_labels& l = k_method_labels[static_cast<std::size_t>(m)];
  return absl::StrCat(l.service, "/", l.method);
}

namespace {

// Labels of one method, in name order, then `extra` (code, le...).
std::vector<prometheus::ClientMetric::Label> labels_of(std::size_t m) {
  const method_labels& l = k_method_labels[m];
  return {{"grpc_method", l.method}, {"grpc_service", l.service}, {"grpc_type", l.type}};
}

// One thread's counters. Only that thread writes them (plain load + store, no read-modify-write);
// scrapes read them from another thread, hence the relaxed atomics.
struct block {
  std::atomic<uint64_t> calls[k_methods][k_codes] = {};
  std::atomic<uint64_t> buckets[k_methods][k_bounds.size() + 1] = {};
  std::atomic<uint64_t> nanos[k_methods] = {};
  std::atomic<uint64_t> events[k_events] = {};
  std::atomic<uint64_t> watch_lag_max{0};  // since the previous scrape (which resets it)
  std::atomic<uint64_t> fsync_buckets[k_bounds.size() + 1] = {};
  std::atomic<uint64_t> fsync_nanos{0};
};

// The bucket a duration falls in.
std::size_t bucket_of(std::chrono::nanoseconds took) {
  const double seconds = std::chrono::duration<double>(took).count();
  std::size_t i = 0;
  while (i < k_bounds.size() && seconds > k_bounds[i]) ++i;
  return i;
}

// A histogram's sample from its per-bucket counts (the last is +Inf).
prometheus::ClientMetric histogram_of(const uint64_t* counts, uint64_t nanos) {
  prometheus::ClientMetric h;
  uint64_t cumulative = 0;
  for (std::size_t i = 0; i < k_bounds.size(); ++i) {
    cumulative += counts[i];
    h.histogram.bucket.push_back({cumulative, k_bounds[i]});
  }
  cumulative += counts[k_bounds.size()];
  h.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
  h.histogram.sample_count = cumulative;
  h.histogram.sample_sum = static_cast<double>(nanos) / 1e9;
  return h;
}

void bump(std::atomic<uint64_t>& c, uint64_t by = 1) {
  c.store(c.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

// Every thread that ever recorded keeps its block for the life of the process (threads are few
// and long-lived: workers, gRPC's, the config watcher).
struct registry {
  std::mutex mu;
  std::vector<std::unique_ptr<block>> blocks;

  static registry& get() {
    static registry* r = new registry();  // never destroyed: threads may record during exit
    return *r;
  }
  block& mine() {
    thread_local block* b = nullptr;
    if (b == nullptr) {
      auto owned = std::make_unique<block>();
      b = owned.get();
      std::lock_guard lock(mu);
      blocks.push_back(std::move(owned));
    }
    return *b;
  }
};

prometheus::MetricFamily family(std::string name, std::string help, prometheus::MetricType t) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = t;
  return f;
}

prometheus::MetricFamily gauge(std::string name, std::string help, double value) {
  auto f = family(std::move(name), std::move(help), prometheus::MetricType::Gauge);
  f.metric.emplace_back();
  f.metric.back().gauge.value = value;
  return f;
}

// The process, read from /proc at each scrape: the standard process_* metrics.
struct process_sample {
  double cpu_seconds = 0, start_time_seconds = 0, virtual_bytes = 0, resident_bytes = 0;
  double open_fds = 0, max_fds = 0;
};

process_sample read_process() {
  process_sample p;
  std::ifstream stat_file("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces), from field 3 (state) on.
  const auto close = stat.rfind(')');
  if (close != std::string::npos) {
    std::istringstream rest(stat.substr(close + 2));
    std::vector<std::string> f{std::istream_iterator<std::string>(rest),
                               std::istream_iterator<std::string>()};
    const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    if (f.size() > 21) {
      p.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / ticks;  // utime + stime
      p.virtual_bytes = std::stod(f[20]);
      p.resident_bytes = std::stod(f[21]) * static_cast<double>(::sysconf(_SC_PAGESIZE));
      std::ifstream boot("/proc/stat");
      for (std::string line; std::getline(boot, line);) {
        if (line.rfind("btime ", 0) == 0) {
          p.start_time_seconds = std::stod(line.substr(6)) + std::stod(f[19]) / ticks;
        }
      }
    }
  }
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++p.open_fds;
  }
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0) p.max_fds = static_cast<double>(files.rlim_cur);
  return p;
}

void add_process_metrics(std::vector<prometheus::MetricFamily>& out) {
  const process_sample p = read_process();
  auto cpu = family("process_cpu_seconds_total", "User and system CPU time spent, in seconds.",
                    prometheus::MetricType::Counter);
  cpu.metric.emplace_back();
  cpu.metric.back().counter.value = p.cpu_seconds;
  out.push_back(std::move(cpu));
  out.push_back(gauge("process_start_time_seconds",
                      "Start time of the process since the Unix epoch, in seconds.",
                      p.start_time_seconds));
  out.push_back(
      gauge("process_virtual_memory_bytes", "Virtual memory size, in bytes.", p.virtual_bytes));
  out.push_back(
      gauge("process_resident_memory_bytes", "Resident memory size, in bytes.", p.resident_bytes));
  out.push_back(gauge("process_open_fds", "Open file descriptors.", p.open_fds));
  out.push_back(gauge("process_max_fds", "The limit on open file descriptors.", p.max_fds));
}

void add_build_info(std::vector<prometheus::MetricFamily>& out) {
  auto f = family("shoal_build_info", "What shoald was built from; the value is always 1.",
                  prometheus::MetricType::Gauge);
  f.metric.emplace_back();
  f.metric.back().label = {{"build_type", build_info::build_type()},
                           {"grpc_version", build_info::grpc_version()},
                           {"version", build_info::version()}};
  f.metric.back().gauge.value = 1;
  out.push_back(std::move(f));
}

// A replica's view of Raft, as etcd's dashboards ask of a member: who leads, how often that
// changed, how far the log is applied, and peers it refused.
void add_raft_metrics(const gauges& g, std::vector<prometheus::MetricFamily>& out) {
  const auto add = [&](const char* name, const char* help, double value) {
    out.push_back(gauge(name, help, value));
  };
  add("shoal_raft_is_leader", "1 while this replica leads.", g.is_leader ? 1 : 0);
  add("shoal_raft_has_leader", "1 while this replica knows a leader (0: an election is on).",
      g.has_leader ? 1 : 0);
  add("shoal_raft_term", "The Raft term this replica is in.", static_cast<double>(g.raft_term));
  add("shoal_raft_leader_id", "The leader's raft id (0: none known).",
      static_cast<double>(g.raft_leader_id));
  add("shoal_raft_commit_index", "The highest log index this replica knows is committed.",
      static_cast<double>(g.raft_commit_index));
  add("shoal_raft_applied_index", "The highest log index applied to this replica's store.",
      static_cast<double>(g.raft_applied_index));
  add("shoal_raft_last_log_index", "The last index in this replica's log.",
      static_cast<double>(g.raft_last_index));
  add("shoal_raft_members", "Members in the configuration this replica knows.",
      static_cast<double>(g.raft_members));
  add("shoal_raft_caught_up",
      "1 once this replica has applied what its leader had committed when it connected "
      "(readiness).",
      g.raft_caught_up ? 1 : 0);
  add("shoal_raft_refused_members",
      "Members refused for coming back under their id with another disk.",
      static_cast<double>(g.raft_refused_members));
  add("shoal_raft_peer_problems", "Peer connections currently failing for TLS or identity.",
      static_cast<double>(g.raft_peer_problems));
  const auto count = [&](const char* name, const char* help, uint64_t value) {
    auto f = family(name, help, prometheus::MetricType::Counter);
    f.metric.emplace_back();
    f.metric.back().counter.value = static_cast<double>(value);
    out.push_back(std::move(f));
  };
  count("shoal_raft_leader_changes_seen_total",
        "Times this replica saw a new leader since it started (the first too).",
        g.raft_leader_changes);
  count("shoal_raft_dead_leader_elections_total",
        "Elections this replica started at once because its leader's process was gone (the "
        "leader's Raft port refused connections).",
        g.raft_dead_leader_elections);
}

// Builds the families at scrape time from the thread blocks and the server's state.
class collector : public prometheus::Collectable {
 public:
  // The server's state, once it is whole (until then a scrape shows the call counters only).
  void publish(std::function<gauges()> read) {
    read_ = std::move(read);
    published_.store(true, std::memory_order_release);
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    uint64_t calls[k_methods][k_codes] = {};
    uint64_t buckets[k_methods][k_bounds.size() + 1] = {};
    uint64_t nanos[k_methods] = {};
    uint64_t events[k_events] = {};
    uint64_t watch_lag = 0;
    uint64_t fsync_buckets[k_bounds.size() + 1] = {};
    uint64_t fsync_nanos = 0;
    {
      auto& r = registry::get();
      std::lock_guard lock(r.mu);
      for (const auto& b : r.blocks) {
        for (std::size_t m = 0; m < k_methods; ++m) {
          for (std::size_t c = 0; c < k_codes; ++c)
            calls[m][c] += b->calls[m][c].load(std::memory_order_relaxed);
          for (std::size_t i = 0; i <= k_bounds.size(); ++i)
            buckets[m][i] += b->buckets[m][i].load(std::memory_order_relaxed);
          nanos[m] += b->nanos[m].load(std::memory_order_relaxed);
        }
        for (std::size_t e = 0; e < k_events; ++e)
          events[e] += b->events[e].load(std::memory_order_relaxed);
        // A watcher's observation racing this reset may survive into the next interval: the
        // gauge is the largest lag seen lately, not an exact per-interval maximum.
        watch_lag = std::max(watch_lag, b->watch_lag_max.exchange(0, std::memory_order_relaxed));
        for (std::size_t i = 0; i <= k_bounds.size(); ++i)
          fsync_buckets[i] += b->fsync_buckets[i].load(std::memory_order_relaxed);
        fsync_nanos += b->fsync_nanos.load(std::memory_order_relaxed);
      }
    }
    std::vector<prometheus::MetricFamily> out;

    auto rpcs = family("grpc_server_handled_total",
                       "Calls finished on the server, by method and gRPC status code.",
                       prometheus::MetricType::Counter);
    auto latency = family("grpc_server_handling_seconds",
                          "Time from a call's arrival to its final status, by method.",
                          prometheus::MetricType::Histogram);
    for (std::size_t m = 0; m < k_methods; ++m) {
      uint64_t total = 0;
      for (std::size_t c = 0; c < k_codes; ++c) {
        total += calls[m][c];
        if (calls[m][c] == 0) continue;
        prometheus::ClientMetric cm;
        cm.label = labels_of(m);
        cm.label.insert(cm.label.begin(), {"grpc_code", k_code_names[c]});
        cm.counter.value = static_cast<double>(calls[m][c]);
        rpcs.metric.push_back(std::move(cm));
      }
      if (total == 0) continue;
      prometheus::ClientMetric h = histogram_of(buckets[m], nanos[m]);
      h.label = labels_of(m);
      latency.metric.push_back(std::move(h));
    }
    out.push_back(std::move(rpcs));
    out.push_back(std::move(latency));

    auto counter = [&](const char* name, const char* help,
                       std::initializer_list<std::pair<const char*, event>> by) {
      auto f = family(name, help, prometheus::MetricType::Counter);
      for (auto [label, e] : by) {
        prometheus::ClientMetric cm;
        if (label != nullptr) cm.label = {{"reason", label}};
        cm.counter.value = static_cast<double>(events[static_cast<std::size_t>(e)]);
        f.metric.push_back(std::move(cm));
      }
      out.push_back(std::move(f));
    };
    counter("shoal_rejected_calls_total", "Calls refused with RESOURCE_EXHAUSTED, by the limit.",
            {{"max_in_flight", event::rejected_in_flight},
             {"max_streams", event::rejected_streams},
             {"max_control_calls", event::rejected_control},
             {"max_watchers", event::rejected_watchers},
             {"max_keys", event::rejected_keys},
             {"max_bytes", event::rejected_bytes}});
    counter("shoal_watchers_lagged_total", "Watchers let go because they fell behind.",
            {{nullptr, event::watcher_lagged}});
    counter("shoal_watchers_cancelled_total", "Watch streams ended by their client.",
            {{nullptr, event::watcher_cancelled}});
    counter("shoal_config_reloads_total", "Config file reloads applied.",
            {{nullptr, event::config_reloaded}});
    counter("shoal_config_reload_failures_total",
            "Config file changes refused (the running config stays).",
            {{nullptr, event::config_reload_failed}});

    counter("shoal_auth_refused_total",
            "Calls refused by authentication or permissions (auth on), and streams ended by a "
            "reload that revoked them.",
            {{"unauthenticated", event::auth_unauthenticated},
             {"permission_denied", event::auth_denied},
             {"revoked", event::auth_revoked}});

    add_process_metrics(out);
    add_build_info(out);
    if (!published_.load(std::memory_order_acquire)) return out;  // still starting
    const gauges g = read_();
    out.push_back(gauge("shoal_keys", "Keys stored.", static_cast<double>(g.keys)));
    out.push_back(
        gauge("shoal_bytes", "Bytes of keys and values stored.", static_cast<double>(g.bytes)));
    out.push_back(
        gauge("shoal_revision", "The store's revision.", static_cast<double>(g.revision)));
    out.push_back(gauge("shoal_watchers", "Open watch streams.", static_cast<double>(g.watchers)));
    out.push_back(
        gauge("shoal_in_flight_calls", "Calls in flight.", static_cast<double>(g.in_flight)));
    out.push_back(gauge("shoal_watch_history_events",
                        "Events the watch history holds (a watch may start from any of them).",
                        static_cast<double>(g.history_events)));
    out.push_back(gauge("shoal_watch_history_bytes", "Bytes of the events the watch history holds.",
                        static_cast<double>(g.history_bytes)));
    out.push_back(gauge("shoal_watch_lag_revisions",
                        "The most revisions a watcher was behind the store when it woke to read, "
                        "since the previous scrape.",
                        static_cast<double>(watch_lag)));
    out.push_back(gauge("shoal_watch_compact_revision",
                        "The oldest revision a watch may start from; shoal_revision minus this "
                        "is how far back watchers can resume.",
                        static_cast<double>(g.compact_revision)));
    if (g.replicated) add_raft_metrics(g, out);
    if (!g.durable) return out;
    auto fsync = family("shoal_wal_fsync_seconds", "Time each fdatasync of the log took.",
                        prometheus::MetricType::Histogram);
    fsync.metric.push_back(histogram_of(fsync_buckets, fsync_nanos));
    out.push_back(std::move(fsync));
    out.push_back(gauge("shoal_wal_durable_revision", "Every revision up to this one is on disk.",
                        static_cast<double>(g.durable_revision)));
    out.push_back(gauge("shoal_wal_failed",
                        "1 once the log failed (fail-stop: writes are refused until a restart).",
                        g.log_failed ? 1 : 0));
    out.push_back(gauge("shoal_wal_log_bytes",
                        "Bytes of log not yet folded into a snapshot (open segment included).",
                        static_cast<double>(g.log_bytes)));
    out.push_back(gauge("shoal_snapshot_revision", "The newest snapshot's revision (0: none).",
                        static_cast<double>(g.snapshot_revision)));
    out.push_back(gauge("shoal_snapshot_bytes", "The newest snapshot's file size.",
                        static_cast<double>(g.snapshot_bytes)));
    out.push_back(gauge("shoal_snapshots_taken", "Snapshots taken since start.",
                        static_cast<double>(g.snapshots_taken)));
    out.push_back(gauge("shoal_recovery_seconds",
                        "How long the last start took to load the snapshot and replay the log.",
                        g.recovery_seconds));
    return out;
  }

 private:
  std::function<gauges()> read_;  // written once, before published_
  std::atomic<bool> published_{false};
};

}  // namespace

void record_call(method m, grpc::StatusCode code, std::chrono::steady_clock::duration took) {
  block& b = registry::get().mine();
  const auto mi = static_cast<std::size_t>(m);
  const auto ci = static_cast<std::size_t>(code) < k_codes ? static_cast<std::size_t>(code) : 2;
  bump(b.calls[mi][ci]);
  bump(b.buckets[mi][bucket_of(took)]);
  bump(b.nanos[mi], static_cast<uint64_t>(std::chrono::nanoseconds(took).count()));
}

void observe_watch_lag(uint64_t revisions) {
  std::atomic<uint64_t>& m = registry::get().mine().watch_lag_max;
  if (revisions > m.load(std::memory_order_relaxed)) m.store(revisions, std::memory_order_relaxed);
}

void observe_fsync(std::chrono::nanoseconds took) {
  block& b = registry::get().mine();
  bump(b.fsync_buckets[bucket_of(took)]);
  bump(b.fsync_nanos, static_cast<uint64_t>(took.count()));
}

void count(event e) { bump(registry::get().mine().events[static_cast<std::size_t>(e)]); }

struct exporter::impl {
  std::shared_ptr<collector> source;
  std::unique_ptr<prometheus::Exposer> exposer;
};

absl::StatusOr<std::unique_ptr<exporter>> exporter::start(const std::string& listen) {
  auto p = std::make_unique<impl>();
  p->source = std::make_shared<collector>();
  try {
    p->exposer = std::make_unique<prometheus::Exposer>(listen, 1);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot serve metrics on ", listen, " (--metrics_listen): ", e.what(),
                     " (is the port in use, or the host not an address of this machine?); "
                     "--metrics_listen= (empty) turns metrics off"));
  }
  p->exposer->RegisterCollectable(p->source);
  return std::unique_ptr<exporter>(new exporter(std::move(p)));
}

exporter::exporter(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

void exporter::publish(std::function<gauges()> read) { impl_->source->publish(std::move(read)); }
exporter::~exporter() = default;

std::string exporter::address() const {
  auto ports = impl_->exposer->GetListeningPorts();
  return ports.empty() ? "" : absl::StrCat(ports.front());
}

}  // namespace shoal::service::metrics
