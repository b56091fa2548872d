// spawn_blocking and its pool.
#include "runtime/blocking.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "runtime/sync/notify.h"
#include "runtime/sync/select.h"
#include "tests/runtime/flavor_test.h"

namespace shoal::rt {
namespace {

using testing::flavor_test;
class blocking_test : public flavor_test {};
SHOAL_ALL_FLAVORS(blocking_test);

TEST_P(blocking_test, yields_the_closures_value_off_the_workers) {
  auto r = rt_.block_on([]() -> task<std::pair<int, bool>> {
    auto v = co_await spawn_blocking(
        [] { return std::pair(42, detail::tls.current_worker == nullptr); });
    co_return *v;
  }());
  EXPECT_EQ(r.first, 42);
  EXPECT_TRUE(r.second);  // the closure ran on a pool thread, not on a worker
}

TEST_P(blocking_test, reports_the_exception_the_closure_threw) {
  auto r = rt_.block_on([]() -> task<std::string> {
    auto h = spawn_blocking([]() -> int { throw std::runtime_error("disk on fire"); });
    auto v = co_await std::move(h);
    if (v || !v.error().is_panic()) co_return "no error";
    try {
      std::rethrow_exception(v.error().panic());
    } catch (const std::runtime_error& e) {
      co_return e.what();
    }
  }());
  EXPECT_EQ(r, "disk on fire");
}

// Closures that block do not hold up the workers: with more of them blocked than there are
// workers, an ordinary task still runs to the end.
TEST_P(blocking_test, workers_keep_running_tasks_while_closures_block) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> running{0};
  std::vector<join_handle<void>> blocked;
  for (int i = 0; i < 4; ++i) {
    blocked.push_back(spawn_blocking(rt_, [released, &running] {
      running.fetch_add(1);
      released.wait();
    }));
  }
  while (running.load() < 4) std::this_thread::yield();
  EXPECT_EQ(rt_.block_on([]() -> task<int> {
    co_await yield_now();
    co_return 7;
  }()),
            7);
  release.set_value();
  for (auto& h : blocked) {
    rt_.block_on([](join_handle<void> j) -> task<> { (void)co_await std::move(j); }(std::move(h)));
  }
}

runtime_options small_pool(std::size_t threads, std::size_t queue) {
  runtime_options o = testing::options_for(flavor::multi_thread);
  o.max_blocking_threads = threads;
  o.blocking_queue = queue;
  return o;
}

TEST(blocking_pool, never_runs_more_closures_at_once_than_it_has_threads) {
  runtime rt(small_pool(2, 1));
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> now{0}, most{0}, done{0};
  std::vector<join_handle<void>> hs;
  for (int i = 0; i < 6; ++i) {
    hs.push_back(spawn_blocking(rt, [&, released] {
      const int n = now.fetch_add(1) + 1;
      int m = most.load();
      while (n > m && !most.compare_exchange_weak(m, n)) {
      }
      released.wait();
      now.fetch_sub(1);
      done.fetch_add(1);
    }));
  }
  while (now.load() < 2) std::this_thread::yield();
  EXPECT_EQ(rt.core().blocking().threads(), 2u);
  release.set_value();
  for (auto& h : hs) {
    rt.block_on([](join_handle<void> j) -> task<> { (void)co_await std::move(j); }(std::move(h)));
  }
  EXPECT_EQ(done.load(), 6);
  EXPECT_EQ(most.load(), 2);
}

TEST(blocking_pool, a_closure_aborted_before_it_started_never_runs) {
  runtime rt(small_pool(1, 8));
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> first_running{false}, second_ran{false};
  auto first = spawn_blocking(rt, [&, released] {
    first_running.store(true);
    released.wait();
  });
  while (!first_running.load()) std::this_thread::yield();
  auto second = spawn_blocking(rt, [&] { second_ran.store(true); });
  second.abort();
  rt.block_on(
      [](join_handle<void> j) -> task<> { (void)co_await std::move(j); }(std::move(second)));
  release.set_value();
  // FIFO on one thread: once a later closure has run, the aborted one had its turn.
  auto third = spawn_blocking(rt, [] { return 3; });
  rt.block_on([](join_handle<void> a, join_handle<int> b) -> task<> {
    (void)co_await std::move(a);
    (void)co_await std::move(b);
  }(std::move(first), std::move(third)));
  EXPECT_FALSE(second_ran.load());
}

TEST(blocking_pool, shutdown_waits_for_running_closures_and_drops_the_rest) {
  auto rt = std::make_unique<runtime>(small_pool(1, 8));
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> order{0};
  std::atomic<int> running_finished_at{0}, shutdown_returned_at{0};
  std::atomic<bool> started{false}, queued_ran{false};
  (void)spawn_blocking(*rt, [&, released] {
    started.store(true);
    released.wait();
    running_finished_at.store(++order);
  });
  while (!started.load()) std::this_thread::yield();
  auto queued = spawn_blocking(*rt, [&] { queued_ran.store(true); });
  std::thread stopper([&] {
    rt->shutdown();
    shutdown_returned_at.store(++order);
  });
  // The shutdown cancels every task first, the one waiting for the queued closure among them;
  // only then is the running closure let go.
  while (!queued.is_finished()) std::this_thread::yield();
  release.set_value();
  stopper.join();
  EXPECT_EQ(running_finished_at.load(), 1);
  EXPECT_EQ(shutdown_returned_at.load(), 2);
  EXPECT_FALSE(queued_ran.load());
}

// A paused clock does not jump while a blocking closure runs: the timer below is not due.
TEST(blocking_paused, a_paused_clock_waits_for_running_closures) {
  runtime rt(testing::options_for(flavor::current_thread, /*paused=*/true));
  auto r = rt.block_on([]() -> task<bool> {
    auto slow = spawn_blocking([] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // real time passes
      return 1;
    });
    auto got = co_await timeout(std::chrono::seconds(1), [](join_handle<int> h) -> task<int> {
      co_return *co_await std::move(h);
    }(std::move(slow)));
    co_return got.ok();
  }());
  EXPECT_TRUE(r);
}

// Shutting the runtime down while a current_thread block_on is in progress ends that block_on
// (cancelled) and the shutdown, with the runtime's thread never running beside the caller.
TEST(block_on_shutdown, a_current_thread_runtime_shuts_down_under_a_block_on) {
  auto rt = std::make_unique<runtime>(testing::options_for(flavor::current_thread));
  std::atomic<bool> waiting{false}, cancelled{false};
  std::thread caller([&] {
    try {
      rt->block_on([](std::atomic<bool>* w) -> task<> {
        notify never;
        w->store(true);
        co_await never.notified();
      }(&waiting));
    } catch (const join_error& e) {
      cancelled.store(e.is_cancelled());
    }
  });
  while (!waiting.load()) std::this_thread::yield();
  rt->shutdown();
  caller.join();
  EXPECT_TRUE(cancelled.load());
  EXPECT_THROW(rt->block_on([]() -> task<> { co_return; }()), join_error);  // after: refused
}

}  // namespace
}  // namespace shoal::rt
