// shoal-rt-bench: the cases of ../shared/anchors/tokio-bench, on Shoal's runtime.
//
// Same parameters, same fixed amounts of work, same output (`name: value unit`, one case per
// process), so the two can be run side by side and compared line by line:
//
//   shoal-rt-bench list
//   shoal-rt-bench one spawn_join/ct
//   shoal-rt-bench all --reps 3 [--filter mpsc] [--md FILE]   # medians on stdout
//
// Extra metric beyond the anchor: spawn_idle_1m reports heap allocations per spawned task, counted
// by a global operator new in this binary (on the spawning thread, while spawning).
//
// Cases beyond the anchor (timers_100k, spawn_blocking_rtt, join_set, select2, select8,
// coop_probe, and the mutex cases with one hash function on both sides) have their Tokio side in
// bench/tokio-cases, under the same names and parameters.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <new>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "runtime/blocking.h"
#include "runtime/join_set.h"
#include "runtime/runtime.h"
#include "runtime/sync/broadcast.h"
#include "runtime/sync/mpsc.h"
#include "runtime/sync/notify.h"
#include "runtime/sync/oneshot.h"
#include "runtime/sync/select.h"
#include "runtime/sync/watch.h"
#include "runtime/time/sleep.h"

// ------------------------------------------------------------------ allocation counting

namespace {
std::atomic<bool> g_count_allocs{false};
thread_local uint64_t t_allocs = 0;
}  // namespace

