// KV's unary methods against a real shoald: every option, every bad input.
#include <gtest/gtest.h>

#include <string>

#include "tests/e2e/shoald_process.h"

namespace shoal {
namespace {

using testing::ctx;
using testing::shoald_process;

class kv_test : public ::testing::Test {
 protected:
  shoald_process server_{{"--max_key_bytes=64", "--max_value_bytes=1024"}};
  std::unique_ptr<v1::KV::Stub> kv_ = server_.kv();

  v1::PutResponse put(const std::string& k, const std::string& v, grpc::Status* st = nullptr) {
    v1::PutRequest req;
    req.set_key(k);
    req.set_value(v);
    v1::PutResponse resp;
    grpc::Status s = kv_->Put(ctx().get(), req, &resp);
    if (st)
      *st = s;
    else
      EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }
  v1::GetResponse get(const std::string& k) {
    v1::GetRequest req;
    req.set_key(k);
    v1::GetResponse resp;
    EXPECT_TRUE(kv_->Get(ctx().get(), req, &resp).ok());
    return resp;
  }
};

TEST_F(kv_test, put_then_get_returns_the_value_and_its_revisions) {
  auto p = put("k", "v1");
  EXPECT_TRUE(p.applied());
  EXPECT_EQ(p.header().revision(), 1u);
  EXPECT_EQ(p.header().store_id().size(), 16u);
  EXPECT_EQ(p.entry().create_revision(), 1u);
  EXPECT_EQ(p.entry().version(), 1u);
  auto p2 = put("k", "v2");
  EXPECT_EQ(p2.entry().create_revision(), 1u);
  EXPECT_EQ(p2.entry().mod_revision(), 2u);
  EXPECT_EQ(p2.entry().version(), 2u);
  auto g = get("k");
  EXPECT_TRUE(g.found());
  EXPECT_EQ(g.entry().value(), "v2");
  EXPECT_EQ(g.header().store_id(), p.header().store_id());
}

TEST_F(kv_test, get_of_a_missing_key_is_found_false_not_an_error) {
  auto g = get("nope");
  EXPECT_FALSE(g.found());
  EXPECT_EQ(g.header().revision(), 0u);
}

TEST_F(kv_test, keys_and_values_are_bytes) {
  const std::string key("k\0\xff\x01", 4), value("\0\0\xfe", 3);
  put(key, value);
  auto g = get(key);
  ASSERT_TRUE(g.found());
  EXPECT_EQ(g.entry().value(), value);
}

TEST_F(kv_test, conditional_puts_answer_applied_false_with_the_current_entry) {
  put("k", "v1");
  v1::PutRequest req;
  req.set_key("k");
  req.set_value("v2");
  req.mutable_condition()->set_if_absent(true);
  v1::PutResponse resp;
  ASSERT_TRUE(kv_->Put(ctx().get(), req, &resp).ok());
  EXPECT_FALSE(resp.applied());
  EXPECT_EQ(resp.entry().value(), "v1");

  req.mutable_condition()->set_if_mod_revision(99);
  ASSERT_TRUE(kv_->Put(ctx().get(), req, &resp).ok());
  EXPECT_FALSE(resp.applied());

  req.mutable_condition()->set_if_mod_revision(1);
  req.set_return_previous(true);
  ASSERT_TRUE(kv_->Put(ctx().get(), req, &resp).ok());
  EXPECT_TRUE(resp.applied());
  EXPECT_EQ(resp.previous().value(), "v1");
  EXPECT_EQ(resp.entry().mod_revision(), 2u);
  EXPECT_EQ(resp.entry().version(), 2u);
  EXPECT_TRUE(resp.entry().value().empty()) << "an applied put does not echo the value back";

  req.set_key("absent");
  req.mutable_condition()->set_if_present(true);
  ASSERT_TRUE(kv_->Put(ctx().get(), req, &resp).ok());
  EXPECT_FALSE(resp.applied());
  EXPECT_FALSE(get("absent").found());
}

TEST_F(kv_test, a_compare_and_swap_naming_another_store_fails_out_of_range) {
  put("k", "v");
  v1::PutRequest req;
  req.set_key("k");
  req.set_value("w");
  req.mutable_condition()->set_if_mod_revision(1);
  req.mutable_condition()->set_store_id("0000000000000000");
  v1::PutResponse resp;
  auto st = kv_->Put(ctx().get(), req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_NE(st.error_message().find("restarted"), std::string::npos);
}

TEST_F(kv_test, delete_one_key_conditionally_and_by_prefix) {
  put("a/1", "x");
  put("a/2", "y");
  put("b/1", "z");
  v1::DeleteRequest del;
  del.set_key("a/1");
  del.mutable_condition()->set_if_mod_revision(42);
  v1::DeleteResponse resp;
  ASSERT_TRUE(kv_->Delete(ctx().get(), del, &resp).ok());
  EXPECT_FALSE(resp.applied());
  EXPECT_EQ(resp.current().value(), "x");

  del.clear_condition();
  del.set_return_previous(true);
  ASSERT_TRUE(kv_->Delete(ctx().get(), del, &resp).ok());
  EXPECT_TRUE(resp.applied());
  EXPECT_EQ(resp.deleted(), 1u);
  EXPECT_EQ(resp.previous(0).value(), "x");

  v1::DeleteRequest pre;
  pre.set_key("a/");
  pre.set_by_prefix(true);
  ASSERT_TRUE(kv_->Delete(ctx().get(), pre, &resp).ok());
  EXPECT_EQ(resp.deleted(), 1u);
  EXPECT_TRUE(get("b/1").found());
}

TEST_F(kv_test, deleting_everything_needs_the_explicit_flag) {
  put("a", "1");
  v1::DeleteRequest all;
  all.set_by_prefix(true);
  v1::DeleteResponse resp;
  auto st = kv_->Delete(ctx().get(), all, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(get("a").found());
  all.set_all_keys(true);
  ASSERT_TRUE(kv_->Delete(ctx().get(), all, &resp).ok());
  EXPECT_EQ(resp.deleted(), 1u);
  EXPECT_FALSE(get("a").found());
}

TEST_F(kv_test, increment_adds_to_decimal_integers_and_refuses_the_rest) {
  v1::IncrementRequest inc;
  inc.set_key("n");
  inc.set_delta(5);
  v1::IncrementResponse resp;
  ASSERT_TRUE(kv_->Increment(ctx().get(), inc, &resp).ok());
  EXPECT_EQ(resp.value(), 5);
  inc.set_delta(-7);
  ASSERT_TRUE(kv_->Increment(ctx().get(), inc, &resp).ok());
  EXPECT_EQ(resp.value(), -2);
  EXPECT_EQ(get("n").entry().value(), "-2");

  put("text", "12a");
  inc.set_key("text");
  EXPECT_EQ(kv_->Increment(ctx().get(), inc, &resp).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  put("big", "9223372036854775807");
  inc.set_key("big");
  inc.set_delta(1);
  EXPECT_EQ(kv_->Increment(ctx().get(), inc, &resp).error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(get("big").entry().value(), "9223372036854775807");
}

TEST_F(kv_test, range_pages_follow_the_continuation_in_key_order) {
  for (int i = 0; i < 25; ++i) put("r/" + std::to_string(100 + i), "v");
  put("s/0", "v");
  std::vector<std::string> keys;
  v1::RangeRequest req;
  req.set_prefix("r/");
  req.set_limit(7);
  for (;;) {
    v1::RangeResponse resp;
    ASSERT_TRUE(kv_->Range(ctx().get(), req, &resp).ok());
    EXPECT_LE(resp.entries_size(), 7);
    for (const auto& e : resp.entries()) keys.push_back(e.key());
    if (resp.continuation().empty()) break;
    req.set_continuation(resp.continuation());
  }
  ASSERT_EQ(keys.size(), 25u);
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  EXPECT_EQ(keys.front(), "r/100");
}

TEST_F(kv_test, range_by_interval_keys_only_and_count_only) {
  for (char c = 'a'; c <= 'f'; ++c) put(std::string(1, c), "value");
  v1::RangeRequest req;
  req.mutable_interval()->set_start("b");
  req.mutable_interval()->set_end("e");
  req.set_keys_only(true);
  v1::RangeResponse resp;
  ASSERT_TRUE(kv_->Range(ctx().get(), req, &resp).ok());
  ASSERT_EQ(resp.entries_size(), 3);
  EXPECT_EQ(resp.entries(0).key(), "b");
  EXPECT_EQ(resp.entries(2).key(), "d");
  EXPECT_TRUE(resp.entries(0).value().empty());
  req.set_count_only(true);
  ASSERT_TRUE(kv_->Range(ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.count(), 3u);
  EXPECT_EQ(resp.entries_size(), 0);
}

TEST_F(kv_test, bad_input_gets_invalid_argument_naming_the_limit) {
  grpc::Status st;
  put("", "v", &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  put(std::string(65, 'k'), "v", &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("max_key_bytes"), std::string::npos);
  put("k", std::string(1025, 'v'), &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("max_value_bytes"), std::string::npos);

  v1::PutRequest neg;
  neg.set_key("k");
  neg.set_ttl_ms(-1);
  v1::PutResponse resp;
  EXPECT_EQ(kv_->Put(ctx().get(), neg, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  v1::PutRequest cas;
  cas.set_key("k");
  cas.mutable_condition()->set_if_mod_revision(0);
  EXPECT_EQ(kv_->Put(ctx().get(), cas, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  v1::RangeRequest inverted;
  inverted.mutable_interval()->set_start("z");
  inverted.mutable_interval()->set_end("a");
  v1::RangeResponse rr;
  EXPECT_EQ(kv_->Range(ctx().get(), inverted, &rr).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::RangeRequest none;
  EXPECT_EQ(kv_->Range(ctx().get(), none, &rr).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  v1::WatchRequest w;  // empty key without prefix
  auto c = ctx();
  auto reader = kv_->Watch(c.get(), w);
  v1::WatchResponse wr;
  EXPECT_FALSE(reader->Read(&wr));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(kv_test, an_unknown_enum_value_is_invalid_argument) {
  v1::WatchRequest w;
  w.set_key("k");
  w.add_filters(static_cast<v1::WatchFilter>(7));  // a value this server does not know
  auto c = ctx();
  auto reader = kv_->Watch(c.get(), w);
  v1::WatchResponse wr;
  EXPECT_FALSE(reader->Read(&wr));
  auto st = reader->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("unknown watch filter 7"), std::string::npos);
}

TEST(kv_read_only, writes_are_refused_with_failed_precondition_while_reads_go_on) {
  shoald_process server({"--read_only"});
  auto kv = server.kv();
  v1::PutRequest req;
  req.set_key("k");
  req.set_value("v");
  v1::PutResponse resp;
  auto st = kv->Put(ctx().get(), req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("read-only"), std::string::npos);
  v1::GetRequest g;
  g.set_key("k");
  v1::GetResponse gr;
  EXPECT_TRUE(kv->Get(ctx().get(), g, &gr).ok());
}

}  // namespace
}  // namespace shoal
