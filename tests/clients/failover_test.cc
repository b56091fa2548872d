// The C++ client on a replicated store: given every replica, it follows the leader — a
// follower's refusal sends a write to the replica it names, and when the leader dies the client
// finds the next one. Real replicas (tests/e2e/cluster.h), killed for real.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "clients/cpp/client.h"
#include "runtime/grpc/completion_queue_driver.h"
#include "runtime/runtime.h"
#include "tests/e2e/cluster.h"
#include "tests/e2e/ops.h"

namespace shoal::testing {
namespace {

using namespace std::chrono_literals;

// A client of every replica, `first` first (calls start there), patient through an election.
client::options options_for(const cluster& c, int first) {
  client::options o;
  o.target = c.client_address(first);
  for (int i = 0; i < c.size(); ++i) {
    if (i != first) o.target += "," + c.client_address(i);
  }
  o.max_attempts = 20;
  return o;
}

TEST(failover, the_client_follows_the_leader_through_a_kill) {
  SHOAL_RELEASE_ONLY("a process-level fault test");
  cluster c(3);
  const int leader = c.leader();
  ASSERT_GE(leader, 0);
  // The list starts with a follower: the first write is refused there and sent on.
  client::client kv(options_for(c, (leader + 1) % 3));
  ASSERT_TRUE(kv.setup().ok());
  auto put = kv.put("k", "1");
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(kv.current_target(), c.client_address(leader));

  c.kill(leader);
  // The next write waits out the election through the other replicas. A write on the dead
  // leader's broken connection may fail first (UNAVAILABLE: it cannot know whether it was sent,
  // so it is not sent again); the client has moved on, and the caller's retry lands.
  auto again = kv.put("k", "2");
  if (!again.ok()) {
    EXPECT_EQ(again.status().code(), absl::StatusCode::kUnavailable) << again.status();
    again = kv.put("k", "2");
  }
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_NE(kv.current_target(), c.client_address(leader));
  EXPECT_EQ(again->revision, put->revision + 1);
  auto got = kv.get("k");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->value(), "2");
  auto st = kv.status();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->replication().role(), "leader");
}

// A pipeline opened on a follower runs on the leader: the follower refuses its writes (nothing
// applied) naming the leader, and run() sends them there, from the first refused one, in order.
// Before, every write came back refused and the caller had to open another pipeline.
TEST(failover, a_pipeline_opened_on_a_follower_runs_on_the_leader) {
  SHOAL_RELEASE_ONLY("a process-level fault test");
  cluster c(3);
  const int leader = c.leader();
  ASSERT_GE(leader, 0);
  client::client kv(options_for(c, (leader + 1) % 3));
  ASSERT_TRUE(kv.setup().ok());
  // Each third op increments one counter; the others write a key and read it back.
  std::vector<v1::Op> ops;
  constexpr int k_rounds = 100;
  for (int i = 0; i < k_rounds; ++i) {
    ops.push_back(increment_op("pipe/counter", 1));
    ops.push_back(put_op("pipe/k" + std::to_string(i), "v" + std::to_string(i)));
    ops.push_back(get_op("pipe/k" + std::to_string(i)));
  }
  std::vector<v1::PipelineResponse> replies;
  const absl::Status st =
      kv.open_pipeline().run(ops, 16, [&](const v1::PipelineResponse& r) { replies.push_back(r); });
  ASSERT_TRUE(st.ok()) << st;
  ASSERT_EQ(replies.size(), ops.size());
  for (std::size_t i = 0; i < replies.size(); ++i) {
    const v1::PipelineResponse& r = replies[i];
    EXPECT_EQ(r.id(), i + 1);
    ASSERT_FALSE(r.result().has_error()) << "op " << i << ": " << r.result().error().message();
    if (i % 3 == 0) {
      EXPECT_EQ(r.result().increment().value(), static_cast<int64_t>(i / 3 + 1));
    }
    if (i % 3 == 2) {
      ASSERT_TRUE(r.result().get().found()) << "op " << i;
      EXPECT_EQ(r.result().get().entry().value(), "v" + std::to_string(i / 3));
    }
  }
  EXPECT_EQ(kv.current_target(), c.client_address(leader));
  // Every increment applied once.
  auto counter = kv.get("pipe/counter");
  ASSERT_TRUE(counter.ok()) << counter.status();
  ASSERT_TRUE(counter->has_value());
  EXPECT_EQ((*counter)->value(), std::to_string(k_rounds));

  // Given the follower alone, the client learns the leader from the refusal.
  client::options lone;
  lone.target = c.client_address((leader + 1) % 3);
  client::client one(lone);
  ASSERT_TRUE(one.setup().ok());
  std::vector<v1::PipelineResponse> more;
  const absl::Status st2 =
      one.open_pipeline().run({increment_op("pipe/counter", 1)}, 1,
                              [&](const v1::PipelineResponse& r) { more.push_back(r); });
  ASSERT_TRUE(st2.ok()) << st2;
  ASSERT_EQ(more.size(), 1u);
  ASSERT_FALSE(more[0].result().has_error()) << more[0].result().error().message();
  EXPECT_EQ(more[0].result().increment().value(), k_rounds + 1);
}

