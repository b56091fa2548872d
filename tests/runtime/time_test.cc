// sleep, interval and the pausable clock.
#include "runtime/time/sleep.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "tests/runtime/flavor_test.h"

namespace shoal::rt {
namespace {

using namespace std::chrono_literals;
using testing::paused_flavor_test;
class time_test : public paused_flavor_test {};
SHOAL_ALL_FLAVORS(time_test);

task<clock::duration> sleep_an_hour() {
  auto start = now();
  co_await sleep(1h);
  co_return now() - start;
}

TEST_P(time_test, a_paused_clock_auto_advances_to_the_next_timer_when_idle) {
  auto real_start = std::chrono::steady_clock::now();
  EXPECT_EQ(rt_.block_on(sleep_an_hour()), 1h);
  EXPECT_LT(std::chrono::steady_clock::now() - real_start, 10s);
}

task<std::vector<int>> sleepers_wake_in_deadline_order() {
  std::vector<int> order;
  plain_mutex mu;
  auto sleeper = [](clock::duration d, int id, std::vector<int>* out, plain_mutex* mu) -> task<> {
    co_await sleep(d);
    plain_lock lock(*mu);
    out->push_back(id);
  };
  auto a = spawn(sleeper(30ms, 3, &order, &mu));
  auto b = spawn(sleeper(10ms, 1, &order, &mu));
  auto c = spawn(sleeper(20ms, 2, &order, &mu));
  (void)co_await a;
  (void)co_await b;
  (void)co_await c;
  co_return order;
}

TEST_P(time_test, sleepers_wake_in_deadline_order) {
  EXPECT_EQ(rt_.block_on(sleepers_wake_in_deadline_order()), (std::vector<int>{1, 2, 3}));
}

task<std::vector<long>> interval_ticks(missed_tick_behavior b) {
  interval iv(10ms, b);
  auto start = now();
  std::vector<long> at;
  for (int i = 0; i < 3; ++i) {
    auto t = co_await iv.tick();
    at.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(t - start).count());
  }
  co_await sleep(35ms);  // miss some ticks (now = 55ms; ticks were due at 30, 40, 50)
  for (int i = 0; i < 3; ++i) {
    auto t = co_await iv.tick();
    at.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(t - start).count());
  }
  co_return at;
}

TEST_P(time_test, interval_first_tick_is_immediate_and_missed_ticks_follow_the_behavior) {
  EXPECT_EQ(rt_.block_on(interval_ticks(missed_tick_behavior::burst)),
            (std::vector<long>{0, 10, 20, 30, 40, 50}));
  EXPECT_EQ(rt_.block_on(interval_ticks(missed_tick_behavior::delay)),
            (std::vector<long>{0, 10, 20, 30, 65, 75}));
  EXPECT_EQ(rt_.block_on(interval_ticks(missed_tick_behavior::skip)),
            (std::vector<long>{0, 10, 20, 30, 60, 70}));
}

TEST(time_manual, advance_fires_exactly_the_timers_that_became_due) {
  runtime_options o = testing::options_for(flavor::current_thread, /*paused=*/true);
  o.auto_advance = false;
  runtime rt(o);
  auto h = rt.spawn(sleep_an_hour());
  while (rt.core().timers().size() == 0) std::this_thread::yield();
  rt.advance(59min);
  EXPECT_FALSE(h.is_finished());
  rt.advance(1min);
  while (!h.is_finished()) std::this_thread::yield();
}

TEST(time_manual, a_cancelled_sleep_removes_its_timer) {
  runtime_options o = testing::options_for(flavor::multi_thread, /*paused=*/true);
  o.auto_advance = false;
  runtime rt(o);
  auto h = rt.spawn(sleep_an_hour());
  while (rt.core().timers().size() == 0) std::this_thread::yield();
  h.abort();
  while (!h.is_finished()) std::this_thread::yield();
  EXPECT_EQ(rt.core().timers().size(), 0u);
}

TEST(time_real, sleep_on_the_real_clock_waits_at_least_the_duration) {
  runtime rt(testing::options_for(flavor::multi_thread));
  auto start = std::chrono::steady_clock::now();
  rt.block_on([]() -> task<> { co_await sleep(20ms); }());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms);
}

// Multi-thread: a timer set on a worker that then stays busy fires on time on the other, parked
// worker. The sleeper spawns a task that spins (never awaiting) on its own worker until the
// sleeper has woken; the other worker parked before the timer existed, so it must learn of the
// new, earlier deadline. Ten rounds, since the other worker is not always parked yet in the first.
task<> spin_until(std::atomic<bool>* woke, std::atomic<bool>* woke_while_spinning) {
  const auto give_up = std::chrono::steady_clock::now() + 1s;
  while (!woke->load(std::memory_order_acquire) && std::chrono::steady_clock::now() < give_up) {
  }
  woke_while_spinning->store(woke->load(std::memory_order_acquire));
  co_return;
}

task<int> sleep_beside_a_busy_task(int rounds) {
  int late = 0;
  for (int i = 0; i < rounds; ++i) {
    std::atomic<bool> woke{false}, woke_while_spinning{false};
    auto busy = spawn(spin_until(&woke, &woke_while_spinning));  // this worker's LIFO slot
    co_await sleep(2ms);
    woke.store(true, std::memory_order_release);
    (void)co_await busy;
    if (!woke_while_spinning.load()) ++late;
  }
  co_return late;
}

TEST(time_real, a_timer_fires_on_an_idle_worker_while_its_own_worker_is_busy) {
  runtime rt(testing::options_for(flavor::multi_thread));
  EXPECT_EQ(rt.block_on(sleep_beside_a_busy_task(10)), 0);
}

}  // namespace
}  // namespace shoal::rt
