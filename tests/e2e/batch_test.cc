// Batch: independent operations in one message, in order, each with its own result or error.
#include <gtest/gtest.h>

#include "tests/e2e/ops.h"
#include "tests/e2e/shoald_process.h"

namespace shoal::testing {
namespace {

TEST(batch, operations_run_in_order_each_with_its_result_and_a_failure_stops_nothing) {
  shoald_process s({"--max_batch_ops=8"});
  auto kv = s.kv();
  v1::BatchRequest req;
  *req.add_ops() = put_op("b/1", "one");
  *req.add_ops() = put_op("", "an empty key");         // fails alone
  req.add_ops()->mutable_get()->set_key("b/1");        // sees the first put
  req.add_ops()->mutable_increment()->set_key("b/1");  // not an integer
  v1::Op* incr = req.add_ops();
  incr->mutable_increment()->set_key("b/n");
  incr->mutable_increment()->set_delta(1);
  *req.add_ops() = put_op("b/2", "two");
  req.add_ops()->mutable_range()->set_prefix("b/");
  req.add_ops();  // names no operation
  v1::BatchResponse resp;
  ASSERT_TRUE(kv->Batch(ctx().get(), req, &resp).ok());
  ASSERT_EQ(resp.results_size(), 8);

  EXPECT_TRUE(resp.results(0).put().applied());
  EXPECT_EQ(resp.results(0).put().entry().mod_revision(), 1u);
  EXPECT_EQ(resp.results(1).error().code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(resp.results(1).error().message().find("key"), std::string::npos);
  EXPECT_EQ(resp.results(2).get().entry().value(), "one");
  EXPECT_EQ(resp.results(3).error().code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(resp.results(4).increment().value(), 1);
  EXPECT_EQ(resp.results(5).put().entry().mod_revision(), 3u) << "each write its own revision";
  ASSERT_EQ(resp.results(6).range().entries_size(), 3);
  EXPECT_EQ(resp.results(6).range().entries(2).key(), "b/n");
  EXPECT_EQ(resp.results(7).error().code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(resp.header().revision(), 3u);
}

TEST(batch, more_operations_than_the_limit_is_invalid_argument_and_nothing_runs) {
  shoald_process s({"--max_batch_ops=2"});
  auto kv = s.kv();
  v1::BatchRequest req;
  for (int i = 0; i < 3; ++i) *req.add_ops() = put_op("k" + std::to_string(i), "v");
  v1::BatchResponse resp;
  auto st = kv->Batch(ctx().get(), req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("max_batch_ops"), std::string::npos);
  v1::GetRequest g;
  g.set_key("k0");
  v1::GetResponse gr;
  ASSERT_TRUE(kv->Get(ctx().get(), g, &gr).ok());
  EXPECT_FALSE(gr.found());
}

}  // namespace
}  // namespace shoal::testing
