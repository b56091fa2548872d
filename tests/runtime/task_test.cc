// task<T>, spawn, join_handle and block_on.
#include "runtime/task.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "runtime/runtime.h"

namespace shoal::rt {
namespace {

runtime_options both_flavors(int i) {
  runtime_options o;
  o.kind = i == 0 ? flavor::current_thread : flavor::multi_thread;
  o.workers = 2;
  return o;
}

class task_test : public ::testing::TestWithParam<int> {
 protected:
  runtime rt_{both_flavors(GetParam())};
};
INSTANTIATE_TEST_SUITE_P(flavors, task_test, ::testing::Values(0, 1), [](const auto& info) {
  return std::string(info.param == 0 ? "current_thread" : "multi_thread");
});

task<int> add(int a, int b) { co_return a + b; }
task<int> add_nested(int a, int b) {
  int x = co_await add(a, 0);
  int y = co_await add(0, b);
  co_return x + y;
}
task<int> throws_runtime_error() {
  throw std::runtime_error("boom");
  co_return 0;
}

TEST_P(task_test, block_on_returns_the_value) { EXPECT_EQ(rt_.block_on(add_nested(20, 22)), 42); }

TEST_P(task_test, block_on_rethrows_the_task_exception) {
  EXPECT_THROW(rt_.block_on(throws_runtime_error()), std::runtime_error);
}

task<std::string> catches_nested_exception() {
  try {
    co_await throws_runtime_error();
  } catch (const std::runtime_error& e) {
    co_return std::string("caught ") + e.what();
  }
  co_return "not thrown";
}

TEST_P(task_test, awaited_task_exception_propagates_to_the_awaiter) {
  EXPECT_EQ(rt_.block_on(catches_nested_exception()), "caught boom");
}

task<int> spawn_and_join() {
  auto h = spawn(add(1, 2));
  auto r = co_await h;
  co_return r.value();
}

TEST_P(task_test, join_handle_yields_the_spawned_task_value) {
  EXPECT_EQ(rt_.block_on(spawn_and_join()), 3);
}

task<bool> join_reports_panic() {
  auto r = co_await spawn(throws_runtime_error());
  if (r) co_return false;
  if (!r.error().is_panic()) co_return false;
  try {
    std::rethrow_exception(r.error().panic());
  } catch (const std::runtime_error& e) {
    co_return std::string(e.what()) == "boom";
  }
  co_return false;
}

TEST_P(task_test, join_error_carries_the_exception_of_a_task_that_threw) {
  EXPECT_TRUE(rt_.block_on(join_reports_panic()));
}

task<void> spin_yielding(std::atomic<bool>* stop, std::atomic<int>* polls) {
  while (!stop->load()) {
    polls->fetch_add(1);
    co_await yield_now();
  }
}

task<bool> abort_yielding_task() {
  std::atomic<bool> stop{false};
  std::atomic<int> polls{0};
  auto h = spawn(spin_yielding(&stop, &polls));
  while (polls.load() < 10) co_await yield_now();
  h.abort();
  auto r = co_await h;
  co_return !r && r.error().is_cancelled();
}

TEST_P(task_test, abort_cancels_a_task_between_polls) {
  EXPECT_TRUE(rt_.block_on(abort_yielding_task()));
}

task<bool> abort_before_first_poll() {
  std::atomic<bool> stop{false};
  std::atomic<int> polls{0};
  auto h = spawn(spin_yielding(&stop, &polls));
  h.abort();
  auto r = co_await h;
  co_return !r && r.error().is_cancelled();
}

TEST_P(task_test, abort_before_the_first_poll_cancels) {
  EXPECT_TRUE(rt_.block_on(abort_before_first_poll()));
}

task<int> finished_before_abort() {
  auto h = spawn(add(2, 3));
  while (!h.is_finished()) co_await yield_now();
  h.abort();  // too late: the result stands, as in Tokio
  auto r = co_await h;
  co_return r ? *r : -1;
}

TEST_P(task_test, abort_after_completion_keeps_the_result) {
  EXPECT_EQ(rt_.block_on(finished_before_abort()), 5);
}

task<void> set_flag(std::atomic<bool>* flag) {
  flag->store(true);
  co_return;
}

TEST_P(task_test, dropped_handle_detaches_and_the_task_still_runs) {
  std::atomic<bool> flag{false};
  rt_.spawn(set_flag(&flag)).detach();
  for (int i = 0; i < 10000 && !flag.load(); ++i) std::this_thread::yield();
  // The detached task may still be in flight; block_on a second task to give it time.
  rt_.block_on(add(0, 0));
  while (!flag.load()) std::this_thread::yield();
  EXPECT_TRUE(flag.load());
}

task<int> returns_immediately(int i) { co_return i; }

task<long> await_many_completed_tasks(int n) {
  long sum = 0;
  for (int i = 0; i < n; ++i) sum += co_await returns_immediately(1);
  co_return sum;
}

// Without the trampoline this overflows the stack at -O0 and under sanitizers.
TEST_P(task_test, millions_of_immediately_completing_awaits_do_not_grow_the_stack) {
  constexpr int n = 3'000'000;
  EXPECT_EQ(rt_.block_on(await_many_completed_tasks(n)), n);
}

task<int> depth(int d) {
  if (d == 0) co_return 0;
  co_return 1 + co_await depth(d - 1);
}

TEST_P(task_test, deep_recursion_of_awaited_tasks_does_not_grow_the_stack) {
  EXPECT_EQ(rt_.block_on(depth(200'000)), 200'000);
}

task<int> spawn_many(int n) {
  std::vector<join_handle<int>> hs;
  hs.reserve(n);
  for (int i = 0; i < n; ++i) hs.push_back(spawn(returns_immediately(i)));
  long sum = 0;
  for (auto& h : hs) sum += (co_await h).value();
  co_return static_cast<int>(sum == static_cast<long>(n) * (n - 1) / 2);
}

TEST_P(task_test, many_spawned_tasks_all_complete_with_their_values) {
  EXPECT_EQ(rt_.block_on(spawn_many(100'000)), 1);
}

TEST_P(task_test, spawn_from_outside_the_runtime_runs_on_a_worker) {
  auto h = rt_.spawn(add(4, 5));
  EXPECT_EQ(rt_.block_on([](join_handle<int> h) -> task<int> {
    co_return (co_await h).value();
  }(std::move(h))),
            9);
}

struct flag_on_destroy {
  std::atomic<bool>* flag;
  flag_on_destroy(std::atomic<bool>* f) : flag(f) {}
  flag_on_destroy(flag_on_destroy&& o) noexcept : flag(std::exchange(o.flag, nullptr)) {}
  ~flag_on_destroy() {
    if (flag) flag->store(true);
  }
};

task<int> owns_a_resource(flag_on_destroy owned) {
  (void)owned;
  co_return 7;
}

task<bool> finished_task_releases_its_parameters() {
  std::atomic<bool> released{false};
  auto h = spawn(owns_a_resource(flag_on_destroy(&released)));
  while (!h.is_finished()) co_await yield_now();
  bool released_before_join = released.load();  // the handle is still alive and unawaited
  auto r = co_await h;
  co_return released_before_join&& r&&* r == 7;
}

// As in Tokio, a task's data is dropped when it finishes, not when its handle goes away.
TEST_P(task_test, a_finished_task_releases_what_it_owns_before_its_handle_is_awaited) {
  EXPECT_TRUE(rt_.block_on(finished_task_releases_its_parameters()));
}

// A temporary awaiter with a destructor, awaited in a loop condition: g++ 12 lays the frame out
// wrongly. The runtime must refuse it loudly instead of resuming garbage.
struct temporary_awaiter {
  int* countdown;
  bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  bool await_resume() const noexcept { return (*countdown)-- > 0; }
  ~temporary_awaiter() {}
};
task<> loop_on_temporary_awaiter(int* countdown) {
  while (co_await temporary_awaiter{countdown}) {
  }
}

TEST(task_layout, a_miscompiled_frame_is_refused_at_creation_with_the_fix_in_the_message) {
  int countdown = 3;
  EXPECT_DEATH((void)loop_on_temporary_awaiter(&countdown), "while \\(co_await expr\\)");
}

TEST(runtime_shutdown, cancels_pending_tasks_and_reports_it_in_their_handles) {
  std::atomic<bool> stop{false};
  std::atomic<int> polls{0};
  join_handle<void> h;
  {
    runtime rt(both_flavors(1));
    h = rt.spawn(spin_yielding(&stop, &polls));
    while (polls.load() < 3) std::this_thread::yield();
    rt.shutdown();
    EXPECT_TRUE(h.is_finished());
  }
  // The handle outlives the runtime and still owns the header.
  EXPECT_TRUE(h.is_finished());
}

// A coroutine lambda's captures outlive the lambda object when the lambda itself is spawned.
TEST_P(task_test, a_spawned_capturing_lambda_keeps_its_captures_for_the_task) {
  auto h =
      rt_.spawn([s = std::string(1000, 'x'), n = std::vector<int>{1, 2, 3}]() -> task<std::size_t> {
        co_await yield_now();  // the temporary lambda is long gone by now
        co_return s.size() + n.size();
      });
  EXPECT_EQ(rt_.block_on([](join_handle<std::size_t> j) -> task<std::size_t> {
    co_return *co_await std::move(j);
  }(std::move(h))),
            1003u);
  EXPECT_EQ(rt_.block_on([]() -> task<int> {
    int base = 40;
    auto inner = spawn([base]() -> task<int> {
      co_await yield_now();
      co_return base + 2;
    });
    co_return *co_await std::move(inner);
  }()),
            42);
}

// current_thread: block_on runs its task, and every task spawned meanwhile, on the calling thread;
// between block_on calls the runtime's own thread keeps serving spawned tasks.
task<std::pair<bool, bool>> where_things_run(std::thread::id caller) {
  const bool here = std::this_thread::get_id() == caller;
  auto child = spawn([caller]() -> task<bool> {
    co_await yield_now();
    co_return std::this_thread::get_id() == caller;
  });
  co_return std::pair(here, *co_await std::move(child));
}

TEST(block_on_current_thread, runs_on_the_calling_thread_and_the_runtime_still_serves_without_it) {
  runtime_options o;
  o.kind = flavor::current_thread;
  runtime rt(o);
  auto [task_here, child_here] = rt.block_on(where_things_run(std::this_thread::get_id()));
  EXPECT_TRUE(task_here);
  EXPECT_TRUE(child_here);
  // No one is in block_on now: a task spawned from outside still runs (on the runtime's thread).
  std::atomic<bool> ran{false};
  std::atomic<std::thread::id> ran_on{};
  auto h = rt.spawn([](std::atomic<bool>* r, std::atomic<std::thread::id>* on) -> task<> {
    on->store(std::this_thread::get_id());
    r->store(true);
    co_return;
  }(&ran, &ran_on));
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!ran.load() && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
  EXPECT_TRUE(ran.load());
  EXPECT_NE(ran_on.load(), std::this_thread::get_id());
  // And block_on again, from another thread, takes the seat again.
  std::thread other([&] {
    auto [a, b] = rt.block_on(where_things_run(std::this_thread::get_id()));
    EXPECT_TRUE(a && b);
  });
  other.join();
}

}  // namespace
}  // namespace shoal::rt
