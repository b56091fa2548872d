// rw_lock and barrier.
#include "runtime/sync/rw_lock.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <vector>

#include "runtime/sync/barrier.h"
#include "runtime/sync/notify.h"
#include "tests/runtime/flavor_test.h"

namespace shoal::rt {
namespace {

using testing::flavor_test;
class rw_lock_test : public flavor_test {};
SHOAL_ALL_FLAVORS(rw_lock_test);

task<> read_and_hold(rw_lock<int>* l, std::atomic<int>* readers, notify* release) {
  auto g = co_await l->read();
  readers->fetch_add(1);
  co_await release->notified();
  readers->fetch_sub(1);
}

task<bool> readers_share_and_a_writer_waits_for_them() {
  rw_lock<int> l(1);
  std::atomic<int> readers{0};
  notify release;
  auto a = spawn(read_and_hold(&l, &readers, &release));
  auto b = spawn(read_and_hold(&l, &readers, &release));
  while (readers.load() < 2) co_await yield_now();  // two readers inside at once
  auto writer = spawn([](rw_lock<int>* lk, std::atomic<int>* r) -> task<int> {
    auto w = co_await lk->write();
    *w = 2;
    co_return r->load();  // readers inside while writing: must be 0
  }(&l, &readers));
  // A reader arriving after the writer queues behind it (fair): try_read fails.
  for (int i = 0; i < 10; ++i) co_await yield_now();
  const bool writer_waited = !writer.is_finished() && !l.try_read().has_value();
  release.notify_one();
  release.notify_one();
  (void)co_await a;
  (void)co_await b;
  auto inside = co_await writer;
  auto r = co_await l.read();
  co_return writer_waited&& inside.has_value() && *inside == 0 && *r == 2;
}

TEST_P(rw_lock_test, readers_share_the_lock_and_a_writer_waits_for_them_alone) {
  EXPECT_TRUE(rt_.block_on(readers_share_and_a_writer_waits_for_them()));
}

TEST_P(rw_lock_test, try_write_fails_while_anyone_reads) {
  rw_lock<std::string> l("a");
  {
    auto r = l.try_read();
    ASSERT_TRUE(r.has_value());
    EXPECT_FALSE(l.try_write().has_value());
  }
  auto w = l.try_write();
  ASSERT_TRUE(w.has_value());
  **w = "b";
  EXPECT_FALSE(l.try_read().has_value());
}

// ------------------------------------------------------------------------------------ barrier

task<int> arrive(barrier* b, std::atomic<int>* passed, int rounds) {
  int leads = 0;
  for (int i = 0; i < rounds; ++i) {
    auto r = co_await b->wait();
    passed->fetch_add(1);
    if (r.is_leader) ++leads;
  }
  co_return leads;
}

task<std::pair<int, int>> three_generations_of_four() {
  barrier b(4);
  std::atomic<int> passed{0};
  std::vector<join_handle<int>> hs;
  for (int i = 0; i < 4; ++i) hs.push_back(spawn(arrive(&b, &passed, 3)));
  int leaders = 0;
  for (auto& h : hs) leaders += *co_await h;
  co_return std::pair(leaders, passed.load());
}

TEST_P(rw_lock_test, a_barrier_releases_each_generation_together_with_one_leader) {
  auto [leaders, passed] = rt_.block_on(three_generations_of_four());
  EXPECT_EQ(leaders, 3);  // one per generation
  EXPECT_EQ(passed, 12);
}

task<bool> nobody_passes_early() {
  barrier b(3);
  std::atomic<int> passed{0};
  auto x = spawn(arrive(&b, &passed, 1));
  auto y = spawn(arrive(&b, &passed, 1));
  for (int i = 0; i < 20; ++i) co_await yield_now();
  const bool held = passed.load() == 0;
  auto z = spawn(arrive(&b, &passed, 1));
  for (int i = 0; i < 20; ++i) co_await yield_now();
  const bool released_by_three = passed.load() == 3;
  (void)co_await x;
  (void)co_await y;
  (void)co_await z;
  co_return held&& released_by_three;
}

TEST_P(rw_lock_test, a_barrier_holds_everyone_until_the_last_arrives) {
  EXPECT_TRUE(rt_.block_on(nobody_passes_early()));
}

task<bool> a_cancelled_arrival_is_taken_back() {
  barrier b(2);
  std::atomic<int> passed{0};
  auto quitter = spawn(arrive(&b, &passed, 1));
  for (int i = 0; i < 10; ++i) co_await yield_now();
  quitter.abort();
  (void)co_await quitter;
  // Had the cancelled arrival counted, this one would lead a generation of one.
  auto lone = spawn(arrive(&b, &passed, 1));
  for (int i = 0; i < 10; ++i) co_await yield_now();
  const bool still_waiting = !lone.is_finished();
  auto partner = spawn(arrive(&b, &passed, 1));
  (void)co_await lone;
  (void)co_await partner;
  co_return still_waiting&& passed.load() == 2;
}

TEST_P(rw_lock_test, a_cancelled_barrier_arrival_is_taken_back) {
  EXPECT_TRUE(rt_.block_on(a_cancelled_arrival_is_taken_back()));
}

}  // namespace
}  // namespace shoal::rt
