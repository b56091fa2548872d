// The cooperative budget: a task whose awaits all complete at once still lets its neighbours run.
//
// Each probe spawns a sibling that only sets a flag, then loops on one primitive whose awaits never
// need to suspend. Without a budget the loop would keep the worker forever (the sibling waits in
// that worker's LIFO slot or run queue); with one, the loop yields after a bounded number of
// awaits and the sibling runs.
#include "runtime/internal/coop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include "runtime/sync/broadcast.h"
#include "runtime/sync/mpsc.h"
#include "runtime/sync/mutex.h"
#include "runtime/sync/notify.h"
#include "runtime/sync/oneshot.h"
#include "runtime/sync/semaphore.h"
#include "runtime/sync/watch.h"
#include "runtime/time/sleep.h"
#include "tests/runtime/flavor_test.h"

namespace shoal::rt {
namespace {

using testing::flavor_test;
class coop_test : public flavor_test {};
SHOAL_ALL_FLAVORS(coop_test);

// Far beyond any budget: a runtime without one never lets the sibling in within this many.
constexpr uint64_t k_give_up = 10'000'000;
// The bar: Tokio (budget 128) lets the sibling in after 65 iterations of two awaits each.
constexpr uint64_t k_bar = 1'000;

task<> set_flag(std::atomic<bool>* flag) {
  flag->store(true, std::memory_order_release);
  co_return;
}

// Spawns a sibling that only sets a flag, then runs `step` (a coroutine lambda whose awaits all
// complete at once) until the sibling has run. Yields the iterations that took.
template <class Step>
task<uint64_t> iterations_until_a_sibling_runs(Step step) {
  std::atomic<bool> ran{false};
  auto sibling = spawn(set_flag(&ran));
  uint64_t iterations = 0;
  while (!ran.load(std::memory_order_acquire) && ++iterations < k_give_up) co_await step();
  (void)co_await sibling;
  co_return iterations;
}

task<uint64_t> mpsc_send_recv_loop() {
  // clang 14 cannot capture a structured binding; an init-capture may name one.
  auto ch = mpsc::channel<int>(1);
  auto& [tx, rx] = ch;
  co_return co_await iterations_until_a_sibling_runs([&tx = tx, &rx = rx]() -> task<> {
    co_await tx.send(1);
    (void)co_await rx.recv();
  });
}

TEST_P(coop_test, a_task_looping_on_its_own_mpsc_lets_a_sibling_run) {
  EXPECT_LT(rt_.block_on(mpsc_send_recv_loop()), k_bar);
}

task<uint64_t> semaphore_loop() {
  semaphore sem(1);
  co_return co_await iterations_until_a_sibling_runs([&]() -> task<> {
    auto permit = co_await sem.acquire();
    EXPECT_TRUE(permit.has_value());
  });
}

TEST_P(coop_test, a_task_looping_on_a_free_semaphore_lets_a_sibling_run) {
  EXPECT_LT(rt_.block_on(semaphore_loop()), k_bar);
}

task<uint64_t> mutex_loop() {
  mutex<int> m(0);
  co_return co_await iterations_until_a_sibling_runs([&]() -> task<> {
    auto g = co_await m.lock();
    ++*g;
  });
}

TEST_P(coop_test, a_task_looping_on_a_free_mutex_lets_a_sibling_run) {
  EXPECT_LT(rt_.block_on(mutex_loop()), k_bar);
}

task<uint64_t> notify_loop() {
  notify n;
  co_return co_await iterations_until_a_sibling_runs([&]() -> task<> {
    n.notify_one();  // stores the permit that the await takes at once
    co_await n.notified();
  });
}

TEST_P(coop_test, a_task_looping_on_a_notify_permit_lets_a_sibling_run) {
  EXPECT_LT(rt_.block_on(notify_loop()), k_bar);
}

task<uint64_t> oneshot_loop() {
  co_return co_await iterations_until_a_sibling_runs([]() -> task<> {
    auto [tx, rx] = oneshot::channel<int>();
    tx.send(1);
    (void)co_await std::move(rx);
  });
}

TEST_P(coop_test, a_task_looping_on_ready_oneshots_lets_a_sibling_run) {
  EXPECT_LT(rt_.block_on(oneshot_loop()), k_bar);
}

task<uint64_t> watch_loop() {
  auto ch = watch::channel<int>(0);
  auto& [tx, rx] = ch;
  int n = 0;
  co_return co_await iterations_until_a_sibling_runs([&tx = tx, &rx = rx, &n]() -> task<> {
    tx.send(++n);
    bool changed = co_await rx.changed();
    EXPECT_TRUE(changed);
  });
}

TEST_P(coop_test, a_task_looping_on_watch_changes_lets_a_sibling_run) {
  EXPECT_LT(rt_.block_on(watch_loop()), k_bar);
}

task<uint64_t> broadcast_loop() {
  auto ch = broadcast::channel<int>(4);
  auto& [tx, rx] = ch;
  co_return co_await iterations_until_a_sibling_runs([&tx = tx, &rx = rx]() -> task<> {
    tx.send(1);
    auto v = co_await rx.recv();
    EXPECT_TRUE(v.has_value());
  });
}

TEST_P(coop_test, a_task_looping_on_its_own_broadcast_lets_a_sibling_run) {
  EXPECT_LT(rt_.block_on(broadcast_loop()), k_bar);
}

task<uint64_t> elapsed_sleep_loop() {
  const clock::time_point past = now();
  co_return co_await iterations_until_a_sibling_runs(
      [&]() -> task<> { co_await sleep_until(past); });
}

TEST_P(coop_test, a_task_looping_on_elapsed_timers_lets_a_sibling_run) {
  EXPECT_LT(rt_.block_on(elapsed_sleep_loop()), k_bar);
}

task<> nothing() { co_return; }

task<uint64_t> finished_join_loop() {
  auto done = spawn(nothing());
  while (!done.is_finished()) co_await yield_now();
  co_return co_await iterations_until_a_sibling_runs([&]() -> task<> { (void)co_await done; });
}

TEST_P(coop_test, a_task_looping_on_a_finished_join_handle_lets_a_sibling_run) {
  EXPECT_LT(rt_.block_on(finished_join_loop()), k_bar);
}

// The budget is per resumption: a task that suspends for real starts the next run with a full one,
// so a loop of a few ready awaits between real suspensions never yields.
task<uint64_t> yields_counted() {
  auto [tx, rx] = mpsc::channel<int>(1);
  uint64_t forced = 0;
  for (int round = 0; round < 100; ++round) {
    co_await yield_now();  // a real suspension: the budget is refilled
    const uint32_t before = detail::coop::remaining();
    for (int i = 0; i < 50; ++i) {
      co_await tx.send(i);
      (void)co_await rx.recv();
    }
    if (detail::coop::remaining() > before) ++forced;  // refilled: the loop was made to yield
  }
  co_return forced;
}

TEST_P(coop_test, a_loop_within_the_budget_is_never_made_to_yield) {
  EXPECT_EQ(rt_.block_on(yields_counted()), 0u);
}

// Multi-thread only: a task in a busy worker's LIFO slot is taken by an idle worker. The busy task
// here never awaits at all (no budget can help it), so only stealing lets the sibling run.
task<bool> spin_until_stolen(std::atomic<bool>* spinning) {
  std::atomic<bool> ran{false};
  auto sibling = spawn(set_flag(&ran));  // lands in this worker's LIFO slot
  spinning->store(true, std::memory_order_release);
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!ran.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < give_up) {
  }
  const bool ran_while_spinning = ran.load(std::memory_order_acquire);
  (void)co_await sibling;
  co_return ran_while_spinning;
}

TEST(coop_lifo, an_idle_worker_takes_the_task_in_a_busy_workers_lifo_slot) {
  runtime rt(testing::options_for(flavor::multi_thread));
  std::atomic<bool> spinning{false};
  auto busy = rt.spawn(spin_until_stolen(&spinning));
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!spinning.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::yield();
  }
  ASSERT_TRUE(spinning.load());
  // Wake the idle worker from outside: once its own work is done it searches, and finds the
  // sibling.
  rt.block_on(nothing());
  EXPECT_TRUE(rt.block_on([](join_handle<bool> h) -> task<bool> {
    auto r = co_await std::move(h);
    co_return r.has_value() && *r;
  }(std::move(busy))));
}

}  // namespace
}  // namespace shoal::rt
