// select, join, join_all and timeout.
#include "runtime/sync/select.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/sync/broadcast.h"
#include "runtime/sync/mpsc.h"
#include "runtime/sync/notify.h"
#include "runtime/sync/semaphore.h"
#include "runtime/sync/watch.h"
#include "tests/runtime/flavor_test.h"

namespace shoal::rt {
namespace {

using namespace std::chrono_literals;
using testing::paused_flavor_test;
class select_test : public paused_flavor_test {};
SHOAL_ALL_FLAVORS(select_test);

struct destroyed_flag {
  std::atomic<bool>* flag;
  ~destroyed_flag() { flag->store(true); }
};

task<int> wait_forever(notify* n, std::atomic<bool>* destroyed) {
  destroyed_flag guard{destroyed};
  co_await n->notified();
  co_return -1;
}

task<std::string> after(clock::duration d, std::string v) {
  co_await sleep(d);
  co_return v;
}

task<bool> first_wins_rest_cancelled() {
  notify never;
  std::atomic<bool> loser_destroyed{false};
  auto r = co_await select(wait_forever(&never, &loser_destroyed), after(10ms, "fast"));
  // select returns only after the loser is gone
  co_return r.index() == 1 && std::get<1>(r) == "fast" && loser_destroyed.load();
}

TEST_P(select_test, first_to_finish_wins_and_the_others_are_cancelled_before_it_returns) {
  EXPECT_TRUE(rt_.block_on(first_wins_rest_cancelled()));
}

task<int> thrower() {
  co_await yield_now();
  throw std::runtime_error("branch failed");
}

task<> select_thrower_and_slow() { (void)co_await select(thrower(), after(1h, "slow")); }

TEST_P(select_test, an_exception_in_the_winning_branch_is_rethrown) {
  EXPECT_THROW(rt_.block_on(select_thrower_and_slow()), std::runtime_error);
}

task<std::string> join_two() {
  auto [a, b] = co_await join(after(20ms, "a"), after(10ms, "b"));
  co_return a + b;
}

TEST_P(select_test, join_yields_every_value_in_argument_order) {
  EXPECT_EQ(rt_.block_on(join_two()), "ab");
}

task<std::vector<std::string>> join_all_three() {
  std::vector<task<std::string>> ts;
  ts.push_back(after(30ms, "x"));
  ts.push_back(after(10ms, "y"));
  ts.push_back(after(20ms, "z"));
  co_return co_await join_all(std::move(ts));
}

TEST_P(select_test, join_all_yields_values_in_order) {
  EXPECT_EQ(rt_.block_on(join_all_three()), (std::vector<std::string>{"x", "y", "z"}));
}

task<bool> timeout_expires() {
  auto start = now();
  absl::StatusOr<std::string> r = co_await timeout(50ms, after(1h, "late"));
  bool elapsed_ok = now() - start == 50ms;  // paused clock: exact
  co_return r.status().code() ==
      absl::StatusCode::kDeadlineExceeded&& elapsed_ok&& r.status().message() ==
      "timed out after 50 ms";
}

TEST_P(select_test, timeout_fails_with_deadline_exceeded_when_the_task_is_too_slow) {
  EXPECT_TRUE(rt_.block_on(timeout_expires()));
}

TEST_P(select_test, timeout_yields_the_value_when_the_task_finishes_in_time) {
  auto r = rt_.block_on(timeout(1s, after(10ms, "on time")));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "on time");
}

// ------------------------------------------------------------------ branches polled in place

task<bool> a_losing_receive_takes_no_message() {
  auto [tx_a, rx_a] = mpsc::channel<int>(4);
  auto [tx_b, rx_b] = mpsc::channel<int>(4);
  co_await tx_a.send(1);
  co_await tx_b.send(2);
  auto r = co_await select(biased, rx_a.recv(), rx_b.recv());
  // The first branch won; the second never took its message.
  auto left = co_await rx_b.recv();
  co_return r.index() == 0 && std::get<0>(r) == 1 && left == 2;
}

TEST_P(select_test, a_losing_receive_takes_no_message) {
  EXPECT_TRUE(rt_.block_on(a_losing_receive_takes_no_message()));
}

task<> send_after_yields(mpsc::sender<int> tx, int v) {
  for (int i = 0; i < 3; ++i) co_await yield_now();
  co_await tx.send(v);
}

task<bool> a_parked_select_wakes_for_the_branch_that_fires() {
  auto [tx, rx] = mpsc::channel<int>(4);
  notify never;
  auto sender = spawn(send_after_yields(std::move(tx), 7));
  auto r = co_await select(never.notified(), rx.recv(), sleep(1h));
  (void)co_await sender;
  co_return r.index() == 1 && std::get<1>(r) == 7 && never.waiters() == 0;
}

TEST_P(select_test, a_parked_select_wakes_for_the_branch_that_fires) {
  EXPECT_TRUE(rt_.block_on(a_parked_select_wakes_for_the_branch_that_fires()));
}

task<> release_then_notify(semaphore* sem, notify* n) {
  sem->release(1);  // grants the permit to the parked select's second branch
  n->notify_one();  // and wakes its first
  co_return;
}

task<bool> a_permit_granted_to_a_losing_branch_goes_back() {
  semaphore sem(0);
  notify n;
  // Both branches fire before the select runs again (the helper does both in one go); biased, so
  // the notification wins and the granted permit must return to the semaphore.
  auto helper = spawn([](semaphore* s, notify* nn) -> task<> {
    while (s->waiters() == 0) co_await yield_now();
    co_await release_then_notify(s, nn);
  }(&sem, &n));
  auto r = co_await select(biased, n.notified(), sem.acquire());
  (void)co_await helper;
  co_return r.index() == 0 && sem.available_permits() == 1 && sem.waiters() == 0;
}

// One worker, so that nothing runs the select between the helper's two wake-ups.
TEST(select_one_worker, a_permit_granted_to_a_losing_branch_goes_back_to_the_semaphore) {
  runtime rt(testing::options_for(flavor::current_thread));
  EXPECT_TRUE(rt.block_on(a_permit_granted_to_a_losing_branch_goes_back()));
}

task<std::vector<int>> drain_until_all_closed() {
  auto [tx_a, rx_a] = mpsc::channel<int>(8);
  auto [tx_b, rx_b] = mpsc::channel<int>(8);
  co_await tx_a.send(1);
  co_await tx_b.send(10);
  co_await tx_a.send(2);
  { auto drop = std::move(tx_a); }
  auto closer = spawn([](mpsc::sender<int> tx) -> task<> {
    co_await yield_now();
    co_await tx.send(20);
  }(std::move(tx_b)));
  std::vector<int> got;
  for (;;) {
    auto r = co_await select(else_when_closed, rx_a.recv(), rx_b.recv());
    if (r.index() == 2) break;  // every sender is gone and every message taken
    got.push_back(r.index() == 0 ? *std::get<0>(r) : *std::get<1>(r));
  }
  (void)co_await closer;
  std::sort(got.begin(), got.end());
  co_return got;
}

TEST_P(select_test, else_when_closed_ends_once_every_branch_is_closed) {
  EXPECT_EQ(rt_.block_on(drain_until_all_closed()), (std::vector<int>{1, 2, 10, 20}));
}

task<std::pair<int, int>> wins_when_both_ready(bool is_biased) {
  auto [tx_a, rx_a] = mpsc::channel<int>(1);
  auto [tx_b, rx_b] = mpsc::channel<int>(1);
  int first = 0, second = 0;
  for (int i = 0; i < 200; ++i) {
    co_await tx_a.send(i);
    co_await tx_b.send(i);
    std::size_t won;
    if (is_biased) {
      won = (co_await select(biased, rx_a.recv(), rx_b.recv())).index();
    } else {
      won = (co_await select(rx_a.recv(), rx_b.recv())).index();
    }
    ++(won == 0 ? first : second);
    // Empty both channels again for the next round.
    std::optional<int> v;
    (void)rx_a.try_recv(v);
    (void)rx_b.try_recv(v);
  }
  co_return std::pair(first, second);
}

TEST_P(select_test, biased_polls_in_order_and_the_default_starts_anywhere) {
  EXPECT_EQ(rt_.block_on(wins_when_both_ready(true)), std::pair(200, 0));
  auto [first, second] = rt_.block_on(wins_when_both_ready(false));
  EXPECT_GT(first, 0);  // with a random first branch each time, 200 rounds never all go one way
  EXPECT_GT(second, 0);
}

task<int> park_in_select(mpsc::receiver<int>* rx, notify* n, std::atomic<bool>* parked) {
  parked->store(true);
  auto r = co_await select(rx->recv(), n->notified(), sleep(1h));
  co_return static_cast<int>(r.index());
}

TEST(select_cancel, a_cancelled_select_leaves_no_registration_behind) {
  runtime_options o = testing::options_for(flavor::multi_thread, /*paused=*/true);
  o.auto_advance = false;
  runtime rt(o);
  auto [tx, rx] = mpsc::channel<int>(4);
  notify n;
  std::atomic<bool> parked{false};
  auto h = rt.spawn(park_in_select(&rx, &n, &parked));
  while (n.waiters() == 0 || rt.core().timers().size() == 0) std::this_thread::yield();
  h.abort();
  while (!h.is_finished()) std::this_thread::yield();
  EXPECT_EQ(n.waiters(), 0u);
  EXPECT_EQ(rt.core().timers().size(), 0u);
  // The receiver is free again: a new receive gets the next message.
  rt.block_on([](mpsc::sender<int> t) -> task<> { co_await t.send(5); }(tx));
  EXPECT_EQ(rt.block_on([](mpsc::receiver<int>* r) -> task<int> {
    co_return (co_await r->recv()).value_or(-1);
  }(&rx)),
            5);
}

task<bool> broadcast_lag_is_not_closed() {
  auto [tx, rx] = broadcast::channel<int>(2);
  for (int i = 0; i < 5; ++i) tx.send(i);
  auto r = co_await select(else_when_closed, rx.recv());
  co_return r.index() == 0 && !std::get<0>(r) &&
      std::get<0>(r).error().kind == broadcast::recv_error::lagged;
}

TEST_P(select_test, a_lagged_broadcast_receiver_is_not_closed) {
  EXPECT_TRUE(rt_.block_on(broadcast_lag_is_not_closed()));
}

task<bool> watch_change_or_timer() {
  auto [tx, rx] = watch::channel<int>(0);
  auto r1 = co_await select(rx.changed(), sleep(10ms));  // nothing changes: the timer wins
  tx.send(1);
  auto r2 = co_await select(rx.changed(), sleep(10ms));  // changed already: wins at once
  co_return r1.index() == 1 && r2.index() == 0 && std::get<0>(r2);
}

TEST_P(select_test, a_watch_change_and_a_timer_race_in_place) {
  EXPECT_TRUE(rt_.block_on(watch_change_or_timer()));
}

// A receive that keeps losing selects to another branch while a producer keeps sending: each lost
// receive takes back its registration, even from under a producer that is waking it (LeakSanitizer
// would find the wakers of the selects otherwise, and TSan a race on the registration).
task<int> receive_beside_a_busy_notify(int rounds) {
  auto [tx, rx] = mpsc::channel<int>(4);
  notify often;
  std::atomic<bool> stop{false};
  auto producer = spawn([](mpsc::sender<int> t, std::atomic<bool>* s) -> task<> {
    for (int i = 0; !s->load(); ++i) {
      if (!co_await t.send(i)) co_return;
    }
  }(std::move(tx), &stop));
  auto poker = spawn([](notify* n, std::atomic<bool>* s) -> task<> {
    while (!s->load()) {
      n->notify_one();
      co_await yield_now();
    }
  }(&often, &stop));
  int received = 0;
  for (int i = 0; i < rounds; ++i) {
    auto r = co_await select(rx.recv(), often.notified());
    if (r.index() == 0) ++received;
  }
  stop.store(true);
  std::optional<int> left;  // let a producer blocked on a full channel finish
  while (rx.try_recv(left) != mpsc::try_recv_error::disconnected) co_await yield_now();
  (void)co_await producer;
  (void)co_await poker;
  co_return received;
}

TEST(select_threads, a_receive_that_keeps_losing_leaves_nothing_behind) {
  runtime rt(testing::options_for(flavor::multi_thread));
  EXPECT_GT(rt.block_on(receive_beside_a_busy_notify(20000)), 0);
}

}  // namespace
}  // namespace shoal::rt