rt::runtime grpc_runtime() {
  rt::runtime_options o;
  o.workers = 2;
  o.make_driver = [](int) { return rt::grpc::completion_queue_driver::create(); };
  return rt::runtime(o);
}

// Calls `cancel` unless disarm() comes within `within`: a wait that would hang fails instead.
class watchdog {
 public:
  watchdog(std::chrono::seconds within, std::function<void()> cancel)
      : thread_([this, within, cancel = std::move(cancel)] {
          std::unique_lock lock(mu_);
          if (!cv_.wait_for(lock, within, [this] { return disarmed_; })) cancel();
        }) {}
  ~watchdog() { disarm(); }
  void disarm() {
    {
      std::lock_guard lock(mu_);
      disarmed_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool disarmed_ = false;
  std::thread thread_;
};

// The coroutine calls follow the cluster as the blocking ones do. Before, they stayed on the
// replica the blocking calls had last found, dead or not.
TEST(failover, coroutine_calls_follow_the_leader_through_a_kill) {
  SHOAL_RELEASE_ONLY("a process-level fault test");
  cluster c(3);
  const int leader = c.leader();
  ASSERT_GE(leader, 0);
  client::client kv(options_for(c, leader));
  ASSERT_TRUE(kv.setup().ok());
  rt::runtime rt = grpc_runtime();
  // A write whose connection broke may or may not have applied and is not sent again by the
  // client: the caller sends it again.
  const auto put_all = [&](int from, int to) {
    return rt.block_on([&]() -> rt::task<std::string> {
      for (int i = from; i < to; ++i) {
        const std::string key = "k/" + std::to_string(i);
        auto r = co_await kv.put_async(key, "v" + std::to_string(i));
        if (!r.ok()) r = co_await kv.put_async(key, "v" + std::to_string(i));
        if (!r.ok()) co_return key + ": " + std::string(r.status().message());
      }
      co_return "ok";
    }());
  };
  ASSERT_EQ(put_all(0, 3), "ok");
  c.kill(leader);
  ASSERT_EQ(put_all(3, 6), "ok");
  EXPECT_NE(kv.current_target(), c.client_address(leader));
  auto got = rt.block_on(kv.get_async("k/5"));
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->value(), "v5");
}

// A watcher whose replica died resumes on another one, with every revision once. Before, it
// waited for the dead replica to come back.
TEST(failover, a_watcher_resumes_on_another_replica_when_its_replica_dies) {
  SHOAL_RELEASE_ONLY("a process-level fault test");
  cluster c(3);
  const int leader = c.leader();
  ASSERT_GE(leader, 0);
  client::client kv(options_for(c, leader));  // the watcher's: no call of its own moves it on
  client::client writer(options_for(c, leader));
  ASSERT_TRUE(kv.setup().ok());
  const auto put_all = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      const std::string key = "w/" + std::to_string(i);
      auto r = writer.put(key, "v" + std::to_string(i));
      if (!r.ok()) r = writer.put(key, "v" + std::to_string(i));  // as above
      if (!r.ok()) return key + ": " + std::string(r.status().message());
    }
    return std::string("ok");
  };
  ASSERT_EQ(put_all(0, 5), "ok");
  client::watch_options wo;
  wo.key = "w/";
  wo.prefix = true;
  wo.from_revision = 1;
  client::watcher w = kv.watch(wo);
  watchdog dog(60s, [&] { w.cancel(); });
  std::set<std::string> seen;
  uint64_t last = 0;
  const auto read_until = [&](const std::string& key) {
    while (seen.count(key) == 0) {
      auto ev = w.next();
      if (!ev.ok()) return std::string(ev.status().message());
      if (ev->revision() != last + 1) {
        return "revision " + std::to_string(ev->revision()) + " after " + std::to_string(last);
      }
      last = ev->revision();
      seen.insert(ev->entry().key());
    }
    return std::string("ok");
  };
  ASSERT_EQ(read_until("w/4"), "ok");
  c.kill(leader);  // the watcher's replica: the client's first
  ASSERT_EQ(put_all(5, 10), "ok");
  EXPECT_EQ(read_until("w/9"), "ok");
  dog.disarm();
  EXPECT_GT(w.reconnects(), 0);
}

}  // namespace
}  // namespace shoal::testing
