// Multi-thread stress: many producers and consumers, random cancellation, shutdown while busy.
// Every test checks exact counts and orders; under TSan and ASan they also check for races,
// leaked permits, waiters and memory.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <random>
#include <vector>

#include "runtime/runtime.h"
#include "runtime/sync/broadcast.h"
#include "runtime/sync/mpsc.h"
#include "runtime/sync/notify.h"
#include "runtime/sync/oneshot.h"
#include "runtime/sync/semaphore.h"
#include "runtime/sync/watch.h"
#include "runtime/time/sleep.h"
#include "tests/runtime/flavor_test.h"

namespace shoal::rt {
namespace {

using namespace std::chrono_literals;

runtime_options four_workers() {
  runtime_options o;
  o.kind = flavor::multi_thread;
  o.workers = 4;  // more workers than cores: preemption in the middle of everything
  return o;
}

// ------------------------------------------------------------------ mpsc with cancelled senders

struct producer_log {
  std::atomic<uint64_t> acked{0};  // sends that returned true
};

task<> produce(mpsc::sender<uint64_t> tx, uint64_t id, uint64_t n, producer_log* log) {
  for (uint64_t i = 0; i < n; ++i) {
    if (!co_await tx.send(id << 32 | i)) co_return;
    log->acked.store(i + 1, std::memory_order_release);
    if (i % 7 == 0) co_await yield_now();
  }
}

task<bool> mpsc_with_random_cancellation(int producers, uint64_t per, uint32_t seed) {
  auto [tx, rx] = mpsc::channel<uint64_t>(8);
  std::vector<producer_log> logs(producers);
  std::vector<join_handle<void>> hs;
  for (int p = 0; p < producers; ++p) hs.push_back(spawn(produce(tx, p, per, &logs[p])));
  { auto drop = std::move(tx); }
  // Cancel a third of the producers at random points while the consumer drains.
  auto canceller = spawn([](std::vector<join_handle<void>>* hs, uint32_t seed) -> task<> {
    std::mt19937 rng(seed);
    for (std::size_t i = 0; i < hs->size(); i += 3) {
      for (int y = rng() % 200; y > 0; --y) co_await yield_now();
      (*hs)[i].abort();
    }
  }(&hs, seed));
  std::vector<uint64_t> received(producers, 0);
  bool in_order = true;
  while (std::optional<uint64_t> v = co_await rx.recv()) {
    const uint64_t id = *v >> 32, seq = *v & 0xffffffff;
    in_order &= seq == received[id];  // each producer's messages arrive once, in order, no gap
    ++received[id];
  }
  (void)co_await canceller;
  bool counts_ok = true;
  for (int p = 0; p < producers; ++p) {
    auto r = co_await hs[p];
    const uint64_t acked = logs[p].acked.load(std::memory_order_acquire);
    if (r) {
      counts_ok &= received[p] == per && acked == per;
    } else {
      // Cancelled: every acknowledged send arrived; at most one more (sent, then cancelled
      // before it could record the acknowledgement).
      counts_ok &= received[p] >= acked && received[p] <= acked + 1;
    }
  }
  co_return in_order&& counts_ok;
}

TEST(stress, mpsc_delivers_every_acknowledged_message_once_in_order_despite_cancellation) {
  runtime rt(four_workers());
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    EXPECT_TRUE(rt.block_on(mpsc_with_random_cancellation(12, 5000, seed))) << "seed " << seed;
  }
}

// ------------------------------------------------------------------ semaphore under cancellation

struct semaphore_stats {
  std::atomic<int> holding{0};
  std::atomic<int> max_holding{0};
  std::atomic<uint64_t> acquired{0};
};

// Counts a holder for as long as it lives, including when its task is cancelled mid-hold.
struct holding_guard {
  semaphore_stats* st;
  explicit holding_guard(semaphore_stats* s) : st(s) {
    int now = st->holding.fetch_add(1) + 1;
    int prev = st->max_holding.load();
    while (now > prev && !st->max_holding.compare_exchange_weak(prev, now)) {
    }
  }
  ~holding_guard() { st->holding.fetch_sub(1); }
};

task<> hold_briefly(semaphore* s, semaphore_stats* st, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    auto p = co_await s->acquire(1 + i % 2);
    if (!p) co_return;
    holding_guard holding(st);  // declared after the permit: dropped before it
    st->acquired.fetch_add(1);
    co_await yield_now();
  }
}

task<bool> semaphore_with_random_cancellation(uint32_t seed) {
  constexpr int permits = 5;
  semaphore s(permits);
  semaphore_stats st;
  std::vector<join_handle<void>> hs;
  for (int i = 0; i < 40; ++i) hs.push_back(spawn(hold_briefly(&s, &st, 200)));
  std::mt19937 rng(seed);
  for (auto& h : hs) {
    if (rng() % 3 == 0) {
      for (int y = rng() % 50; y > 0; --y) co_await yield_now();
      h.abort();
    }
  }
  for (auto& h : hs) (void)co_await h;
  // Holders of 2 permits count once: at most `permits` holders at any instant, and every permit
  // is back, whatever was cancelled while waiting, after a grant, or while holding.
  co_return st.max_holding.load() <= permits&& s.available_permits() == permits&& s.waiters() ==
          0 &&
      st.acquired.load() > 0;
}

