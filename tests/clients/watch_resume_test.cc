// The client library's watcher across a dropped connection: every revision exactly once, in order.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "clients/cpp/client.h"
#include "tests/clients/client_options.h"
#include "tests/clients/tcp_proxy.h"
#include "tests/e2e/shoald_process.h"

namespace shoal::client {
namespace {

TEST(watch_resume, a_cut_connection_is_resumed_with_no_gap_and_no_duplicate) {
  testing::shoald_process server;
  testing::tcp_proxy proxy(server.address());
  client writer(at(server.address()));
  client through_proxy(at(proxy.address()));

  constexpr int k_writes = 1500;
  std::atomic<bool> cut_done{false};
  std::thread writes([&] {
    for (int i = 0; i < k_writes; ++i) {
      ASSERT_TRUE(writer.put("r/" + std::to_string(i), std::to_string(i)).ok());
      // Paced so that writes go on while the watcher is cut off and reconnecting.
      if (i % 10 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });

  watch_options wo;
  wo.key = "r/";
  wo.prefix = true;
  wo.from_revision = 1;
  auto w = through_proxy.watch(wo);
  for (int i = 0; i < k_writes; ++i) {
    auto e = w.next();
    ASSERT_TRUE(e.ok()) << e.status() << " after " << i << " events";
    ASSERT_EQ(e->revision(), static_cast<uint64_t>(i + 1)) << "a gap or a duplicate";
    ASSERT_EQ(e->entry().key(), "r/" + std::to_string(i));
    ASSERT_EQ(e->entry().value(), std::to_string(i));
    if (i == 300 || i == 900) proxy.cut();  // twice: the second cut hits a resumed stream
  }
  writes.join();
  EXPECT_GE(w.reconnects(), 2);
  EXPECT_GE(proxy.accepted(), 3) << "the watcher should have come back through new connections";
}

TEST(watch_resume, a_restarted_server_is_reported_as_compacted_not_silently_resumed) {
  auto first = std::make_unique<testing::shoald_process>();
  const std::string address = first->address();
  client kv(at(address));
  ASSERT_TRUE(kv.put("k", "1").ok());
  watch_options wo;
  wo.key = "k";
  wo.from_revision = 1;
  auto w = kv.watch(wo);
  ASSERT_TRUE(w.next().ok());

  // The server restarts at the same address with an empty store, and moves on to revision 2.
  ASSERT_EQ(first->terminate(), 0);
  first.reset();
  testing::shoald_process second({"--listen=" + address});
  client kv2(at(address));
  // Channels to one address share gRPC's connection to it, which may still be backing off from
  // the first server: wait until a read gets through before writing.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!kv2.get("k").ok() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(kv2.put("k", "new").ok());
  ASSERT_TRUE(kv2.put("k", "newer").ok());

  // Revision 2 of the new store is not the revision 2 this watcher waits for.
  auto e = w.next();
  ASSERT_FALSE(e.ok()) << "resumed into another store: " << e->DebugString();
  EXPECT_EQ(e.status().code(), absl::StatusCode::kOutOfRange) << e.status();
  EXPECT_TRUE(w.compacted());
}

}  // namespace
}  // namespace shoal::client
