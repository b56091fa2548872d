// Txn: compares, branches, one revision, atomicity, and what watchers see.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "tests/e2e/shoald_process.h"

namespace shoal::testing {
namespace {

class txn_test : public ::testing::Test {
 protected:
  shoald_process server_{{"--max_txn_ops=5"}};
  std::unique_ptr<v1::KV::Stub> kv_ = server_.kv();

  uint64_t put(const std::string& k, const std::string& v) {
    v1::PutRequest p;
    p.set_key(k);
    p.set_value(v);
    v1::PutResponse r;
    EXPECT_TRUE(kv_->Put(ctx().get(), p, &r).ok());
    return r.entry().mod_revision();
  }
  grpc::Status txn(const v1::TxnRequest& req, v1::TxnResponse* resp) {
    return kv_->Txn(ctx().get(), req, resp);
  }
};

v1::Compare compare(const std::string& key, v1::Compare::Target t, v1::Compare::Result r) {
  v1::Compare c;
  c.set_key(key);
  c.set_target(t);
  c.set_result(r);
  return c;
}
void add_put(google::protobuf::RepeatedPtrField<v1::Op>* ops, const std::string& k,
             const std::string& v) {
  auto* p = ops->Add()->mutable_put();
  p->set_key(k);
  p->set_value(v);
}
void add_get(google::protobuf::RepeatedPtrField<v1::Op>* ops, const std::string& k) {
  ops->Add()->mutable_get()->set_key(k);
}

TEST_F(txn_test, a_branch_writes_every_key_in_one_revision_and_reads_see_its_own_writes) {
  const uint64_t a_rev = put("a", "10");
  put("b", "0");
  v1::TxnRequest req;
  auto c = compare("a", v1::Compare::MOD_REVISION, v1::Compare::EQUAL);
  c.set_number(static_cast<int64_t>(a_rev));
  *req.add_compares() = c;
  add_put(req.mutable_success(), "a", "5");
  add_put(req.mutable_success(), "b", "5");
  add_get(req.mutable_success(), "a");
  add_get(req.mutable_failure(), "a");
  v1::TxnResponse resp;
  ASSERT_TRUE(txn(req, &resp).ok());
  EXPECT_TRUE(resp.succeeded());
  EXPECT_EQ(resp.revision(), 3u) << "one revision for both writes";
  ASSERT_EQ(resp.results_size(), 3);
  EXPECT_EQ(resp.results(0).put().entry().mod_revision(), 3u);
  EXPECT_EQ(resp.results(1).put().entry().mod_revision(), 3u);
  EXPECT_EQ(resp.results(2).get().entry().value(), "5");
  EXPECT_EQ(resp.header().revision(), 3u);

  // The same compare no longer holds: the failure branch runs, and only reads: no revision.
  ASSERT_TRUE(txn(req, &resp).ok());
  EXPECT_FALSE(resp.succeeded());
  EXPECT_EQ(resp.revision(), 0u);
  ASSERT_EQ(resp.results_size(), 1);
  EXPECT_EQ(resp.results(0).get().entry().value(), "5");
  EXPECT_EQ(resp.header().revision(), 3u);
}

TEST_F(txn_test, a_range_inside_a_txn_sees_the_txn_own_writes_in_order_and_pages) {
  put("r/b", "old");
  v1::TxnRequest req;
  add_put(req.mutable_success(), "r/a", "1");
  add_put(req.mutable_success(), "r/b", "2");
  req.mutable_success()->Add()->mutable_delete_()->set_key("r/c");
  auto* range = req.mutable_success()->Add()->mutable_range();
  range->set_prefix("r/");
  range->set_limit(1);
  auto* all = req.mutable_success()->Add()->mutable_range();
  all->set_prefix("r/");
  v1::TxnResponse resp;
  auto st = txn(req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(resp.results_size(), 5);
  const auto& first_page = resp.results(3).range();
  ASSERT_EQ(first_page.entries_size(), 1);
  EXPECT_EQ(first_page.entries(0).key(), "r/a");
  EXPECT_FALSE(first_page.continuation().empty());
  const auto& whole = resp.results(4).range();
  ASSERT_EQ(whole.entries_size(), 2);
  EXPECT_EQ(whole.entries(1).value(), "2");
  EXPECT_EQ(whole.entries(1).mod_revision(), resp.revision());
  EXPECT_TRUE(whole.continuation().empty());

  v1::TxnRequest counting;
  counting.mutable_success()->Add()->mutable_range()->set_count_only(true);
  counting.mutable_success(0)->mutable_range()->set_prefix("r/");
  EXPECT_EQ(txn(counting, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(txn_test, every_compare_target_and_result) {
  put("k", "m");  // revision 1, version 1
  put("k", "m");  // revision 2, version 2
  struct tcase {
    v1::Compare c;
    bool holds;
  };
  auto with = [](v1::Compare c, auto set) {
    set(c);
    return c;
  };
  using C = v1::Compare;
  const std::vector<tcase> cases = {
      {with(compare("k", C::VALUE, C::EQUAL), [](C& c) { c.set_value("m"); }), true},
      {with(compare("k", C::VALUE, C::LESS), [](C& c) { c.set_value("n"); }), true},
      {with(compare("k", C::VALUE, C::GREATER), [](C& c) { c.set_value("n"); }), false},
      {with(compare("absent", C::VALUE, C::NOT_EQUAL), [](C& c) { c.set_value(""); }), true},
      {with(compare("k", C::VERSION, C::EQUAL), [](C& c) { c.set_number(2); }), true},
      {with(compare("k", C::VERSION, C::GREATER), [](C& c) { c.set_number(2); }), false},
      {with(compare("k", C::CREATE_REVISION, C::EQUAL), [](C& c) { c.set_number(1); }), true},
      {with(compare("k", C::MOD_REVISION, C::LESS), [](C& c) { c.set_number(3); }), true},
      {with(compare("k", C::MOD_REVISION, C::NOT_EQUAL), [](C& c) { c.set_number(2); }), false},
      {with(compare("k", C::EXISTS, C::EQUAL), [](C& c) { c.set_exists(true); }), true},
      {with(compare("absent", C::EXISTS, C::EQUAL), [](C& c) { c.set_exists(false); }), true},
      {with(compare("absent", C::VERSION, C::EQUAL), [](C& c) { c.set_number(0); }), true},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    v1::TxnRequest req;
    *req.add_compares() = cases[i].c;
    v1::TxnResponse resp;
    ASSERT_TRUE(txn(req, &resp).ok());
    EXPECT_EQ(resp.succeeded(), cases[i].holds) << "case " << i << ": " << cases[i].c.DebugString();
  }
}

TEST_F(txn_test, bad_transactions_are_invalid_argument_and_a_failing_operation_writes_nothing) {
  auto status_of = [&](const v1::TxnRequest& req) {
    v1::TxnResponse resp;
    return txn(req, &resp);
  };
  v1::TxnRequest twice;
  add_put(twice.mutable_success(), "x", "1");
  twice.mutable_success()->Add()->mutable_delete_()->set_key("x");
  auto st = status_of(twice);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("twice"), std::string::npos) << st.error_message();

  v1::TxnRequest exists_less;
  *exists_less.add_compares() = compare("x", v1::Compare::EXISTS, v1::Compare::LESS);
  EXPECT_EQ(status_of(exists_less).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  v1::TxnRequest too_many;
  for (int i = 0; i < 6; ++i) add_get(too_many.mutable_success(), "k" + std::to_string(i));
  st = status_of(too_many);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("max_txn_ops"), std::string::npos);

  v1::TxnRequest conditional;
  add_put(conditional.mutable_success(), "x", "1");
  conditional.mutable_success(0)->mutable_put()->mutable_condition()->set_if_absent(true);
  EXPECT_EQ(status_of(conditional).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // An increment of text fails the whole Txn: the put before it is not applied.
  put("word", "text");
  v1::TxnRequest partial;
  add_put(partial.mutable_success(), "y", "1");
  partial.mutable_success()->Add()->mutable_increment()->set_key("word");
  EXPECT_EQ(status_of(partial).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  v1::GetRequest g;
  g.set_key("y");
  v1::GetResponse gr;
  ASSERT_TRUE(kv_->Get(ctx().get(), g, &gr).ok());
  EXPECT_FALSE(gr.found());
  EXPECT_EQ(gr.header().revision(), 1u) << "no revision was taken";
}

TEST_F(txn_test, a_watcher_gets_all_of_a_txn_in_one_response_with_one_revision) {
  v1::WatchRequest wr;
  wr.set_key("w/");
  wr.set_prefix(true);
  wr.set_start_revision(1);
  auto c = ctx();
  auto stream = kv_->Watch(c.get(), wr);
  v1::TxnRequest req;
  add_put(req.mutable_success(), "w/1", "a");
  add_put(req.mutable_success(), "w/2", "b");
  add_put(req.mutable_success(), "other", "not watched");
  add_put(req.mutable_success(), "w/3", "c");
  v1::TxnResponse resp;
  ASSERT_TRUE(txn(req, &resp).ok());
  put("w/after", "x");
  v1::WatchResponse w;
  ASSERT_TRUE(stream->Read(&w));
  ASSERT_EQ(w.events_size(), 3) << w.DebugString();
  for (const auto& e : w.events()) EXPECT_EQ(e.revision(), 1u);
  EXPECT_EQ(w.events(0).entry().key(), "w/1");
  EXPECT_EQ(w.events(2).entry().key(), "w/3");
  c->TryCancel();
}

TEST_F(txn_test, concurrent_transfers_keep_the_sum_in_every_txn_read) {
  constexpr int k_accounts = 4, k_writers = 4, k_transfers = 60;
  for (int i = 0; i < k_accounts; ++i) put("acct/" + std::to_string(i), "100");
  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, bad_reads{0};
  auto read_all = [&](v1::KV::Stub& kv, std::vector<int64_t>* values, std::vector<uint64_t>* revs) {
    v1::TxnRequest req;
    for (int i = 0; i < k_accounts; ++i)
      add_get(req.mutable_success(), "acct/" + std::to_string(i));
    v1::TxnResponse resp;
    EXPECT_TRUE(kv.Txn(ctx().get(), req, &resp).ok());
    for (const auto& r : resp.results()) {
      values->push_back(std::stoll(r.get().entry().value()));
      revs->push_back(r.get().entry().mod_revision());
    }
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < k_writers; ++w) {
    threads.emplace_back([&, w] {
      auto kv = server_.kv();
      for (int t = 0; t < k_transfers; ++t) {
        const int from = (w + t) % k_accounts, to = (w + t + 1) % k_accounts;
        for (;;) {  // read, then write if nothing changed in between
          std::vector<int64_t> v;
          std::vector<uint64_t> rev;
          read_all(*kv, &v, &rev);
          v1::TxnRequest req;
          for (int acct : {from, to}) {
            auto c = compare("acct/" + std::to_string(acct), v1::Compare::MOD_REVISION,
                             v1::Compare::EQUAL);
            c.set_number(static_cast<int64_t>(rev[acct]));
            *req.add_compares() = c;
          }
          add_put(req.mutable_success(), "acct/" + std::to_string(from),
                  std::to_string(v[from] - 1));
          add_put(req.mutable_success(), "acct/" + std::to_string(to), std::to_string(v[to] + 1));
          v1::TxnResponse resp;
          ASSERT_TRUE(kv->Txn(ctx().get(), req, &resp).ok());
          if (resp.succeeded()) break;
        }
      }
    });
  }
  threads.emplace_back([&] {
    auto kv = server_.kv();
    while (!done) {
      std::vector<int64_t> v;
      std::vector<uint64_t> rev;
      read_all(*kv, &v, &rev);
      int64_t sum = 0;
      for (int64_t x : v) sum += x;
      ++reads;
      if (sum != 100 * k_accounts) ++bad_reads;
    }
  });
  for (int w = 0; w < k_writers; ++w) threads[w].join();
  done = true;
  threads.back().join();
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(bad_reads.load(), 0) << "a reader saw half of a transfer";
}

}  // namespace
}  // namespace shoal::testing
