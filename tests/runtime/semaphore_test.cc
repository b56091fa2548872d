// semaphore, notify and the async mutex.
#include "runtime/sync/semaphore.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "runtime/sync/mutex.h"
#include "runtime/sync/notify.h"
#include "tests/runtime/flavor_test.h"

namespace shoal::rt {
namespace {

using testing::flavor_test;
class semaphore_test : public flavor_test {};
SHOAL_ALL_FLAVORS(semaphore_test);

TEST_P(semaphore_test, permits_return_when_dropped_and_try_acquire_respects_the_count) {
  semaphore s(2);
  {
    auto a = s.try_acquire(2);
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(s.available_permits(), 0u);
    EXPECT_EQ(s.try_acquire().error(), try_acquire_error::no_permits);
  }
  EXPECT_EQ(s.available_permits(), 2u);
  auto f = s.try_acquire();
  f->forget();
  EXPECT_EQ(s.available_permits(), 1u);
}

task<> take(semaphore* s, std::size_t n, std::vector<std::string>* order, std::string name) {
  auto p = co_await s->acquire(n);
  order->push_back(name);
}

task<std::vector<std::string>> fifo_order() {
  semaphore s(0);
  std::vector<std::string> order;
  auto big = spawn(take(&s, 2, &order, "big"));
  while (s.waiters() < 1) co_await yield_now();
  auto small = spawn(take(&s, 1, &order, "small"));
  while (s.waiters() < 2) co_await yield_now();
  s.release(1);  // enough for "small", but "big" is first in line
  for (int i = 0; i < 10; ++i) co_await yield_now();
  EXPECT_TRUE(order.empty());
  s.release(1);
  (void)co_await big;
  (void)co_await small;
  co_return order;
}

TEST_P(semaphore_test, waiters_are_served_in_arrival_order) {
  EXPECT_EQ(rt_.block_on(fifo_order()), (std::vector<std::string>{"big", "small"}));
}

task<bool> close_fails_waiters() {
  semaphore s(0);
  auto waiting = spawn([](semaphore* s) -> task<bool> {
    auto p = co_await s->acquire();
    co_return !p.has_value() && p.error() == acquire_error::closed;
  }(&s));
  for (int i = 0; i < 10; ++i) co_await yield_now();
  s.close();
  bool woken_with_error = (co_await waiting).value();
  auto late = co_await s.acquire();
  co_return woken_with_error && !late && s.try_acquire().error() == try_acquire_error::closed;
}

TEST_P(semaphore_test, close_fails_current_and_future_acquires) {
  EXPECT_TRUE(rt_.block_on(close_fails_waiters()));
}

task<std::size_t> cancelled_waiters_leak_no_permit() {
  semaphore s(1);
  auto held = co_await s.acquire();
  std::vector<join_handle<void>> waiters;
  std::vector<std::string> order;
  for (int i = 0; i < 10; ++i) waiters.push_back(spawn(take(&s, 1, &order, "w")));
  while (s.waiters() < 10) co_await yield_now();
  // Release: the first waiter is granted the permit, but is cancelled before it runs.
  { auto drop = std::move(*held); }
  for (auto& w : waiters) w.abort();
  for (auto& w : waiters) (void)co_await w;
  co_return s.available_permits();
}

TEST_P(semaphore_test, cancelling_waiters_even_after_a_grant_leaks_no_permit) {
  EXPECT_EQ(rt_.block_on(cancelled_waiters_leak_no_permit()), 1u);
}

class notify_test : public flavor_test {};
SHOAL_ALL_FLAVORS(notify_test);

TEST_P(notify_test, notify_one_without_waiter_stores_exactly_one_permit) {
  rt_.block_on([]() -> task<> {
    notify n;
    n.notify_one();
    n.notify_one();
    co_await n.notified();  // takes the single permit
    auto second = n.notified();
    EXPECT_FALSE(second.await_ready());
  }());
}

task<int> count_wakes(notify* n, std::atomic<int>* woken) {
  co_await n->notified();
  woken->fetch_add(1);
  co_return 0;
}

task<bool> notify_waiters_wakes_all_current_waiters() {
  notify n;
  std::atomic<int> woken{0};
  std::vector<join_handle<int>> hs;
  for (int i = 0; i < 100; ++i) hs.push_back(spawn(count_wakes(&n, &woken)));
  while (n.waiters() < 100) co_await yield_now();
  auto created_before = n.notified();  // created before the call: also completes
  n.notify_waiters();
  co_await std::move(created_before);
  for (auto& h : hs) (void)co_await h;
  auto after = n.notified();  // no permit stored
  co_return woken.load() == 100 && !after.await_ready();
}

TEST_P(notify_test, notify_waiters_wakes_every_current_waiter_and_stores_no_permit) {
  EXPECT_TRUE(rt_.block_on(notify_waiters_wakes_all_current_waiters()));
}

task<int> cancelled_waiter_passes_notify_one_on() {
  notify n;
  std::atomic<int> woken{0};
  auto first = spawn(count_wakes(&n, &woken));
  while (n.waiters() < 1) co_await yield_now();
  auto second = spawn(count_wakes(&n, &woken));
  while (n.waiters() < 2) co_await yield_now();
  n.notify_one();  // addressed to `first`...
  first.abort();   // ...which is cancelled before it runs: `second` must get it
  (void)co_await first;
  (void)co_await second;
  co_return woken.load();
}

TEST_P(notify_test, a_notify_one_addressed_to_a_cancelled_waiter_is_not_lost) {
  EXPECT_EQ(rt_.block_on(cancelled_waiter_passes_notify_one_on()), 1);
}

class mutex_test : public flavor_test {};
SHOAL_ALL_FLAVORS(mutex_test);

task<> add_slowly(mutex<int>* m, int times) {
  for (int i = 0; i < times; ++i) {
    auto g = co_await m->lock();
    int v = *g;
    co_await yield_now();  // held across a suspension: nobody else may interleave
    *g = v + 1;
  }
}

task<int> contended_counter() {
  mutex<int> m(0);
  std::vector<join_handle<void>> hs;
  for (int i = 0; i < 8; ++i) hs.push_back(spawn(add_slowly(&m, 500)));
  for (auto& h : hs) (void)co_await h;
  EXPECT_TRUE(m.try_lock().has_value());
  auto g = co_await m.lock();
  auto second = m.try_lock();
  EXPECT_FALSE(second.has_value());
  co_return *g;
}

TEST_P(mutex_test, guard_held_across_await_excludes_every_other_task) {
  EXPECT_EQ(rt_.block_on(contended_counter()), 8 * 500);
}

TEST_P(semaphore_test, add_permits_grows_the_limit) {
  semaphore s(1);
  s.add_permits(2);
  auto a = s.try_acquire(3);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(s.available_permits(), 0u);
}

TEST_P(semaphore_test, forget_permits_takes_free_permits_now_and_held_ones_as_they_return) {
  semaphore s(4);
  auto held = s.try_acquire(3);  // 3 out, 1 free
  ASSERT_TRUE(held.has_value());
  s.forget_permits(2);  // the limit goes from 4 to 2: the free one now, one more when returned
  EXPECT_EQ(s.available_permits(), 0u);
  EXPECT_EQ(s.forgotten_pending(), 1u);
  { auto drop = std::move(*held); }  // 3 come back: one pays the debt, two are free
  EXPECT_EQ(s.forgotten_pending(), 0u);
  EXPECT_EQ(s.available_permits(), 2u);
  EXPECT_EQ(s.try_acquire(3).error(), try_acquire_error::no_permits);
}

task<bool> a_waiter_is_not_served_from_a_permit_owed_to_forget() {
  semaphore s(1);
  auto held = s.try_acquire(1);
  s.forget_permits(1);  // the limit is now 0
  auto waiter = spawn([](semaphore* sem) -> task<bool> {
    auto p = co_await sem->acquire();
    co_return p.has_value();
  }(&s));
  while (s.waiters() == 0) co_await yield_now();
  { auto drop = std::move(*held); }  // pays the debt: the waiter stays queued
  for (int i = 0; i < 20; ++i) co_await yield_now();
  const bool still_waiting = !waiter.is_finished() && s.waiters() == 1;
  s.add_permits(1);  // the limit goes back to 1: now it is served
  auto served = co_await waiter;
  co_return still_waiting&& served.has_value() && *served;
}

TEST_P(semaphore_test, a_waiter_is_not_served_from_a_permit_owed_to_forget_permits) {
  EXPECT_TRUE(rt_.block_on(a_waiter_is_not_served_from_a_permit_owed_to_forget()));
}

}  // namespace
}  // namespace shoal::rt
