// select, join, join_all and timeout.
#include "runtime/sync/select.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include "runtime/sync/notify.h"
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

TEST_P(select_test, an_exception_in_the_winning_branch_is_rethrown) {
  EXPECT_THROW(rt_.block_on(select(thrower(), after(1h, "slow"))), std::runtime_error);
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

}  // namespace
}  // namespace shoal::rt
