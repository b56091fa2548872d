// oneshot::channel.
#include "runtime/sync/oneshot.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "tests/runtime/flavor_test.h"

namespace shoal::rt {
namespace {

using testing::flavor_test;
class oneshot_test : public flavor_test {};
SHOAL_ALL_FLAVORS(oneshot_test);

task<std::string> send_then_receive() {
  auto [tx, rx] = oneshot::channel<std::string>();
  EXPECT_TRUE(tx.send("hello"));
  co_return (co_await std::move(rx)).value();
}

TEST_P(oneshot_test, the_sent_value_is_received) {
  EXPECT_EQ(rt_.block_on(send_then_receive()), "hello");
}

task<int> reply_later(oneshot::sender<int> tx) {
  for (int i = 0; i < 10; ++i) co_await yield_now();
  tx.send(7);
  co_return 0;
}

task<int> receive_before_send() {
  auto [tx, rx] = oneshot::channel<int>();
  spawn(reply_later(std::move(tx))).detach();
  co_return (co_await std::move(rx)).value();
}

TEST_P(oneshot_test, a_waiting_receiver_is_woken_by_send) {
  EXPECT_EQ(rt_.block_on(receive_before_send()), 7);
}

task<bool> dropped_sender_closes() {
  auto [tx, rx] = oneshot::channel<int>();
  spawn([](oneshot::sender<int> tx) -> task<> {
    co_await yield_now();
    { auto drop = std::move(tx); }
  }(std::move(tx)))
      .detach();
  auto r = co_await std::move(rx);
  co_return !r && r.error() == oneshot::recv_error::closed;
}

TEST_P(oneshot_test, receiving_fails_when_the_sender_is_dropped_without_sending) {
  EXPECT_TRUE(rt_.block_on(dropped_sender_closes()));
}

TEST_P(oneshot_test, send_fails_once_the_receiver_is_gone) {
  auto [tx, rx] = oneshot::channel<std::unique_ptr<int>>();
  EXPECT_FALSE(tx.is_closed());
  { auto drop = std::move(rx); }
  EXPECT_TRUE(tx.is_closed());
  EXPECT_FALSE(tx.send(std::make_unique<int>(1)));  // the value is dropped, not leaked
}

task<bool> cancelled_receiver() {
  auto [tx, rx] = oneshot::channel<std::string>();
  auto waiting = spawn([](oneshot::receiver<std::string> rx) -> task<> {
    (void)co_await std::move(rx);
  }(std::move(rx)));
  for (int i = 0; i < 10; ++i) co_await yield_now();
  waiting.abort();
  auto r = co_await waiting;
  EXPECT_TRUE(!r && r.error().is_cancelled());
  co_return tx.send("nobody listens");
}

TEST_P(oneshot_test, cancelling_a_waiting_receiver_closes_the_channel_without_leaks) {
  EXPECT_FALSE(rt_.block_on(cancelled_receiver()));
}

task<bool> a_void_oneshot_signals_done_or_closed() {
  auto [tx, rx] = oneshot::channel<void>();
  auto waiter = spawn([](oneshot::receiver<void> r) -> task<bool> {
    auto v = co_await std::move(r);
    co_return v.has_value();
  }(std::move(rx)));
  co_await yield_now();
  EXPECT_TRUE(tx.send());
  auto got = co_await waiter;
  auto [tx2, rx2] = oneshot::channel<void>();
  { auto drop = std::move(tx2); }  // dropped without sending
  auto closed = co_await std::move(rx2);
  co_return got.has_value() && *got && !closed && closed.error() == oneshot::recv_error::closed;
}

TEST_P(oneshot_test, a_void_channel_signals_done_or_that_the_sender_gave_up) {
  EXPECT_TRUE(rt_.block_on(a_void_oneshot_signals_done_or_closed()));
}

}  // namespace
}  // namespace shoal::rt
