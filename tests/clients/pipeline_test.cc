// The C++ library's Pipeline stream: ids, order, a window, two threads, and closing early.
#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "clients/cpp/client.h"
#include "tests/clients/client_options.h"
#include "tests/e2e/ops.h"
#include "tests/e2e/shoald_process.h"

namespace shoal::client {
namespace {

using testing::get_op;
using testing::put_op;

TEST(client_pipeline, run_sends_within_a_window_and_hands_over_the_replies_in_order) {
  testing::shoald_process server;
  client kv(at(server.address()));
  std::vector<v1::Op> ops;
  for (int i = 0; i < 500; ++i) {
    ops.push_back(put_op("p/" + std::to_string(i), std::to_string(i)));
    ops.push_back(get_op("p/" + std::to_string(i)));
  }
  uint64_t expected_id = 1;
  int gets = 0;
  pipeline p = kv.open_pipeline();
  const absl::Status st = p.run(ops, 8, [&](const v1::PipelineResponse& r) {
    EXPECT_EQ(r.id(), expected_id++);
    if (r.result().has_get()) {
      EXPECT_EQ(r.result().get().entry().value(), std::to_string(gets++)) << "after its put";
    }
  });
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_EQ(gets, 500);
  EXPECT_EQ(p.outstanding(), 0u);
}

TEST(client_pipeline, one_thread_sends_while_another_receives) {
  testing::shoald_process server;
  client kv(at(server.address()));
  pipeline p = kv.open_pipeline();
  constexpr int k_batches = 300;
  std::thread sender([&] {
    for (int i = 0; i < k_batches; ++i) {
      v1::BatchRequest b;
      for (int j = 0; j < 16; ++j) {
        v1::Op* op = b.add_ops();
        op->mutable_increment()->set_key("p/n");
        op->mutable_increment()->set_delta(1);
      }
      ASSERT_TRUE(p.send(b).ok());
    }
  });
  int64_t last = 0;
  for (int i = 0; i < k_batches; ++i) {
    // The sender may not have sent yet: wait for something to receive.
    while (p.outstanding() == 0) std::this_thread::yield();
    auto r = p.receive();
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->batch().results_size(), 16);
    EXPECT_EQ(r->batch().results(15).increment().value(), last + 16) << "batches in order";
    last = r->batch().results(15).increment().value();
  }
  sender.join();
  EXPECT_EQ(last, 16 * k_batches);
  EXPECT_TRUE(p.close().ok());
}

TEST(client_pipeline, close_drops_unread_replies_and_receive_needs_a_request) {
  testing::shoald_process server;
  client kv(at(server.address()));
  pipeline p = kv.open_pipeline();
  EXPECT_EQ(p.receive().status().code(), absl::StatusCode::kFailedPrecondition);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(p.send(put_op("p/c", "v")).ok());
  EXPECT_TRUE(p.close().ok()) << "the server answered all twenty; nobody read them";
  EXPECT_EQ(p.send(get_op("p/c")).status().code(), absl::StatusCode::kFailedPrecondition);
  auto got = kv.get("p/c");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->version(), 20);
}

}  // namespace
}  // namespace shoal::client
