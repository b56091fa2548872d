// The C++ client on a replicated store: given every replica, it follows the leader — a
// follower's refusal sends a write to the replica it names, and when the leader dies the client
// finds the next one. Real replicas (tests/e2e/cluster.h), killed for real.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "clients/cpp/client.h"
#include "tests/e2e/cluster.h"

namespace shoal::testing {
namespace {

using namespace std::chrono_literals;

TEST(failover, the_client_follows_the_leader_through_a_kill) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "a process-level fault test: run in the Release build";
#endif
  cluster c(3);
  const int leader = c.leader();
  ASSERT_GE(leader, 0);
  // The list starts with a follower: the first write is refused there and sent on.
  const int f = (leader + 1) % 3;
  std::string targets = c.client_address(f);
  for (int i = 0; i < 3; ++i) {
    if (i != f) targets += "," + c.client_address(i);
  }
  client::options o;
  o.target = targets;
  o.max_attempts = 20;
  client::client kv(o);
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

}  // namespace
}  // namespace shoal::testing
