// join_set and abort_handle.
#include "runtime/join_set.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

#include "runtime/sync/notify.h"
#include "runtime/sync/select.h"
#include "runtime/time/sleep.h"
#include "tests/runtime/flavor_test.h"

namespace shoal::rt {
namespace {

using namespace std::chrono_literals;
using testing::paused_flavor_test;
class join_set_test : public paused_flavor_test {};
SHOAL_ALL_FLAVORS(join_set_test);

task<int> after(clock::duration d, int v) {
  co_await sleep(d);
  co_return v;
}

task<std::vector<int>> results_in_finishing_order() {
  join_set<int> set;
  set.spawn(after(30ms, 3));
  set.spawn(after(10ms, 1));
  set.spawn(after(20ms, 2));
  std::vector<int> got;
  for (;;) {
    auto r = co_await set.join_next();
    if (!r) break;
    got.push_back(**r);
  }
  EXPECT_TRUE(set.empty());
  co_return got;
}

TEST_P(join_set_test, join_next_yields_results_as_tasks_finish_then_nothing) {
  EXPECT_EQ(rt_.block_on(results_in_finishing_order()), (std::vector<int>{1, 2, 3}));
}

// Counts its destruction once it has started (a task cancelled before its first run has no
// locals to destroy).
task<> note_destroyed(notify* never, std::atomic<int>* destroyed, std::atomic<int>* started) {
  struct on_exit {
    std::atomic<int>* n;
    ~on_exit() { n->fetch_add(1); }
  } guard{destroyed};
  started->fetch_add(1);
  co_await never->notified();
}

task<int> dropping_the_set_aborts_its_tasks(std::atomic<int>* destroyed, notify* never) {
  {
    std::atomic<int> started{0};
    join_set<void> set;
    for (int i = 0; i < 5; ++i) set.spawn(note_destroyed(never, destroyed, &started));
    while (started.load() < 5) co_await yield_now();
  }
  // The set is gone: its tasks were cancelled; wait for the cancellations to run.
  while (destroyed->load() < 5) co_await yield_now();
  co_return destroyed->load();
}

TEST_P(join_set_test, dropping_the_set_cancels_every_task_in_it) {
  std::atomic<int> destroyed{0};
  notify never;
  EXPECT_EQ(rt_.block_on(dropping_the_set_aborts_its_tasks(&destroyed, &never)), 5);
}

task<std::pair<int, int>> abort_all_reports_each_as_cancelled() {
  notify never;
  std::atomic<int> destroyed{0}, started{0};
  join_set<void> set;
  for (int i = 0; i < 4; ++i) set.spawn(note_destroyed(&never, &destroyed, &started));
  set.spawn([]() -> task<> { co_return; }());
  while (started.load() < 4) co_await yield_now();
  set.abort_all();
  int cancelled = 0, ok = 0;
  for (;;) {
    auto r = co_await set.join_next();
    if (!r) break;
    if (*r) {
      ++ok;
    } else if (r->error().is_cancelled()) {
      ++cancelled;
    }
  }
  co_return std::pair(cancelled + ok, destroyed.load());
}

TEST_P(join_set_test, abort_all_cancels_and_each_task_still_comes_out) {
  auto [out, destroyed] = rt_.block_on(abort_all_reports_each_as_cancelled());
  EXPECT_EQ(out, 5);
  EXPECT_EQ(destroyed, 4);
}

task<bool> a_cancelled_join_next_takes_no_result() {
  join_set<int> set;
  set.spawn(after(50ms, 9));
  auto r = co_await select(biased, set.join_next(), sleep(10ms));  // the timer wins
  const bool timer_won = r.index() == 1 && set.size() == 1;
  auto next = co_await set.join_next();  // the result is still there
  co_return timer_won&& next&&** next == 9 && set.empty();
}

TEST_P(join_set_test, a_join_next_that_loses_a_select_takes_no_result) {
  EXPECT_TRUE(rt_.block_on(a_cancelled_join_next_takes_no_result()));
}

task<bool> abort_handle_cancels_and_reports() {
  notify never;
  std::atomic<int> destroyed{0}, started{0};
  auto h = spawn(note_destroyed(&never, &destroyed, &started));
  while (started.load() < 1) co_await yield_now();
  abort_handle stop = h.abort_handle();
  abort_handle copy = stop;
  EXPECT_FALSE(copy.is_finished());
  copy.abort();
  auto r = co_await std::move(h);
  co_return !r && r.error().is_cancelled() && stop.is_finished() && destroyed.load() == 1;
}

TEST_P(join_set_test, an_abort_handle_cancels_the_task_and_sees_it_finish) {
  EXPECT_TRUE(rt_.block_on(abort_handle_cancels_and_reports()));
}

// Many short tasks on two workers finishing while join_next parks and wakes (TSan: the lists).
TEST(join_set_threads, a_thousand_tasks_each_come_out_once) {
  runtime rt(testing::options_for(flavor::multi_thread));
  auto sum = rt.block_on([]() -> task<long> {
    join_set<int> set;
    for (int i = 0; i < 1000; ++i) {
      set.spawn([](int v) -> task<int> {
        co_await yield_now();
        co_return v;
      }(i));
    }
    long total = 0;
    for (;;) {
      auto r = co_await set.join_next();
      if (!r) break;
      total += **r;
    }
    co_return total;
  }());
  EXPECT_EQ(sum, 999L * 1000 / 2);
}

}  // namespace
}  // namespace shoal::rt
