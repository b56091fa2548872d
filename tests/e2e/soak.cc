// soak: one shoald under mixed load for a fixed count of operations, then checked whole.
//
//   scripts/dev.sh soak [operations]        (Release; default 200,000 operations)
//   build/tests/e2e/soak [operations] [max RSS in MiB, default 384]
//
// Four writers each own a part of the key space and keep a model of it (a plain map): Puts of
// values up to 256 KiB, Gets checked against the model, Deletes, Increments, Batches, Txns and
// Ranges. Beside them: watchers that join, read a while and leave, and watchers that never read;
// a Pipeline client that reads its 1 MiB replies slowly; and oversize requests (a 9 KB Batch of
// Gets of a 1 MiB value, a value over the limit). Passes when every answer is the one the model
// predicts, shoald's resident memory never exceeds the bound, and at the end a paged Range of
// every writer's keys equals its model. Not in CI (it takes minutes); run it after changes to
// the store, the watch hub, admission or the budgets.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/shoald_process.h"

namespace {

using namespace shoal;
using testing::ctx;
using testing::shoald_process;

constexpr int k_writers = 4;
constexpr int k_keys_per_writer = 500;
constexpr std::size_t k_big_value = 1 << 20;

std::atomic<int> failures{0};
std::atomic<bool> done{false};

void fail(const std::string& what) {
  if (failures.fetch_add(1) < 20) std::fprintf(stderr, "soak: %s\n", what.c_str());
}

void expect_ok(const grpc::Status& st, const char* call) {
  if (!st.ok())
    fail(std::string(call) + ": " + std::to_string(st.error_code()) + " " + st.error_message());
}

// One writer: its keys, its model, its share of the operations.
class writer {
 public:
  writer(int id, std::shared_ptr<grpc::Channel> ch)
      : id_(id), kv_(v1::KV::NewStub(ch)), rng_(static_cast<unsigned>(id) * 7919 + 1) {}

  void run(long operations) {
    for (long i = 0; i < operations && failures.load() < 20; ++i) step();
  }

  // The writer's keys as the server holds them (a paged Range) against the model.
  void verify() {
    std::map<std::string, std::string> got;
    v1::RangeRequest req;
    req.set_prefix(prefix());
    for (;;) {
      v1::RangeResponse resp;
      expect_ok(kv_->Range(ctx().get(), req, &resp), "final Range");
      for (const auto& e : resp.entries()) got[e.key()] = e.value();
      if (resp.continuation().empty()) break;
      req.set_continuation(resp.continuation());
    }
    if (got != model_) {
      fail("writer " + std::to_string(id_) + ": the store holds " + std::to_string(got.size()) +
           " keys, the model " + std::to_string(model_.size()));
    }
  }

  std::size_t keys() const { return model_.size(); }

 private:
  std::string prefix() const { return "s/" + std::to_string(id_) + "/"; }
  std::string key() { return prefix() + std::to_string(rng_() % k_keys_per_writer); }
  std::string counter() { return prefix() + "n" + std::to_string(rng_() % 10); }
  std::string value() {
    const std::size_t size = rng_() % 50 == 0 ? rng_() % (256 << 10) : rng_() % 256;
    return std::string(size, static_cast<char>('a' + rng_() % 26));
  }

  void step() {
    const unsigned r = rng_() % 100;
    if (r < 40) return put(key(), value());
    if (r < 55) return get(key());
    if (r < 65) return remove(key());
    if (r < 72) return increment(counter(), static_cast<int64_t>(rng_() % 2001) - 1000);
    if (r < 85) return batch();
    if (r < 92) return txn();
    if (r < 96) return oversize();
    return range();
  }

  void put(const std::string& k, const std::string& v) {
    v1::PutRequest req;
    req.set_key(k);
    req.set_value(v);
    v1::PutResponse resp;
    expect_ok(kv_->Put(ctx().get(), req, &resp), "Put");
    model_[k] = v;
  }

  void get(const std::string& k) {
    v1::GetRequest req;
    req.set_key(k);
    v1::GetResponse resp;
    expect_ok(kv_->Get(ctx().get(), req, &resp), "Get");
    check(k, resp.found(), resp.entry().value(), "Get");
  }