TEST(stress, semaphore_never_over_admits_and_gets_every_permit_back_despite_cancellation) {
  runtime rt(four_workers());
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    EXPECT_TRUE(rt.block_on(semaphore_with_random_cancellation(seed))) << "seed " << seed;
  }
}

// ------------------------------------------------------------------ broadcast ordering

task<bool> ordered_receiver(broadcast::receiver<uint64_t> rx, uint64_t n) {
  uint64_t expect = 0, got = 0, skipped = 0;
  for (;;) {
    auto r = co_await rx.recv();
    if (!r) {
      if (r.error().kind == broadcast::recv_error::closed) break;
      skipped += r.error().skipped;
      expect += r.error().skipped;
      continue;
    }
    if (*r != expect) co_return false;  // strictly in order, lags accounted exactly
    ++expect;
    ++got;
  }
  co_return got + skipped == n;
}

task<bool> broadcast_many_receivers(uint64_t n) {
  auto [tx, rx] = broadcast::channel<uint64_t>(64);
  std::vector<join_handle<bool>> rs;
  rs.push_back(spawn(ordered_receiver(std::move(rx), n)));
  for (int i = 0; i < 15; ++i) rs.push_back(spawn(ordered_receiver(tx.subscribe(), n)));
  for (uint64_t i = 0; i < n; ++i) {
    tx.send(i);
    if (i % 32 == 0) co_await yield_now();
  }
  { auto drop = std::move(tx); }
  bool ok = true;
  for (auto& r : rs) ok &= (co_await r).value();
  co_return ok;
}

TEST(stress, broadcast_receivers_see_a_strictly_ordered_stream_with_exact_lag_counts) {
  runtime rt(four_workers());
  EXPECT_TRUE(rt.block_on(broadcast_many_receivers(200'000)));
}

// ------------------------------------------------------------------ oneshot request/reply churn

task<> reply_server(mpsc::receiver<oneshot::sender<uint64_t>> rx) {
  uint64_t n = 0;
  while (auto reply = co_await rx.recv()) reply->send(n++);
}

task<uint64_t> requester(mpsc::sender<oneshot::sender<uint64_t>> tx, int n) {
  uint64_t got = 0;
  for (int i = 0; i < n; ++i) {
    auto [rtx, rrx] = oneshot::channel<uint64_t>();
    if (!co_await tx.send(std::move(rtx))) break;
    if (co_await std::move(rrx)) ++got;
  }
  co_return got;
}

task<bool> oneshot_churn_with_cancellation() {
  auto [tx, rx] = mpsc::channel<oneshot::sender<uint64_t>>(16);
  auto server = spawn(reply_server(std::move(rx)));
  std::vector<join_handle<uint64_t>> hs;
  for (int i = 0; i < 16; ++i) hs.push_back(spawn(requester(tx, 2000)));
  { auto drop = std::move(tx); }
  for (std::size_t i = 0; i < hs.size(); i += 4) {
    for (int y = 0; y < 100; ++y) co_await yield_now();
    hs[i].abort();
  }
  uint64_t completed = 0;
  for (auto& h : hs) {
    auto r = co_await h;
    if (r) completed += *r;
  }
  (void)co_await server;
  co_return completed >= 12 * 2000;
}

TEST(stress, oneshot_replies_survive_cancelled_requesters_without_leaks) {
  runtime rt(four_workers());
  EXPECT_TRUE(rt.block_on(oneshot_churn_with_cancellation()));
}

// ------------------------------------------------------------------ shutdown while busy

task<> spin_forever() {
  for (;;) co_await yield_now();
}
task<> recv_forever(mpsc::receiver<int> rx) { (void)co_await rx.recv(); }
task<> sleep_forever() { co_await sleep(24h); }
task<> acquire_forever(semaphore* s) { auto p = co_await s->acquire(); }
task<> notified_forever(notify* n) { co_await n->notified(); }
task<> watch_forever(watch::receiver<int> rx) {
  for (;;) {
    bool changed = co_await rx.changed();
    if (!changed) break;
  }
}
task<> join_forever(join_handle<void> h) { (void)co_await std::move(h); }

TEST(stress, shutdown_while_busy_cancels_every_kind_of_wait_and_reports_it) {
  semaphore never(0);
  notify quiet;
  std::vector<join_handle<void>> hs;
  {
    runtime rt(four_workers());
    auto [tx, rx] = mpsc::channel<int>(1);
    auto [wtx, wrx] = watch::channel<int>(0);
    for (int i = 0; i < 50; ++i) {
      hs.push_back(rt.spawn(spin_forever()));
      hs.push_back(rt.spawn(sleep_forever()));
      hs.push_back(rt.spawn(acquire_forever(&never)));
      hs.push_back(rt.spawn(notified_forever(&quiet)));
      hs.push_back(rt.spawn(watch_forever(wrx)));
      hs.push_back(rt.spawn(join_forever(rt.spawn(sleep_forever()))));
    }
    hs.push_back(rt.spawn(recv_forever(std::move(rx))));
    std::this_thread::sleep_for(20ms);
    rt.shutdown();
    for (auto& h : hs) EXPECT_TRUE(h.is_finished());
  }
  EXPECT_EQ(never.waiters(), 0u);
  EXPECT_EQ(quiet.waiters(), 0u);
}

}  // namespace
}  // namespace shoal::rt
