// watch::channel.
#include "runtime/sync/watch.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/runtime/flavor_test.h"

namespace shoal::rt {
namespace {

using testing::flavor_test;
class watch_test : public flavor_test {};
SHOAL_ALL_FLAVORS(watch_test);

TEST_P(watch_test, borrow_sees_the_latest_value_and_tracks_what_was_seen) {
  auto [tx, rx] = watch::channel<std::string>("a");
  EXPECT_EQ(*rx.borrow(), "a");
  EXPECT_FALSE(rx.has_changed());
  EXPECT_TRUE(tx.send("b"));
  EXPECT_TRUE(tx.send("c"));
  EXPECT_TRUE(rx.has_changed());
  {
    auto r = rx.borrow_and_update();
    EXPECT_EQ(*r, "c");  // intermediate values are skipped
    EXPECT_TRUE(r.has_changed());
  }
  EXPECT_FALSE(rx.has_changed());
}

task<int> wait_for_changes(watch::receiver<int> rx) {
  int last = -1;
  for (;;) {
    bool changed = co_await rx.changed();
    if (!changed) break;
    last = *rx.borrow_and_update();
  }
  co_return last;
}

task<bool> changed_wakes_every_receiver_and_fails_after_sender_drop() {
  auto [tx, rx] = watch::channel<int>(0);
  auto a = spawn(wait_for_changes(rx));
  auto b = spawn(wait_for_changes(std::move(rx)));
  for (int i = 1; i <= 100; ++i) {
    tx.send(i);
    co_await yield_now();
  }
  { auto drop = std::move(tx); }
  co_return (co_await a).value() == 100 && (co_await b).value() == 100;
}

TEST_P(watch_test, changed_completes_for_every_receiver_and_fails_once_the_sender_is_gone) {
  EXPECT_TRUE(rt_.block_on(changed_wakes_every_receiver_and_fails_after_sender_drop()));
}

task<bool> sender_closed_when_receivers_gone() {
  auto [tx, rx] = watch::channel<int>(0);
  auto rx2 = rx;
  spawn([](watch::receiver<int>, watch::receiver<int>) -> task<> {
    co_await yield_now();
    co_return;
  }(std::move(rx), std::move(rx2)))
      .detach();
  co_await tx.closed();
  co_return !tx.send(1) && tx.is_closed();
}

TEST_P(watch_test, sender_closed_completes_when_every_receiver_is_gone_and_send_then_fails) {
  EXPECT_TRUE(rt_.block_on(sender_closed_when_receivers_gone()));
}

task<bool> cancelled_changed() {
  auto [tx, rx] = watch::channel<int>(0);
  auto waiting =
      spawn([](watch::receiver<int>* rx) -> task<> { (void)co_await rx->changed(); }(&rx));
  for (int i = 0; i < 10; ++i) co_await yield_now();
  waiting.abort();
  (void)co_await waiting;
  tx.send(3);
  co_return co_await rx.changed() && *rx.borrow() == 3;
}

TEST_P(watch_test, cancelling_a_task_waiting_in_changed_leaves_no_waiter) {
  EXPECT_TRUE(rt_.block_on(cancelled_changed()));
}

}  // namespace
}  // namespace shoal::rt