  void check(const std::string& k, bool found, const std::string& v, const char* call) {
    auto it = model_.find(k);
    if (found != (it != model_.end()) || (found && v != it->second)) {
      fail(std::string(call) + " of " + k + " differs from the model");
    }
  }

  void remove(const std::string& k) {
    v1::DeleteRequest req;
    req.set_key(k);
    v1::DeleteResponse resp;
    expect_ok(kv_->Delete(ctx().get(), req, &resp), "Delete");
    model_.erase(k);
  }

  void increment(const std::string& k, int64_t delta) {
    v1::IncrementRequest req;
    req.set_key(k);
    req.set_delta(delta);
    v1::IncrementResponse resp;
    expect_ok(kv_->Increment(ctx().get(), req, &resp), "Increment");
    auto it = model_.find(k);
    const int64_t want = (it == model_.end() ? 0 : std::stoll(it->second)) + delta;
    if (resp.value() != want) fail("Increment of " + k + " differs from the model");
    model_[k] = std::to_string(want);
  }

  void batch() {
    v1::BatchRequest req;
    std::vector<std::string> keys;
    for (int i = 0; i < 16; ++i) {
      keys.push_back(key());
      if (rng_() % 2 == 0) {
        auto* p = req.add_ops()->mutable_put();
        p->set_key(keys.back());
        p->set_value(value());
      } else {
        req.add_ops()->mutable_get()->set_key(keys.back());
      }
    }
    v1::BatchResponse resp;
    expect_ok(kv_->Batch(ctx().get(), req, &resp), "Batch");
    if (resp.results_size() != req.ops_size()) return fail("a Batch result is missing");
    for (int i = 0; i < req.ops_size(); ++i) {
      if (req.ops(i).has_put()) {
        model_[keys[i]] = req.ops(i).put().value();
      } else {
        check(keys[i], resp.results(i).get().found(), resp.results(i).get().entry().value(),
              "a Batch's Get");
      }
    }
  }

  // If `k` holds what the model says, write `yes`, else `no`: the model predicts the branch.
  void txn() {
    const std::string k = key(), yes = key(), no = key();
    auto it = model_.find(k);
    const bool holds = it != model_.end();
    v1::TxnRequest req;
    auto* c = req.add_compares();
    c->set_key(k);
    c->set_target(v1::Compare::VALUE);
    c->set_value(holds ? it->second : "");
    if (!holds) {
      c->set_target(v1::Compare::EXISTS);
      c->set_exists(false);
    }
    const std::string v = value();
    auto* s = req.add_success()->mutable_put();
    s->set_key(yes);
    s->set_value(v);
    auto* f = req.add_failure()->mutable_put();
    f->set_key(no);
    f->set_value(v);
    v1::TxnResponse resp;
    expect_ok(kv_->Txn(ctx().get(), req, &resp), "Txn");
    if (!resp.succeeded()) fail("a Txn whose compare held took the failure branch");
    model_[yes] = v;
  }

