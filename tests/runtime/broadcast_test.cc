// broadcast::channel.
#include "runtime/sync/broadcast.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/runtime/flavor_test.h"

namespace shoal::rt {
namespace {

using testing::flavor_test;
class broadcast_test : public flavor_test {};
SHOAL_ALL_FLAVORS(broadcast_test);

task<std::vector<int>> drain(broadcast::receiver<int> rx) {
  std::vector<int> got;
  for (;;) {
    auto r = co_await rx.recv();
    if (!r) {
      if (r.error().kind == broadcast::recv_error::closed) break;
      got.push_back(-static_cast<int>(r.error().skipped));  // lag marker
      continue;
    }
    got.push_back(*r);
  }
  co_return got;
}

task<bool> every_receiver_sees_every_value() {
  auto [tx, rx] = broadcast::channel<int>(16);
  std::vector<join_handle<std::vector<int>>> hs;
  hs.push_back(spawn(drain(std::move(rx))));
  for (int i = 0; i < 3; ++i) hs.push_back(spawn(drain(tx.subscribe())));
  for (int i = 0; i < 10; ++i) co_await yield_now();  // let them park
  for (int i = 1; i <= 5; ++i) EXPECT_EQ(tx.send(i), 4u);
  { auto drop = std::move(tx); }
  const std::vector<int> want{1, 2, 3, 4, 5};
  for (auto& h : hs) {
    if ((co_await h).value() != want) co_return false;
  }
  co_return true;
}

TEST_P(broadcast_test, every_receiver_sees_every_value_in_order_then_closed) {
  EXPECT_TRUE(rt_.block_on(every_receiver_sees_every_value()));
}

task<std::vector<int>> lagging_receiver(int capacity, int sends) {
  auto [tx, rx] = broadcast::channel<int>(capacity);
  for (int i = 1; i <= sends; ++i) tx.send(i);
  { auto drop = std::move(tx); }
  co_return co_await drain(std::move(rx));
}

TEST_P(broadcast_test, capacity_rounds_up_to_a_power_of_two) {
  // Capacity 3 keeps 4 values: 4 sends fit without lag.
  EXPECT_EQ(rt_.block_on(lagging_receiver(3, 4)), (std::vector<int>{1, 2, 3, 4}));
}

TEST_P(broadcast_test, a_lagging_receiver_gets_lagged_n_then_resumes_at_the_oldest_retained) {
  // 10 sends into 4 slots: 6 overwritten, then 7..10.
  EXPECT_EQ(rt_.block_on(lagging_receiver(4, 10)), (std::vector<int>{-6, 7, 8, 9, 10}));
}

TEST_P(broadcast_test, send_without_receivers_returns_zero) {
  auto [tx, rx] = broadcast::channel<int>(4);
  EXPECT_EQ(tx.send(1), 1u);
  { auto drop = std::move(rx); }
  EXPECT_EQ(tx.send(2), 0u);
  auto late = tx.subscribe();  // sees only what is sent from now on
  EXPECT_EQ(tx.send(3), 1u);
  auto r = late.try_recv();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(**r, 3);
}

task<bool> cancelled_waiting_receiver() {
  auto [tx, rx] = broadcast::channel<int>(4);
  auto waiting =
      spawn([](broadcast::receiver<int>* rx) -> task<> { (void)co_await rx->recv(); }(&rx));
  for (int i = 0; i < 10; ++i) co_await yield_now();
  waiting.abort();
  (void)co_await waiting;
  tx.send(5);  // must not touch the cancelled waiter
  auto r = co_await rx.recv();
  co_return r&&* r == 5;
}

TEST_P(broadcast_test, cancelling_a_waiting_receiver_loses_nothing) {
  EXPECT_TRUE(rt_.block_on(cancelled_waiting_receiver()));
}

// A ring bounded by bytes as well as slots: the oldest values go once the total passes the bound
// (the newest always stays), and a receiver behind them lags, as if they had been overwritten.
struct sized {
  int id = 0;
  std::shared_ptr<std::string> payload;  // released when the ring lets the value go
};

task<bool> bytes_bound_the_ring() {
  auto weigh = [](const sized& v) -> std::size_t { return v.payload ? v.payload->size() : 0; };
  auto [tx, slow] = broadcast::channel<sized>(64, 1000, weigh);
  auto fast = tx.subscribe();
  std::vector<std::weak_ptr<std::string>> sent;
  for (int i = 1; i <= 10; ++i) {
    auto p = std::make_shared<std::string>(300, 'x');
    sent.push_back(p);
    tx.send(sized{i, std::move(p)});
    auto got = co_await fast.recv();  // keeps up: never lags
    if (!got || got->id != i) co_return false;
  }
  // 10 x 300 bytes sent, 1,000 kept: only the last three are still held by the ring.
  for (int i = 0; i < 7; ++i) EXPECT_TRUE(sent[i].expired()) << i;
  for (int i = 7; i < 10; ++i) EXPECT_FALSE(sent[i].expired()) << i;
  auto first = co_await slow.recv();
  if (first || first.error().kind != broadcast::recv_error::lagged) co_return false;
  EXPECT_EQ(first.error().skipped, 7u);
  for (int i = 8; i <= 10; ++i) {
    auto got = co_await slow.recv();
    if (!got || got->id != i) co_return false;
  }
  // One value larger than the bound is still delivered (the newest always stays).
  tx.send(sized{11, std::make_shared<std::string>(5000, 'y')});
  auto big = co_await slow.recv();
  co_return big && big->id == 11 && sent[9].expired();
}

TEST_P(broadcast_test, a_byte_bound_lets_the_oldest_values_go_and_behind_them_is_a_lag) {
  EXPECT_TRUE(rt_.block_on(bytes_bound_the_ring()));
}

}  // namespace
}  // namespace shoal::rt
