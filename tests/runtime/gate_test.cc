// gate and cancellation_token: the drain and stop primitives.
#include "runtime/sync/gate.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "runtime/sync/cancellation_token.h"
#include "runtime/sync/mpsc.h"
#include "runtime/sync/select.h"
#include "tests/runtime/flavor_test.h"

namespace shoal::rt {
namespace {

using namespace std::chrono_literals;
using testing::flavor_test;
class gate_test : public flavor_test {};
SHOAL_ALL_FLAVORS(gate_test);

TEST_P(gate_test, a_closed_gate_admits_nothing_and_an_empty_one_closes_at_once) {
  rt_.block_on([]() -> task<> {
    gate g;
    {
      auto in = g.try_enter();
      EXPECT_TRUE(in.has_value());
      EXPECT_EQ(g.holders(), 1u);
    }
    EXPECT_EQ(g.holders(), 0u);
    co_await g.close();
    EXPECT_TRUE(g.is_closed());
    EXPECT_FALSE(g.try_enter().has_value());
  }());
}

task<> hold_until(gate::holder in, notify* release) {
  co_await release->notified();
  (void)in;
}

task<bool> close_waits_for_every_holder() {
  gate g;
  notify release;
  std::vector<join_handle<void>> holders;
  for (int i = 0; i < 3; ++i) holders.push_back(spawn(hold_until(*g.try_enter(), &release)));
  auto closer = spawn([](gate* gg) -> task<uint64_t> {
    co_await gg->close();
    co_return gg->holders();
  }(&g));
  auto second_closer = spawn([](gate* gg) -> task<> { co_await gg->close(); }(&g));
  while (!g.is_closed()) co_await yield_now();
  EXPECT_FALSE(g.try_enter().has_value());
  bool waited = true;
  for (int i = 0; i < 3; ++i) {
    for (int k = 0; k < 20; ++k) co_await yield_now();
    waited = waited && !closer.is_finished();  // someone still holds the gate
    release.notify_one();
  }
  auto left = co_await closer;
  (void)co_await second_closer;
  for (auto& h : holders) (void)co_await h;
  co_return waited&& left.has_value() && *left == 0;
}

TEST_P(gate_test, close_completes_when_the_last_holder_leaves_for_every_closer) {
  EXPECT_TRUE(rt_.block_on(close_waits_for_every_holder()));
}

task<bool> close_in_a_select() {
  gate g;
  auto in = g.try_enter();
  auto r = co_await select(g.close(), sleep(5ms));  // a holder is in: the timer wins
  { auto drop = std::move(in); }
  auto r2 = co_await select(g.close(), sleep(1h));
  co_return r.index() == 1 && r2.index() == 0;
}

TEST_P(gate_test, close_is_a_select_branch) { EXPECT_TRUE(rt_.block_on(close_in_a_select())); }

// The gate may go as soon as close() completes, while the last holder is still leaving (on another
// worker): ASan would see the holder touch a freed gate otherwise.
task<> leave_soon(gate::holder in) {
  co_await yield_now();
  { auto drop = std::move(in); }
}

TEST(gate_threads, a_gate_may_be_destroyed_as_soon_as_close_completes) {
  runtime rt(testing::options_for(flavor::multi_thread));
  rt.block_on([]() -> task<> {
    for (int i = 0; i < 2000; ++i) {
      auto* g = new gate();
      auto holder = spawn(leave_soon(*g->try_enter()));
      co_await g->close();
      delete g;  // the holder may still be inside its leave()
      (void)co_await holder;
    }
  }());
}

// ------------------------------------------------------------------------- cancellation_token

class token_test : public flavor_test {};
SHOAL_ALL_FLAVORS(token_test);

task<> wait_cancelled(cancellation_token t, std::atomic<int>* woke) {
  co_await t.cancelled();
  woke->fetch_add(1);
}

task<bool> cancel_wakes_every_waiter_and_every_descendant() {
  cancellation_token root;
  cancellation_token child = root.child_token();
  cancellation_token grandchild = child.child_token();
  std::atomic<int> woke{0};
  std::vector<join_handle<void>> hs;
  for (const auto& t : {root, child, grandchild, grandchild}) {
    hs.push_back(spawn(wait_cancelled(t, &woke)));
  }
  for (int i = 0; i < 20; ++i) co_await yield_now();
  const bool none_early = woke.load() == 0;
  root.cancel();
  for (auto& h : hs) (void)co_await h;
  co_return none_early&& woke.load() == 4 && child.is_cancelled() && grandchild.is_cancelled();
}

TEST_P(token_test, cancel_wakes_every_waiter_and_every_descendant) {
  EXPECT_TRUE(rt_.block_on(cancel_wakes_every_waiter_and_every_descendant()));
}

TEST_P(token_test, a_child_cancelled_alone_leaves_its_parent_and_siblings) {
  cancellation_token root;
  cancellation_token a = root.child_token();
  cancellation_token b = root.child_token();
  a.cancel();
  EXPECT_TRUE(a.is_cancelled());
  EXPECT_FALSE(root.is_cancelled());
  EXPECT_FALSE(b.is_cancelled());
}

TEST_P(token_test, a_child_of_a_cancelled_token_is_born_cancelled) {
  cancellation_token root;
  root.cancel();
  cancellation_token late = root.child_token();
  EXPECT_TRUE(late.is_cancelled());
  rt_.block_on([](cancellation_token t) -> task<> { co_await t.cancelled(); }(late));
}

TEST_P(token_test, a_dropped_child_is_unlinked_and_the_parent_still_cancels_the_rest) {
  cancellation_token root;
  cancellation_token keep = root.child_token();
  { cancellation_token gone = root.child_token(); }
  root.cancel();
  EXPECT_TRUE(keep.is_cancelled());
}

TEST_P(token_test, a_drop_guard_cancels_at_scope_exit_unless_disarmed) {
  cancellation_token t;
  { auto g = t.guard(); }
  EXPECT_TRUE(t.is_cancelled());
  cancellation_token u;
  {
    auto g = u.guard();
    (void)g.disarm();
  }
  EXPECT_FALSE(u.is_cancelled());
}

task<int> recv_or_stop(mpsc::receiver<int>* rx, cancellation_token stop) {
  auto r = co_await select(biased, stop.cancelled(), rx->recv());
  co_return r.index() == 0 ? -1 : std::get<1>(r).value_or(-2);
}

task<bool> cancelled_as_a_select_branch() {
  auto [tx, rx] = mpsc::channel<int>(1);
  cancellation_token stop;
  auto waiting = spawn(recv_or_stop(&rx, stop));
  for (int i = 0; i < 10; ++i) co_await yield_now();
  stop.cancel();
  auto r = co_await waiting;
  co_await tx.send(3);  // the receive that lost left nothing behind: the next one gets it
  auto next = co_await rx.recv();
  co_return r.has_value() && *r == -1 && next == 3;
}

TEST_P(token_test, cancelled_is_a_select_branch) {
  EXPECT_TRUE(rt_.block_on(cancelled_as_a_select_branch()));
}

// Children made and dropped on several threads while the root is cancelled: every child alive at
// the cancel, and every child made after it, ends up cancelled (TSan checks the links).
TEST(token_threads, children_come_and_go_while_the_root_is_cancelled) {
  cancellation_token root;
  std::atomic<bool> go{false};
  std::atomic<int> missed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < 2000; ++i) {
        cancellation_token c = root.child_token();
        cancellation_token gc = c.child_token();
        if (root.is_cancelled() && !(c.is_cancelled() && gc.is_cancelled())) missed.fetch_add(1);
      }
    });
  }
  go.store(true);
  root.cancel();
  for (auto& th : threads) th.join();
  EXPECT_EQ(missed.load(), 0);
}

}  // namespace
}  // namespace shoal::rt