  // Requests that ask for more than a reply holds, or write more than a value may be.
  void oversize() {
    if (rng_() % 2 == 0) {
      v1::BatchRequest req;
      for (int i = 0; i < 1000; ++i) req.add_ops()->mutable_get()->set_key("big");
      v1::BatchResponse resp;
      expect_ok(kv_->Batch(ctx(std::chrono::milliseconds(30'000)).get(), req, &resp),
                "oversize Batch");
      const auto refused = std::count_if(resp.results().begin(), resp.results().end(), [](auto& r) {
        return r.has_error() && r.error().code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
      });
      if (refused < 990) fail("an oversize Batch was answered beyond the reply budget");
      return;
    }
    v1::PutRequest req;
    req.set_key(key());
    req.set_value(std::string((1 << 20) + 1, 'x'));
    v1::PutResponse resp;
    if (kv_->Put(ctx().get(), req, &resp).error_code() != grpc::StatusCode::INVALID_ARGUMENT) {
      fail("a value over live.max_value_bytes was not refused");
    }
  }

  void range() {
    v1::RangeRequest req;
    req.set_prefix(prefix());
    req.set_limit(50);
    v1::RangeResponse resp;
    expect_ok(kv_->Range(ctx().get(), req, &resp), "Range");
    auto want = model_.begin();
    for (const auto& e : resp.entries()) {
      if (want == model_.end() || e.key() != want->first || e.value() != want->second) {
        return fail("a Range page differs from the model");
      }
      ++want;
    }
  }

  int id_;
  std::unique_ptr<v1::KV::Stub> kv_;
  std::mt19937 rng_;
  std::map<std::string, std::string> model_;
};

// Watchers that join, read a while and leave; every fourth never reads before it leaves.
void watchers(shoald_process& s) {
  auto kv = s.kv();
  std::mt19937 rng(42);
  while (!done.load()) {
    auto c = ctx(std::chrono::milliseconds(60'000));
    v1::WatchRequest req;
    req.set_key("s/");
    req.set_prefix(true);
    req.set_prev_kv(rng() % 2 == 0);
    auto stream = kv->Watch(c.get(), req);
    const int reads = rng() % 4 == 0 ? 0 : static_cast<int>(rng() % 200);
    v1::WatchResponse resp;
    for (int i = 0; i < reads && stream->Read(&resp); ++i) {
    }
    if (reads == 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    c->TryCancel();
    (void)stream->Finish();
  }
}

// A Pipeline client that asks for 1 MiB values and reads a reply every 20 ms.
void slow_pipeline(shoald_process& s) {
  auto kv = s.kv();
  while (!done.load()) {
    auto c = ctx(std::chrono::milliseconds(60'000));
    auto stream = kv->Pipeline(c.get());
    std::thread sender([&] {
      for (int i = 0; i < 64 && !done.load(); ++i) {
        v1::PipelineRequest req;
        req.set_id(i);
        req.mutable_op()->mutable_get()->set_key("big");
        if (!stream->Write(req)) return;
      }
      stream->WritesDone();
    });
    v1::PipelineResponse resp;
    while (stream->Read(&resp)) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    sender.join();
    expect_ok(stream->Finish(), "slow Pipeline");
  }
}

}  // namespace

int main(int argc, char** argv) {
  const long operations = argc > 1 ? std::atol(argv[1]) : 200'000;
  const long max_rss_mib = argc > 2 ? std::atol(argv[2]) : 384;
  shoald_process s;
  {
    auto kv = s.kv();
    v1::PutRequest big;
    big.set_key("big");
    big.set_value(std::string(k_big_value, 'B'));
    v1::PutResponse resp;
    expect_ok(kv->Put(ctx().get(), big, &resp), "the 1 MiB value");
  }
  const auto start = std::chrono::steady_clock::now();
  std::atomic<uint64_t> peak_bytes{testing::rss_bytes(s.pid())};
  std::thread sampler([&] {
    while (!done.load()) {
      peak_bytes.store(std::max(peak_bytes.load(), testing::rss_bytes(s.pid())));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  std::thread watching([&] { watchers(s); });
  std::thread piping([&] { slow_pipeline(s); });
  std::vector<std::unique_ptr<writer>> writers;
  std::vector<std::thread> threads;
  for (int w = 0; w < k_writers; ++w) {
    writers.push_back(std::make_unique<writer>(w, s.new_connection()));
    threads.emplace_back([&, w] { writers[w]->run(operations / k_writers); });
  }
  for (auto& t : threads) t.join();
  done.store(true);
  watching.join();
  piping.join();
  sampler.join();

  std::size_t keys = 1;  // "big"
  for (auto& w : writers) {
    w->verify();
    keys += w->keys();
  }
  v1::StatusResponse st;
  expect_ok(s.admin()->Status(ctx().get(), v1::StatusRequest(), &st), "Status");
  if (st.keys() != keys)
    fail("Status counts " + std::to_string(st.keys()) + " keys, not " + std::to_string(keys));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const long peak_mib = static_cast<long>(peak_bytes.load() >> 20);
  std::printf(
      "soak: %ld operations in %.0f s; %zu keys; shoald's peak resident memory %ld MiB "
      "(bound %ld)\n",
      operations, seconds, keys, peak_mib, max_rss_mib);
  if (peak_mib > max_rss_mib) fail("resident memory exceeded its bound");
  if (s.terminate() != 0) fail("shoald did not exit cleanly on SIGTERM");
  if (failures.load() > 0) {
    std::printf("soak: FAILED (%d problems)\n", failures.load());
    return 1;
  }
  std::printf("soak: OK\n");
  return 0;
}