void* operator new(std::size_t n) {
  if (g_count_allocs.load(std::memory_order_relaxed)) ++t_allocs;
  if (void* p = std::malloc(n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace shoal::bench {
namespace {

using namespace std::chrono_literals;
using rt::join_handle;
using rt::task;
using clk = std::chrono::steady_clock;

constexpr int k_workers = 2;

struct metric {
  std::string name;
  double value;
  std::string unit;
};

double ns_per(clk::duration d, uint64_t n) {
  return std::chrono::duration<double, std::nano>(d).count() / static_cast<double>(n);
}
double per_sec(uint64_t n, clk::duration d) {
  return static_cast<double>(n) / std::chrono::duration<double>(d).count();
}

uint64_t rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

enum class rt_kind { ct, mt2, mt2_blockon };

std::unique_ptr<rt::runtime> make_runtime(rt_kind k) {
  rt::runtime_options o;
  o.kind = k == rt_kind::ct ? rt::flavor::current_thread : rt::flavor::multi_thread;
  o.workers = k_workers;
  return std::make_unique<rt::runtime>(o);
}

// As in the anchor: the body runs as a spawned task (so spawn() inside it is a worker-local
// spawn), except for mt2_blockon, where it runs on the calling thread... which Shoal's block_on
// does not do (it always runs the task on a worker). mt2_blockon therefore spawns from outside.
template <class F>
std::vector<metric> run_on(rt_kind k, F body) {
  auto runtime = make_runtime(k);
  return runtime->block_on(body());
}

// ---------------------------------------------------------------- 1. spawn_idle_1m

// The awaiter is a temporary: g++ 12 keeps a second copy of a named one in the frame.
task<> idle_task(rt::notify* n) { co_await n->notified(); }

task<std::vector<metric>> spawn_idle(std::string p, uint64_t n) {
  auto* notify = new rt::notify();
  // The handles' storage is allocated and touched before the baseline, as in the anchor.
  std::vector<join_handle<void>> handles(n);
  for (auto& h : handles) h = join_handle<void>();
  const uint64_t rss0 = rss_bytes();
  t_allocs = 0;
  g_count_allocs.store(true);
  const auto t0 = clk::now();
  for (auto& h : handles) h = rt::spawn(idle_task(notify));
  const auto t_spawn = clk::now() - t0;
  g_count_allocs.store(false);
  const uint64_t allocs = t_allocs;
  // Every task registered as a waiter (the anchor counts polls; waiters() is exact).
  while (notify->waiters() < n) co_await rt::sleep(1ms);
  const auto t_settle = clk::now() - t0;
  const uint64_t rss1 = rss_bytes();
  const auto t1 = clk::now();
  notify->notify_waiters();
  for (auto& h : handles) (void)co_await std::move(h);
  const auto t_wake = clk::now() - t1;
  const uint64_t rss2 = rss_bytes();
  co_return std::vector<metric>{
      {p + ".spawn", ns_per(t_spawn, n), "ns/task"},
      {p + ".spawn_until_all_polled", ns_per(t_settle, n), "ns/task"},
      {p + ".rss_growth", (static_cast<double>(rss1) - static_cast<double>(rss0)) / n,
       "bytes/task"},
      {p + ".wake_and_join", ns_per(t_wake, n), "ns/task"},
      {p + ".rss_after_join_minus_base", (static_cast<double>(rss2) - rss0) / (1024.0 * 1024.0),
       "MiB"},
      {p + ".allocations_per_spawn", static_cast<double>(allocs) / n, "allocs/task"},
  };
}

// ---------------------------------------------------------------- 2. spawn_join

task<uint64_t> value_task(uint64_t v) { co_return v; }

task<clk::duration> spawn_join_batches(uint64_t n, std::size_t batch) {
  std::vector<join_handle<uint64_t>> hs;
  hs.reserve(batch);
  uint64_t sum = 0;
  const auto t0 = clk::now();
  for (uint64_t i = 0; i < n;) {
    for (std::size_t b = 0; b < batch; ++b, ++i) hs.push_back(rt::spawn(value_task(i)));
    for (auto& h : hs) sum += *co_await h;
    hs.clear();
  }
  const auto d = clk::now() - t0;
  if (sum != n * (n - 1) / 2) std::abort();
  co_return d;
}

task<std::vector<metric>> spawn_join(std::string p, uint64_t n, std::size_t batch) {
  (void)co_await spawn_join_batches(n / 100, batch);
  auto d = co_await spawn_join_batches(n, batch);
  co_return std::vector<metric>{{p + ".spawn_and_join", ns_per(d, n), "ns/task"}};
}

// From a non-worker thread, as a #[tokio::main] body would (Shoal's block_on does not run tasks
// on the calling thread, so the body spawns through runtime::spawn and waits for each batch).
std::vector<metric> spawn_join_blockon(std::string p, uint64_t n, std::size_t batch) {
  auto runtime = make_runtime(rt_kind::mt2);
  auto run = [&](uint64_t count) {
    const auto t0 = clk::now();
    uint64_t sum = 0;
    std::vector<join_handle<uint64_t>> hs;
    hs.reserve(batch);
    for (uint64_t i = 0; i < count;) {
      for (std::size_t b = 0; b < batch; ++b, ++i) hs.push_back(runtime->spawn(value_task(i)));
      sum += runtime->block_on([](std::vector<join_handle<uint64_t>>* hs) -> task<uint64_t> {
        uint64_t s = 0;
        for (auto& h : *hs) s += *co_await h;
        co_return s;
      }(&hs));
      hs.clear();
    }
    if (sum != count * (count - 1) / 2) std::abort();
    return clk::now() - t0;
  };
  run(n / 100);
  auto d = run(n);
  return {{p + ".spawn_and_join", ns_per(d, n), "ns/task"}};
}

// ---------------------------------------------------------------- 3. mpsc bounded

task<> producer(rt::mpsc::sender<uint64_t> tx, uint64_t per) {
  for (uint64_t i = 0; i < per; ++i) {
    if (!co_await tx.send(i)) std::abort();
  }
}

task<std::pair<uint64_t, uint64_t>> consumer(rt::mpsc::receiver<uint64_t> rx) {
  uint64_t c = 0, s = 0;
  while (std::optional<uint64_t> v = co_await rx.recv()) {
    ++c;
    s += *v;
  }
  co_return std::pair{c, s};
}

task<clk::duration> mpsc_run(uint64_t total, uint64_t producers, std::size_t cap) {
  auto [tx, rx] = rt::mpsc::channel<uint64_t>(cap);
  const uint64_t per = total / producers;
  const auto t0 = clk::now();
  auto cons = rt::spawn(consumer(std::move(rx)));
  for (uint64_t i = 0; i < producers; ++i) rt::spawn(producer(tx, per)).detach();
  { auto drop = std::move(tx); }
  auto [c, s] = *co_await cons;
  const auto d = clk::now() - t0;
  if (c != per * producers || s != producers * (per * (per - 1) / 2)) std::abort();
  co_return d;
}

task<std::vector<metric>> mpsc_bench(std::string p, uint64_t total, uint64_t producers) {
  (void)co_await mpsc_run(total / 100, producers, 1024);
  auto d = co_await mpsc_run(total, producers, 1024);
  co_return std::vector<metric>{{p + ".throughput", per_sec(total, d) / 1e6, "Mmsg/s"},
                                {p + ".per_msg", ns_per(d, total), "ns/msg"}};
}

// ---------------------------------------------------------------- 4. oneshot ping-pong

struct request {
  uint64_t value;
  rt::oneshot::sender<uint64_t> reply;
};

task<> manager(rt::mpsc::receiver<request> rx) {
  while (std::optional<request> r = co_await rx.recv()) r->reply.send(r->value + 1);
}

task<clk::duration> pingpong_client(rt::mpsc::sender<request> tx, uint64_t n) {
  const auto t0 = clk::now();
  for (uint64_t i = 0; i < n; ++i) {
    auto [otx, orx] = rt::oneshot::channel<uint64_t>();
    request req{i,
                std::move(otx)};  // named: g++ 12 destroys aggregate temporaries in co_await twice
    if (!co_await tx.send(std::move(req))) std::abort();
    auto r = co_await std::move(orx);
    if (!r || *r != i + 1) std::abort();
  }
  co_return clk::now() - t0;
}

task<clk::duration> pingpong_run(uint64_t n) {
  auto [tx, rx] = rt::mpsc::channel<request>(32);
  auto m = rt::spawn(manager(std::move(rx)));
  auto c = rt::spawn(pingpong_client(std::move(tx), n));
  auto d = *co_await c;
  (void)co_await m;
  co_return d;
}

task<std::vector<metric>> pingpong(std::string p, uint64_t n) {
  (void)co_await pingpong_run(n / 100);
  auto d = co_await pingpong_run(n);
  co_return std::vector<metric>{{p + ".round_trip", ns_per(d, n), "ns/rt"}};
}

// ---------------------------------------------------------------- 5. broadcast fan-out

struct fanout_count {
  uint64_t got = 0, lag_events = 0, skipped = 0;
};

task<fanout_count> broadcast_receiver(rt::broadcast::receiver<uint64_t> rx) {
  fanout_count c;
  for (;;) {
    auto r = co_await rx.recv();
    if (r) {
      ++c.got;
      continue;
    }
    if (r.error().kind == rt::broadcast::recv_error::closed) break;
    ++c.lag_events;
    c.skipped += r.error().skipped;
  }
  co_return c;
}

task<clk::duration> broadcast_sender(rt::broadcast::sender<uint64_t> tx, uint64_t n,
                                     uint64_t pace) {
  const auto t = clk::now();
  for (uint64_t i = 0; i < n; ++i) {
    tx.send(i);
    if (pace > 0 && i % pace == pace - 1) co_await rt::yield_now();
  }
  co_return clk::now() - t;
}

task<std::vector<metric>> broadcast_bench(std::string p, uint64_t n, int receivers, std::size_t cap,
                                          uint64_t pace) {
  auto [tx, rx0] = rt::broadcast::channel<uint64_t>(cap);
  std::vector<join_handle<fanout_count>> rs;
  rs.push_back(rt::spawn(broadcast_receiver(std::move(rx0))));
  for (int i = 1; i < receivers; ++i) rs.push_back(rt::spawn(broadcast_receiver(tx.subscribe())));
  const auto t0 = clk::now();
  auto sender = rt::spawn(broadcast_sender(std::move(tx), n, pace));
  const auto t_send = *co_await sender;
  fanout_count total;
  for (auto& r : rs) {
    fanout_count c = *co_await r;
    if (c.got + c.skipped != n) std::abort();
    total.got += c.got;
    total.lag_events += c.lag_events;
    total.skipped += c.skipped;
  }
  const auto d = clk::now() - t0;
  co_return std::vector<metric>{
      {p + ".delivered_rate", per_sec(total.got, d) / 1e6, "Mmsg/s"},
      {p + ".delivered_fraction", 100.0 * total.got / (n * receivers), "%"},
      {p + ".lagged_errors", static_cast<double>(total.lag_events), "errors"},
      {p + ".skipped_msgs", static_cast<double>(total.skipped), "msgs"},
      {p + ".send_rate", per_sec(n, t_send) / 1e6, "Msend/s"},
      {p + ".elapsed", std::chrono::duration<double, std::milli>(d).count(), "ms"},
  };
}

// ---------------------------------------------------------------- 6. watch publish

task<std::pair<uint64_t, uint64_t>> watch_receiver(rt::watch::receiver<uint64_t> rx) {
  uint64_t seen = 0, last = 0;
  for (;;) {
    bool changed = co_await rx.changed();  // named: see runtime/task.h on g++ 12 and loops
    if (!changed) break;
    last = *rx.borrow();
    ++seen;
  }
  co_return std::pair{seen, last};
}

task<clk::duration> watch_sender(rt::watch::sender<uint64_t> tx, uint64_t n, bool pace) {
  const auto t = clk::now();
  for (uint64_t i = 1; i <= n; ++i) {
    tx.send(i);
    if (pace) co_await rt::yield_now();
  }
  co_return clk::now() - t;
}

task<std::vector<metric>> watch_bench(std::string p, uint64_t n, int receivers, bool pace) {
  auto [tx, rx] = rt::watch::channel<uint64_t>(0);
  std::vector<join_handle<std::pair<uint64_t, uint64_t>>> rs;
  for (int i = 0; i < receivers; ++i) rs.push_back(rt::spawn(watch_receiver(rx)));
  { auto drop = std::move(rx); }
  const auto t0 = clk::now();
  auto sender = rt::spawn(watch_sender(std::move(tx), n, pace));
  const auto t_send = *co_await sender;
  std::vector<uint64_t> seen;
  for (auto& r : rs) {
    auto [s, last] = *co_await r;
    if (last != n) std::abort();
    seen.push_back(s);
  }
  const auto d = clk::now() - t0;
  double mean = 0;
  for (auto s : seen) mean += static_cast<double>(s);
  mean /= receivers;
  co_return std::vector<metric>{
      {p + ".update_rate", per_sec(n, d) / 1e6, "Mupd/s"},
      {p + ".send_only_rate", per_sec(n, t_send) / 1e6, "Mupd/s"},
      {p + ".seen_per_rx_mean", mean, "updates"},
      {p + ".seen_per_rx_min", static_cast<double>(*std::min_element(seen.begin(), seen.end())),
       "updates"},
      {p + ".seen_per_rx_max", static_cast<double>(*std::max_element(seen.begin(), seen.end())),
       "updates"},
      {p + ".elapsed", std::chrono::duration<double, std::milli>(d).count(), "ms"},
  };
}

// ---------------------------------------------------------------- 9. spawn_blocking

task<std::vector<metric>> blocking_round_trip(std::string p, uint64_t n) {
  const auto t0 = clk::now();
  uint64_t sum = 0;
  for (uint64_t i = 0; i < n; ++i) sum += *co_await rt::spawn_blocking([i] { return i; });
  const auto d = clk::now() - t0;
  if (sum != n * (n - 1) / 2) std::abort();
  co_return std::vector<metric>{{p + ".round_trip", ns_per(d, n), "ns"}};
}

// ---------------------------------------------------------------- 10. join_set

task<std::vector<metric>> join_set_bench(std::string p, uint64_t n, uint64_t batch) {
  const auto t0 = clk::now();
  uint64_t sum = 0;
  for (uint64_t b = 0; b < n / batch; ++b) {
    rt::join_set<uint64_t> set;
    for (uint64_t i = 0; i < batch; ++i) set.spawn(value_task(i));
    for (;;) {
      auto r = co_await set.join_next();
      if (!r) break;
      sum += **r;
    }
  }
  const auto d = clk::now() - t0;
  if (sum != (n / batch) * batch * (batch - 1) / 2) std::abort();
  co_return std::vector<metric>{{p + ".per_task", ns_per(d, n), "ns"}};
}

// ---------------------------------------------------------------- 11. select

task<> produce(rt::mpsc::sender<uint64_t> tx, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    if (!co_await tx.send(i)) co_return;
  }
}

template <class... R>
task<uint64_t> select_until_all_closed(R*... rx) {
  uint64_t got = 0;
  for (;;) {
    auto r = co_await rt::select(rt::else_when_closed, rx->recv()...);
    if (r.index() == sizeof...(R)) break;
    ++got;
  }
  co_return got;
}

task<std::vector<metric>> select_bench(std::string p, uint64_t total, int branches) {
  std::vector<rt::mpsc::receiver<uint64_t>> rx;
  for (int i = 0; i < branches; ++i) {
    auto [t, r] = rt::mpsc::channel<uint64_t>(1024);
    rt::spawn(produce(std::move(t), total / static_cast<uint64_t>(branches))).detach();
    rx.push_back(std::move(r));
  }
  const auto t0 = clk::now();
  const uint64_t got = branches == 2
                           ? co_await select_until_all_closed(&rx[0], &rx[1])
                           : co_await select_until_all_closed(&rx[0], &rx[1], &rx[2], &rx[3],
                                                              &rx[4], &rx[5], &rx[6], &rx[7]);
  const auto d = clk::now() - t0;
  if (got != total) std::abort();
  co_return std::vector<metric>{{p + ".throughput", per_sec(got, d) / 1e6, "M msg/s"}};
}

// ---------------------------------------------------------------- 12. coop

task<> set_flag(std::atomic<bool>* f) {
  f->store(true, std::memory_order_release);
  co_return;
}

task<std::vector<metric>> coop_probe(std::string p, uint64_t n) {
  std::atomic<bool> ran{false};
  auto sibling = rt::spawn(set_flag(&ran));
  auto [tx, rx] = rt::mpsc::channel<uint64_t>(1);
  uint64_t before = 0;
  while (!ran.load(std::memory_order_acquire) && before < 10'000'000) {
    co_await tx.send(before);
    (void)co_await rx.recv();
    ++before;
  }
  (void)co_await sibling;
  const auto t0 = clk::now();
  for (uint64_t i = 0; i < n; ++i) {
    co_await tx.send(i);
    (void)co_await rx.recv();
  }
  const auto d = clk::now() - t0;
  co_return std::vector<metric>{
      {p + ".sibling_after", static_cast<double>(before), "iterations"},
      {p + ".loop_iteration", ns_per(d, n), "ns"},
  };
}

// ---------------------------------------------------------------- 8. timers

// Each task sleeps 1 ms from when it starts and records how late it woke.
task<> timer_task(clk::duration* lateness) {
  const rt::clock::time_point deadline = rt::now() + 1ms;
  co_await rt::sleep_until(deadline);
  *lateness = rt::now() - deadline;
}

double percentile_us(std::vector<clk::duration>& v, double q) {
  const std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(q * v.size()));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return std::chrono::duration<double, std::micro>(v[i]).count();
}

task<std::vector<metric>> timers_bench(std::string p, uint64_t n) {
  std::vector<clk::duration> lateness(n);
  std::vector<join_handle<void>> hs;
  hs.reserve(n);
  const auto t0 = clk::now();
  for (uint64_t i = 0; i < n; ++i) hs.push_back(rt::spawn(timer_task(&lateness[i])));
  for (auto& h : hs) (void)co_await h;
  const auto d = clk::now() - t0;
  co_return std::vector<metric>{
      {p + ".lateness_p50", percentile_us(lateness, 0.50), "us"},
      {p + ".lateness_p99", percentile_us(lateness, 0.99), "us"},
      {p + ".lateness_max", percentile_us(lateness, 1.0), "us"},
      {p + ".elapsed", std::chrono::duration<double, std::milli>(d).count(), "ms"},
  };
}

// ---------------------------------------------------------------- 7. mutex single vs sharded

constexpr uint64_t k_keys = 1 << 16;
constexpr int k_shards = 64;

uint64_t xorshift(uint64_t x) {
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return x;
}
int shard_of(uint64_t k) { return static_cast<int>((k * 0x9E3779B97F4A7C15ull) >> 58); }

// The same_hash cases use this hash on both sides (bench/tokio-cases' MixHasher), so that the
// comparison is of the runtimes and the tables, not of SipHash against abseil's hash.
struct mix_hash {
  std::size_t operator()(uint64_t k) const noexcept {
    const unsigned __int128 p = static_cast<unsigned __int128>(k) * 0x9E3779B97F4A7C15ull;
    return static_cast<uint64_t>(p) ^ static_cast<uint64_t>(p >> 64);
  }
};

template <class Hash>
struct shard {
  rt::plain_mutex mu;
  absl::flat_hash_map<uint64_t, uint64_t, Hash> map ABSL_GUARDED_BY(mu);
};

template <class Hash>
task<clk::duration> increment_task(std::vector<std::unique_ptr<shard<Hash>>>* shards, uint64_t t,
                                   uint64_t per, bool sharded) {
  const auto ts = clk::now();
  uint64_t x = 0x2545F4914F6CDD1Dull ^ ((t + 1) * 0x9E3779B97F4A7C15ull);
  for (uint64_t i = 0; i < per; ++i) {
    x = xorshift(x);
    const uint64_t k = x & (k_keys - 1);
    shard<Hash>& s = *(*shards)[sharded ? shard_of(k) : 0];
    rt::plain_lock lock(s.mu);
    ++s.map[k];
  }
  co_return clk::now() - ts;
}

template <class Hash = absl::Hash<uint64_t>>
task<std::vector<metric>> mutex_bench(std::string p, uint64_t per, bool sharded) {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const uint64_t tasks = 2 * cores;
  std::vector<std::unique_ptr<shard<Hash>>> shards;
  for (int i = 0; i < (sharded ? k_shards : 1); ++i) {
    shards.push_back(std::make_unique<shard<Hash>>());
  }
  for (uint64_t k = 0; k < k_keys; ++k) {
    shard<Hash>& s = *shards[sharded ? shard_of(k) : 0];
    rt::plain_lock lock(s.mu);
    s.map[k] = 0;
  }
  const auto t0 = clk::now();
  std::vector<join_handle<clk::duration>> hs;
  for (uint64_t t = 0; t < tasks; ++t)
    hs.push_back(rt::spawn(increment_task<Hash>(&shards, t, per, sharded)));
  clk::duration busy{};
  for (auto& h : hs) busy += *co_await h;
  const auto d = clk::now() - t0;
  uint64_t total = 0;
  for (auto& s : shards) {
    rt::plain_lock lock(s->mu);
    for (auto& [k, v] : s->map) total += v;
  }
  if (total != tasks * per) std::abort();
  co_return std::vector<metric>{
      {p + ".throughput", per_sec(tasks * per, d) / 1e6, "Mops/s"},
      {p + ".in_task_per_op", ns_per(busy, tasks * per), "ns/op"},
      {p + ".parallelism",
       std::chrono::duration<double>(busy).count() / std::chrono::duration<double>(d).count(), "x"},
  };
}

// ---------------------------------------------------------------- harness

// What a spin-wait does between tries (the Tokio side's std::hint::spin_loop() is the same
// `pause`).
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Core-to-core round trip between two plain threads: tells apart how the host placed the vCPUs.
double c2c_rtt_ns(uint64_t iters) {
  struct alignas(128) line {
    std::atomic<uint64_t> v{0};
  };
  const uint64_t warm = iters / 4, total = warm + iters;
  line l;
  std::thread peer([&] {
    for (uint64_t i = 0; i < total; ++i) {
      while (l.v.load(std::memory_order_acquire) != 2 * i + 1) cpu_relax();
      l.v.store(2 * i + 2, std::memory_order_release);
    }
  });
  auto t0 = clk::now();
  for (uint64_t i = 0; i < total; ++i) {
    if (i == warm) t0 = clk::now();
    l.v.store(2 * i + 1, std::memory_order_release);
    while (l.v.load(std::memory_order_acquire) != 2 * i + 2) cpu_relax();
  }
  const auto d = clk::now() - t0;
  peer.join();
  return ns_per(d, iters);
}

std::vector<std::string> cases() {
  std::vector<std::pair<std::string, std::vector<std::string>>> table = {
      {"spawn_idle_1m", {"mt2", "ct"}},
      {"spawn_join", {"mt2", "ct", "mt2_blockon"}},
      {"mpsc_bounded_1p1c", {"mt2", "ct"}},
      {"mpsc_bounded_4p1c", {"mt2", "ct"}},
      {"oneshot_pingpong", {"mt2", "ct"}},
      {"broadcast_fanout", {"mt2", "ct"}},
      {"broadcast_fanout_paced256", {"mt2", "ct"}},
      {"watch_publish", {"mt2", "ct"}},
      {"watch_publish_paced", {"mt2", "ct"}},
      {"mutex_single", {"mt2", "ct"}},
      {"mutex_sharded64", {"mt2", "ct"}},
      {"timers_100k", {"mt2", "ct"}},
      {"spawn_blocking_rtt", {"mt2", "ct"}},
      {"join_set", {"mt2", "ct"}},
      {"select2", {"mt2", "ct"}},
      {"select8", {"mt2", "ct"}},
      {"coop_probe", {"mt2", "ct"}},
      {"mutex_single_same_hash", {"mt2", "ct"}},
      {"mutex_sharded64_same_hash", {"mt2", "ct"}},
  };
  std::vector<std::string> out;
  for (auto& [b, rts] : table) {
    for (auto& r : rts) out.push_back(b + "/" + r);
  }
  return out;
}

std::vector<metric> run_bench(const std::string& b, rt_kind k, const std::string& p) {
  if (b == "spawn_idle_1m") return run_on(k, [&] { return spawn_idle(p, 1'000'000); });
  if (b == "spawn_join") {
    if (k == rt_kind::mt2_blockon) return spawn_join_blockon(p, 1'000'000, 1000);
    return run_on(k, [&] { return spawn_join(p, 1'000'000, 1000); });
  }
  if (b == "mpsc_bounded_1p1c") return run_on(k, [&] { return mpsc_bench(p, 10'000'000, 1); });
  if (b == "mpsc_bounded_4p1c") return run_on(k, [&] { return mpsc_bench(p, 10'000'000, 4); });
  if (b == "oneshot_pingpong") return run_on(k, [&] { return pingpong(p, 1'000'000); });
  if (b == "broadcast_fanout")
    return run_on(k, [&] { return broadcast_bench(p, 1'000'000, 16, 1024, 0); });
  if (b == "broadcast_fanout_paced256") {
    return run_on(k, [&] { return broadcast_bench(p, 1'000'000, 16, 1024, 256); });
  }
  if (b == "watch_publish") return run_on(k, [&] { return watch_bench(p, 1'000'000, 16, false); });
  if (b == "watch_publish_paced")
    return run_on(k, [&] { return watch_bench(p, 1'000'000, 16, true); });
  if (b == "mutex_single") return run_on(k, [&] { return mutex_bench(p, 1'000'000, false); });
  if (b == "mutex_sharded64") return run_on(k, [&] { return mutex_bench(p, 1'000'000, true); });
  if (b == "timers_100k") return run_on(k, [&] { return timers_bench(p, 100'000); });
  if (b == "spawn_blocking_rtt") return run_on(k, [&] { return blocking_round_trip(p, 100'000); });
  if (b == "join_set") return run_on(k, [&] { return join_set_bench(p, 1'000'000, 1'000); });
  if (b == "select2") return run_on(k, [&] { return select_bench(p, 1'000'000, 2); });
  if (b == "select8") return run_on(k, [&] { return select_bench(p, 1'000'000, 8); });
  if (b == "coop_probe") return run_on(k, [&] { return coop_probe(p, 10'000'000); });
  if (b == "mutex_single_same_hash") {
    return run_on(k, [&] { return mutex_bench<mix_hash>(p, 1'000'000, false); });
  }
  if (b == "mutex_sharded64_same_hash") {
    return run_on(k, [&] { return mutex_bench<mix_hash>(p, 1'000'000, true); });
  }
  std::fprintf(stderr, "unknown bench %s\n", b.c_str());
  std::exit(2);
}

std::vector<metric> run_case(const std::string& c) {
  const auto slash = c.find('/');
  const std::string b = c.substr(0, slash), r = c.substr(slash + 1);
  const rt_kind k = r == "ct" ? rt_kind::ct : r == "mt2" ? rt_kind::mt2 : rt_kind::mt2_blockon;
  const std::string p = b + "/" + r;
  const bool mt = k != rt_kind::ct;
  const double before = mt ? c2c_rtt_ns(20'000) : 0;
  auto out = run_bench(b, k, p);
  if (mt) {
    out.push_back({p + ".c2c_rtt_before", before, "ns"});
    out.push_back({p + ".c2c_rtt_after", c2c_rtt_ns(20'000), "ns"});
  }
  return out;
}

std::string fmt(double v) {
  char buf[64];
  if (v == 0) return "0";
  if (std::abs(v) >= 100) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else if (std::abs(v) >= 10) {
    std::snprintf(buf, sizeof buf, "%.1f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f", v);
  }
  return buf;
}

int run_all(const char* self, int reps, const std::string& filter, const std::string& md) {
  std::vector<std::string> names;
  std::map<std::string, std::pair<std::string, std::vector<double>>> vals;
  for (int round = 0; round < reps; ++round) {
    for (const auto& c : cases()) {
      if (!filter.empty() && c.find(filter) == std::string::npos) continue;
      const std::string cmd = std::string(self) + " one " + c;
      FILE* f = popen(cmd.c_str(), "r");
      if (!f) return 1;
      char line[512];
      while (std::fgets(line, sizeof line, f)) {
        std::string s(line);
        if (!s.empty() && s.back() == '\n') s.pop_back();
        std::fprintf(stderr, "[round %d] %s\n", round + 1, s.c_str());
        const auto colon = s.find(": ");
        const auto space = s.find(' ', colon + 2);
        const std::string name = s.substr(0, colon);
        if (!vals.count(name)) names.push_back(name);
        auto& e = vals[name];
        e.first = s.substr(space + 1);
        e.second.push_back(std::stod(s.substr(colon + 2, space - colon - 2)));
      }
      if (int st = pclose(f); st != 0) {
        std::fprintf(stderr, "case %s failed\n", c.c_str());
        return 1;
      }
    }
  }
  std::ostringstream table;
  table << "| metric | median | min | max | unit |\n|---|---:|---:|---:|---|\n";
  for (const auto& n : names) {
    auto v = vals[n].second;
    std::sort(v.begin(), v.end());
    const double med = v[v.size() / 2];
    std::printf("%s: %s %s\n", n.c_str(), fmt(med).c_str(), vals[n].first.c_str());
    table << "| " << n << " | " << fmt(med) << " | " << fmt(v.front()) << " | " << fmt(v.back())
          << " | " << vals[n].first << " |\n";
  }
  if (!md.empty()) std::ofstream(md) << table.str();
  return 0;
}

}  // namespace
}  // namespace shoal::bench

int main(int argc, char** argv) {
  using namespace shoal::bench;
  const std::string cmd = argc > 1 ? argv[1] : "all";
  if (cmd == "list") {
    for (const auto& c : cases()) std::printf("%s\n", c.c_str());
    return 0;
  }
  if (cmd == "one" && argc > 2) {
    for (const auto& m : run_case(argv[2])) {
      std::printf("%s: %.6g %s\n", m.name.c_str(), m.value, m.unit.c_str());
    }
    return 0;
  }
  if (cmd == "all") {
    int reps = 3;
    std::string filter, md;
    for (int i = 2; i + 1 < argc; i += 2) {
      const std::string a = argv[i];
      if (a == "--reps") reps = std::atoi(argv[i + 1]);
      if (a == "--filter") filter = argv[i + 1];
      if (a == "--md") md = argv[i + 1];
    }
    return run_all(argv[0], reps, filter, md);
  }
  std::fprintf(stderr, "usage: %s list | one <case> | all [--reps N] [--filter S] [--md FILE]\n",
               argv[0]);
  return 2;
}
