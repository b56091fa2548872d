// Linearizability of Txn, checked from the outside: clients transfer units between counters with
// compare-and-swap Txns while others read every counter in one Txn. Revisions are the witness
// order: replaying the writes in revision order must reproduce every read, and an operation that
// finished before another began must not have a later revision. shoald-nonatomic-txn, a test-only
// build, makes the server's Txn non-atomic, and the same check must then fail: it is able to.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

#include "tests/e2e/shoald_process.h"

namespace shoal::testing {
namespace {

constexpr int k_accounts = 4;
using clk = std::chrono::steady_clock;

std::string account(int i) { return "acct/" + std::to_string(i); }

struct op {
  bool write = false;
  clk::time_point start, end;
  uint64_t witness = 0;  // write: its revision; read: the newest mod_revision it saw
  std::map<std::string, std::string> values;  // written, or read
};

class history {
 public:
  void add(op o) {
    std::lock_guard lock(mu_);
    ops_.push_back(std::move(o));
  }
  // The violations found (empty: the history is linearizable in revision order).
  std::vector<std::string> check() {
    std::lock_guard lock(mu_);
    std::vector<std::string> problems;
    std::vector<const op*> order;
    for (const auto& o : ops_) order.push_back(&o);
    std::stable_sort(order.begin(), order.end(), [](const op* a, const op* b) {
      return a->witness != b->witness ? a->witness < b->witness : a->write > b->write;
    });
    std::map<std::string, std::string> model;
    for (const op* o : order) {
      if (o->write) {
        for (const auto& [k, v] : o->values) model[k] = v;
        continue;
      }
      for (const auto& [k, v] : o->values) {
        if (model[k] != v) {
          problems.push_back("a read at revision " + std::to_string(o->witness) + " saw " + k +
                             " = " + v + "; replaying the writes gives " + model[k]);
          break;
        }
      }
    }
    for (const auto& a : ops_) {
      for (const auto& b : ops_) {
        if (a.end < b.start && a.witness > b.witness) {
          problems.push_back("an operation at revision " + std::to_string(a.witness) +
                             " finished before one at revision " + std::to_string(b.witness) +
                             " began");
        }
      }
    }
    return problems;
  }
  std::size_t size() {
    std::lock_guard lock(mu_);
    return ops_.size();
  }

 private:
  std::mutex mu_;
  std::vector<op> ops_;
};

v1::TxnRequest read_all() {
  v1::TxnRequest req;
  for (int i = 0; i < k_accounts; ++i) req.add_success()->mutable_get()->set_key(account(i));
  return req;
}

// Runs transfers and readers against `s` until `enough` says stop; returns the history.
void run(shoald_process& s, history& h, const std::function<bool()>& enough) {
  auto kv = s.kv();
  for (int i = 0; i < k_accounts; ++i) {
    v1::PutRequest p;
    p.set_key(account(i));
    p.set_value("100");
    v1::PutResponse r;
    ASSERT_TRUE(kv->Put(ctx().get(), p, &r).ok());
    h.add(op{true, clk::now(), clk::now(), r.entry().mod_revision(), {{account(i), "100"}}});
  }
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      auto stub = s.kv();
      for (int n = 0; !stop; ++n) {
        const int a = (w + n) % k_accounts, b = (w + n + 1) % k_accounts;
        v1::TxnResponse seen;
        if (!stub->Txn(ctx().get(), read_all(), &seen).ok()) return;
        const auto& ea = seen.results(a).get().entry();
        const auto& eb = seen.results(b).get().entry();
        v1::TxnRequest cas;
        for (const auto* e : {&ea, &eb}) {
          v1::Compare* c = cas.add_compares();
          c->set_key(e->key());
          c->set_target(v1::Compare::MOD_REVISION);
          c->set_number(static_cast<int64_t>(e->mod_revision()));
        }
        const std::string va = std::to_string(std::stoll(ea.value()) - 1);
        const std::string vb = std::to_string(std::stoll(eb.value()) + 1);
        for (const auto& [k, v] : {std::pair{account(a), va}, std::pair{account(b), vb}}) {
          auto* p = cas.add_success()->mutable_put();
          p->set_key(k);
          p->set_value(v);
        }
        op o{true, clk::now(), {}, 0, {{account(a), va}, {account(b), vb}}};
        v1::TxnResponse done;
        if (!stub->Txn(ctx().get(), cas, &done).ok()) return;
        o.end = clk::now();
        o.witness = done.revision();
        if (done.succeeded()) h.add(std::move(o));
      }
    });
  }
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&] {
      auto stub = s.kv();
      while (!stop) {
        op o{false, clk::now(), {}, 0, {}};
        v1::TxnResponse resp;
        if (!stub->Txn(ctx().get(), read_all(), &resp).ok()) return;
        o.end = clk::now();
        for (const auto& res : resp.results()) {
          o.values[res.get().entry().key()] = res.get().entry().value();
          o.witness = std::max(o.witness, res.get().entry().mod_revision());
        }
        h.add(std::move(o));
      }
    });
  }
  while (!enough()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  stop = true;
  for (auto& t : threads) t.join();
}

TEST(linearizability, concurrent_transfers_and_reads_replay_in_revision_order) {
  shoald_process s;
  history h;
  run(s, h, [&] { return h.size() > 3000; });
  const auto problems = h.check();
  EXPECT_TRUE(problems.empty()) << problems.size() << " violations, first: " << problems.front();
}

TEST(linearizability, the_check_catches_a_txn_that_is_not_atomic) {
  shoald_process s(SHOALD_NONATOMIC_TXN_PATH, {});
  history h;
  // Run until the check fails (a read lands between the two puts of a transfer), for at most
  // 20 seconds.
  const auto deadline = clk::now() + std::chrono::seconds(20);
  std::size_t checked_at = 0;
  bool caught = false;
  run(s, h, [&] {
    if (h.size() < checked_at + 2000 && clk::now() < deadline) return false;
    checked_at = h.size();
    caught = !h.check().empty();
    return caught || clk::now() >= deadline;
  });
  EXPECT_TRUE(caught) << "the check passed a non-atomic Txn over " << h.size() << " operations";
}

TEST(linearizability, the_server_binary_holds_no_test_only_txn) {
  // The broken Txn lives in a test-only build; shoald has neither it nor a switch for it.
  std::ifstream in(shoald_path(), std::ios::binary);
  const std::string image((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(image.size(), 1'000'000u);
  EXPECT_EQ(image.find("the testing Txn"), std::string::npos);
  EXPECT_EQ(image.find("NONATOMIC"), std::string::npos);
  std::ifstream test_build(SHOALD_NONATOMIC_TXN_PATH, std::ios::binary);
  const std::string test_image((std::istreambuf_iterator<char>(test_build)),
                               std::istreambuf_iterator<char>());
  EXPECT_NE(test_image.find("the testing Txn"), std::string::npos);
}

}  // namespace
}  // namespace shoal::testing
