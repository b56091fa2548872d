// mpsc::channel (bounded) and mpsc::unbounded_channel.
#include "runtime/sync/mpsc.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tests/runtime/flavor_test.h"

namespace shoal::rt {
namespace {

using testing::flavor_test;
class mpsc_test : public flavor_test {};
SHOAL_ALL_FLAVORS(mpsc_test);

task<std::vector<int>> send_three_then_drain() {
  auto [tx, rx] = mpsc::channel<int>(8);
  for (int i = 1; i <= 3; ++i) EXPECT_TRUE(co_await tx.send(i));
  { auto drop = std::move(tx); }
  std::vector<int> got;
  while (std::optional<int> v = co_await rx.recv()) got.push_back(*v);
  co_return got;
}

TEST_P(mpsc_test, recv_yields_values_in_order_then_none_once_senders_are_gone) {
  EXPECT_EQ(rt_.block_on(send_three_then_drain()), (std::vector<int>{1, 2, 3}));
}

task<> send_one(mpsc::sender<int> tx, int v) { co_await tx.send(v); }

task<bool> send_waits_while_full() {
  auto [tx, rx] = mpsc::channel<int>(2);
  EXPECT_TRUE(co_await tx.send(1));
  EXPECT_TRUE(co_await tx.send(2));
  auto blocked = spawn(send_one(tx, 3));
  for (int i = 0; i < 50; ++i) co_await yield_now();
  bool was_blocked = !blocked.is_finished();
  EXPECT_EQ(*co_await rx.recv(), 1);
  (void)co_await blocked;
  EXPECT_EQ(*co_await rx.recv(), 2);
  EXPECT_EQ(*co_await rx.recv(), 3);
  co_return was_blocked;
}

TEST_P(mpsc_test, send_waits_while_the_channel_is_full) {
  EXPECT_TRUE(rt_.block_on(send_waits_while_full()));
}

task<> try_send_reports_full_and_closed_task() {
  auto [tx, rx] = mpsc::channel<int>(1);
  EXPECT_EQ(tx.try_send(1), std::nullopt);
  EXPECT_EQ(tx.try_send(2), mpsc::try_send_error::full);
  { auto drop = std::move(rx); }
  EXPECT_EQ(tx.try_send(3), mpsc::try_send_error::closed);
  EXPECT_FALSE(co_await tx.send(4));
  EXPECT_TRUE(tx.is_closed());
}

TEST_P(mpsc_test, try_send_reports_full_and_closed) {
  rt_.block_on(try_send_reports_full_and_closed_task());
}

task<bool> blocked_sender_fails_when_receiver_drops() {
  auto [tx, rx] = mpsc::channel<int>(1);
  co_await tx.send(1);
  auto blocked =
      spawn([](mpsc::sender<int> tx) -> task<bool> { co_return co_await tx.send(2); }(tx));
  for (int i = 0; i < 20; ++i) co_await yield_now();
  { auto drop = std::move(rx); }
  auto r = co_await blocked;
  co_return r.has_value() && *r == false;
}

TEST_P(mpsc_test, a_blocked_sender_gets_false_when_the_receiver_goes_away) {
  EXPECT_TRUE(rt_.block_on(blocked_sender_fails_when_receiver_drops()));
}

task<std::optional<int>> recv_from(mpsc::receiver<int>* rx) { co_return co_await rx->recv(); }

task<int> cancelled_recv_loses_no_message() {
  auto [tx, rx] = mpsc::channel<int>(4);
  auto waiting = spawn(recv_from(&rx));
  for (int i = 0; i < 20; ++i) co_await yield_now();
  waiting.abort();
  auto r = co_await waiting;
  EXPECT_TRUE(!r && r.error().is_cancelled());
  co_await tx.send(42);
  co_return (co_await rx.recv()).value_or(-1);
}

TEST_P(mpsc_test, cancelling_a_task_waiting_in_recv_loses_no_message) {
  EXPECT_EQ(rt_.block_on(cancelled_recv_loses_no_message()), 42);
}

task<std::vector<int>> cancelled_send_leaves_no_waiter() {
  auto [tx, rx] = mpsc::channel<int>(1);
  co_await tx.send(1);
  auto blocked = spawn(send_one(tx, 99));
  for (int i = 0; i < 20; ++i) co_await yield_now();
  blocked.abort();
  (void)co_await blocked;
  std::vector<int> got;
  got.push_back(*co_await rx.recv());
  EXPECT_EQ(tx.try_send(2), std::nullopt);  // the room is ours, not the cancelled sender's
  got.push_back(*co_await rx.recv());
  EXPECT_EQ(tx.try_send(3), std::nullopt);
  got.push_back(*co_await rx.recv());
  co_return got;
}

TEST_P(mpsc_test, cancelling_a_blocked_sender_leaves_no_waiter_and_sends_nothing) {
  EXPECT_EQ(rt_.block_on(cancelled_send_leaves_no_waiter()), (std::vector<int>{1, 2, 3}));
}

task<> produce(mpsc::sender<uint64_t> tx, uint64_t id, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) EXPECT_TRUE(co_await tx.send(id << 32 | i));
}

task<bool> many_producers_each_in_order(int producers, uint64_t per, std::size_t cap) {
  auto [tx, rx] = mpsc::channel<uint64_t>(cap);
  for (int p = 0; p < producers; ++p) spawn(produce(tx, p, per)).detach();
  { auto drop = std::move(tx); }
  std::vector<uint64_t> next(producers, 0);
  uint64_t total = 0;
  while (std::optional<uint64_t> v = co_await rx.recv()) {
    uint64_t id = *v >> 32, seq = *v & 0xffffffff;
    if (seq != next[id]) co_return false;
    ++next[id];
    ++total;
  }
  co_return total == per* producers;
}

TEST_P(mpsc_test, many_producers_deliver_every_message_once_in_per_producer_order) {
  EXPECT_TRUE(rt_.block_on(many_producers_each_in_order(8, 50'000, 16)));
  EXPECT_TRUE(rt_.block_on(many_producers_each_in_order(4, 20'000, 1)));
  EXPECT_TRUE(rt_.block_on(many_producers_each_in_order(3, 20'000, 1000)));
}

task<std::vector<std::string>> unbounded_basics() {
  auto [tx, rx] = mpsc::unbounded_channel<std::string>();
  auto waiting =
      spawn([](mpsc::unbounded_receiver<std::string> rx) -> task<std::vector<std::string>> {
        std::vector<std::string> got;
        while (auto v = co_await rx.recv()) got.push_back(*v);
        co_return got;
      }(std::move(rx)));
  for (int i = 0; i < 5; ++i) co_await yield_now();
  EXPECT_TRUE(tx.send("a"));
  EXPECT_TRUE(tx.send("b"));
  { auto drop = std::move(tx); }
  co_return (co_await waiting).value();
}

TEST_P(mpsc_test, unbounded_channel_delivers_in_order_and_ends_when_senders_are_gone) {
  EXPECT_EQ(rt_.block_on(unbounded_basics()), (std::vector<std::string>{"a", "b"}));
}

}  // namespace
}  // namespace shoal::rt
