// shoal-bench: an asynchronous load generator for shoald (and for any server with the same Get).
//
//   shoal-bench --target=127.0.0.1:50051 --mode=get --connections=16 --concurrency=128
//               --duration=10 --keys=10000 --value_size=16
//   shoal-bench --mode=watch --watchers=100 --rate=2000 --duration=10
//   shoal-bench --mode=pipeline --pipeline_op=set --workers=1 --connections=2 --streams=8
//   --depth=16
//
// Runs on Shoal's runtime: each connection is a channel, each of --concurrency tasks loops issuing
// one call at a time through its worker's completion queue. Prints a progress line per second
// (stderr), then ops/s and latency percentiles, and one JSON line for scripts (stdout).
// Watch mode: --watchers streams on one prefix, one writer putting at --rate per second with the
// send time in the value; reports put-to-event latency as each watcher sees it, and beside it the
// latency of the Put calls themselves (what one more write on an open stream should compare to).
// Pipeline mode (pipeline_load.cc): --streams Pipeline streams of Batches of --batch gets or sets
// (--pipeline_op), --depth Batches in flight on each; latency is per Batch.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "clients/bench/load_state.h"
#include "clients/bench/pipeline_load.h"
#include "grpcpp/generic/generic_stub.h"
#include "runtime/grpc/completion_queue_driver.h"
#include "runtime/grpc/operation.h"
#include "runtime/runtime.h"
#include "runtime/sync/semaphore.h"
#include "runtime/time/sleep.h"
#include "shoal/v1/kv.grpc.pb.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "server address");
ABSL_FLAG(std::string, mode, "get", "get | put | mixed | txn | watch | pipeline");
ABSL_FLAG(std::string, pipeline_op, "get", "pipeline: get | set (Put) in every Batch");
ABSL_FLAG(int, batch, 64, "pipeline: operations per Batch (one request on the stream)");
ABSL_FLAG(int, depth, 4, "pipeline: requests in flight per stream");
ABSL_FLAG(int, streams, 8, "pipeline: Pipeline streams, spread over the connections");
ABSL_FLAG(int, txn_keys, 2,
          "txn: keys each Txn moves a unit between (1: an increment; 2: a transfer, which lands on "
          "two shards most of the time)");
ABSL_FLAG(int, get_percent, 90, "mixed: share of gets");
ABSL_FLAG(int, connections, 16, "channels (TCP connections)");
ABSL_FLAG(int, concurrency, 128, "calls in flight, spread over the connections");
ABSL_FLAG(int, workers, 2, "runtime worker threads");
ABSL_FLAG(int, keys, 10000, "key space");
ABSL_FLAG(int, value_size, 16, "bytes per value");
ABSL_FLAG(double, duration, 10, "seconds to run (after warm-up)");
ABSL_FLAG(double, warmup, 1, "seconds of warm-up, not measured");
ABSL_FLAG(int64_t, count, 0, "stop after this many calls instead (0: use --duration)");
ABSL_FLAG(int, watchers, 100, "watch: streams on the prefix");
ABSL_FLAG(int, rate, 2000, "watch: puts per second");
ABSL_FLAG(bool, prefill, true, "put every key once before measuring gets");
ABSL_FLAG(std::string, method, "",
          "generic mode: call this unary method (e.g. /baseline.Baseline/Get) with a Get request");

namespace shoal::bench {
namespace {

namespace rtg = rt::grpc;

// Counts one finished call (its latency when it succeeded), once the warm-up is over.
void record_outcome(shared_state* s, histogram& local, const grpc::Status& st, clk::time_point t0) {
  const uint64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(clk::now() - t0).count();
  if (!s->measuring.load(std::memory_order_relaxed)) return;
  if (st.ok()) {
    local.record(ns);
    s->ops.fetch_add(1, std::memory_order_relaxed);
  } else {
    s->errors.fetch_add(1, std::memory_order_relaxed);
  }
}

template <class Resp, class Prepare>
rt::task<grpc::Status> unary(Prepare prepare, Resp* resp) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Status status;
  auto rpc = prepare(&ctx, rtg::completion_queue_driver::current_queue());
  rpc->StartCall();
  (void)co_await rtg::async_op(&ctx, [&](void* tag) { rpc->Finish(resp, &status, tag); });
  co_return status;
}

rt::task<> load_loop(shared_state* s, int index, std::string mode, int get_percent, int keys,
                     std::string value) {
  v1::KV::Stub* stub = s->stubs[index % s->stubs.size()].get();
  std::mt19937_64 rng(index * 7919 + 1);
  histogram local;
  merge_on_exit merge{s, &local};
  v1::GetRequest get;
  v1::PutRequest put;
  put.set_value(value);
  const bool counted = s->budget.load() > 0;
  while (!s->stop.load(std::memory_order_relaxed)) {
    if (counted && s->budget.fetch_sub(1, std::memory_order_relaxed) <= 0) break;
    const std::string key = key_of(rng() % static_cast<uint64_t>(keys));
    const bool is_get =
        mode == "get" || (mode == "mixed" && static_cast<int>(rng() % 100) < get_percent);
    const auto t0 = clk::now();
    grpc::Status st;
    if (mode == "txn") {
      // A transfer: if the source exists, move one unit from it to another key, atomically.
      v1::TxnRequest txn;
      v1::Compare* c = txn.add_compares();
      c->set_key(key);
      c->set_target(v1::Compare::EXISTS);
      c->set_exists(true);
      v1::IncrementRequest* from = txn.add_success()->mutable_increment();
      from->set_key(key);
      from->set_delta(-1);
      if (absl::GetFlag(FLAGS_txn_keys) > 1) {
        v1::IncrementRequest* to = txn.add_success()->mutable_increment();
        to->set_key(key_of((rng() % static_cast<uint64_t>(keys - 1) + 1 + key_index_of(key)) %
                           static_cast<uint64_t>(keys)));
        to->set_delta(1);
      }
      v1::TxnResponse resp;
      st = co_await unary(
          [&](grpc::ClientContext* c, grpc::CompletionQueue* cq) {
            return stub->PrepareAsyncTxn(c, txn, cq);
          },
          &resp);
    } else if (is_get) {
      get.set_key(key);
      v1::GetResponse resp;
      st = co_await unary(
          [&](grpc::ClientContext* c, grpc::CompletionQueue* cq) {
            return stub->PrepareAsyncGet(c, get, cq);
          },
          &resp);
    } else {
      put.set_key(key);
      v1::PutResponse resp;
      st = co_await unary(
          [&](grpc::ClientContext* c, grpc::CompletionQueue* cq) {
            return stub->PrepareAsyncPut(c, put, cq);
          },
          &resp);
    }
    record_outcome(s, local, st, t0);
  }
}

rt::task<> prefill(shared_state* s, int from, int to, std::string value) {
  v1::PutRequest put;
  put.set_value(value);
  for (int i = from; i < to; ++i) {
    put.set_key(key_of(i));
    v1::PutResponse resp;
    auto st = co_await unary(
        [&](grpc::ClientContext* c, grpc::CompletionQueue* cq) {
          return s->stubs[i % s->stubs.size()]->PrepareAsyncPut(c, put, cq);
        },
        &resp);
    if (!st.ok()) {
      std::fprintf(stderr, "prefill failed: %s\n", st.error_message().c_str());
      std::exit(1);
    }
  }
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clk::now().time_since_epoch())
      .count();
}

// Watch mode: each watcher records, for every event, now - the send time carried in the value.
rt::task<> watcher(shared_state* s, int index, std::atomic<int>* ready) {
  v1::KV::Stub* stub = s->stubs[index % s->stubs.size()].get();
  grpc::ClientContext ctx;
  v1::WatchRequest req;
  req.set_key("watched/");
  req.set_prefix(true);
  auto reader = stub->PrepareAsyncWatch(&ctx, req, rtg::completion_queue_driver::current_queue());
  (void)co_await rtg::async_op(&ctx, [&](void* tag) { reader->StartCall(tag); });
  ready->fetch_add(1);
  histogram local;
  merge_on_exit merge{s, &local};
  v1::WatchResponse resp;
  for (;;) {
    const bool ok = co_await rtg::async_op(&ctx, [&](void* tag) { reader->Read(&resp, tag); });
    if (!ok || s->stop.load()) break;
    const int64_t now = now_ns();
    for (const auto& e : resp.events()) {
      int64_t sent = 0;
      std::memcpy(&sent, e.entry().value().data(), sizeof sent);
      if (s->measuring.load(std::memory_order_relaxed)) {
        local.record(static_cast<uint64_t>(now - sent));
        s->ops.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
  ctx.TryCancel();
  grpc::Status st;
  (void)co_await rtg::async_op(&ctx, [&](void* tag) { reader->Finish(&st, tag); });
}

rt::task<> timed_put(shared_state* s, uint64_t i, int value_size, rt::semaphore_permit in_flight) {
  (void)in_flight;  // held until this put is answered
  v1::PutRequest put;
  std::string value(std::max<int>(value_size, 8), 'v');
  const int64_t sent = now_ns();
  std::memcpy(value.data(), &sent, sizeof sent);
  put.set_key("watched/" + std::to_string(i % 64));
  put.set_value(value);
  v1::PutResponse resp;
  auto st = co_await unary(
      [&](grpc::ClientContext* c, grpc::CompletionQueue* cq) {
        return s->stubs[i % s->stubs.size()]->PrepareAsyncPut(c, put, cq);
      },
      &resp);
  if (!st.ok()) s->errors.fetch_add(1);
  if (s->measuring.load(std::memory_order_relaxed)) {
    std::lock_guard lock(s->mu);
    s->puts.record(static_cast<uint64_t>(now_ns() - sent));
  }
}

// Puts at a fixed rate, each as its own task (at most 256 in flight), so a slow reply does not
// slow the pace.
rt::task<> paced_writer(shared_state* s, int rate, int value_size) {
  rt::interval tick(std::chrono::nanoseconds(1'000'000'000 / rate),
                    rt::missed_tick_behavior::burst);
  rt::semaphore in_flight(256);
  for (uint64_t i = 0; !s->stop.load(); ++i) {
    co_await tick.tick();
    auto permit = co_await in_flight.acquire();
    rt::spawn(timed_put(s, i, value_size, std::move(*permit))).detach();
  }
}

// Generic mode: any unary method whose request is `bytes key = 1` (Shoal's Get, the baseline's).
rt::task<> generic_loop(shared_state* s, grpc::GenericStub* stub, std::string method, int index,
                        int keys) {
  std::mt19937_64 rng(index * 7919 + 1);
  histogram local;
  merge_on_exit merge{s, &local};
  while (!s->stop.load(std::memory_order_relaxed)) {
    v1::GetRequest req;
    req.set_key(key_of(rng() % static_cast<uint64_t>(keys)));
    std::string bytes = req.SerializeAsString();
    grpc::Slice slice(bytes);
    grpc::ByteBuffer buf(&slice, 1);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    const auto t0 = clk::now();
    auto rpc =
        stub->PrepareUnaryCall(&ctx, method, buf, rtg::completion_queue_driver::current_queue());
    rpc->StartCall();
    grpc::ByteBuffer reply;
    grpc::Status st;
    (void)co_await rtg::async_op(&ctx, [&](void* tag) { rpc->Finish(&reply, &st, tag); });
    record_outcome(s, local, st, t0);
  }
}

}  // namespace
}  // namespace shoal::bench

int main(int argc, char** argv) {
  using namespace shoal::bench;
  absl::SetProgramUsageMessage("shoal-bench: load generator for shoald; see the flags");
  absl::ParseCommandLine(argc, argv);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  const int connections = std::max(1, absl::GetFlag(FLAGS_connections));
  const int concurrency = std::max(1, absl::GetFlag(FLAGS_concurrency));
  const int keys = std::max(1, absl::GetFlag(FLAGS_keys));
  // Transfers need decimal counters to move units between.
  const std::string value =
      mode == "txn" ? std::string("1000000") : std::string(absl::GetFlag(FLAGS_value_size), 'x');

  shoal::rt::runtime_options o;
  o.workers = absl::GetFlag(FLAGS_workers);
  o.thread_name = "bench";
  o.make_driver = [](int) { return shoal::rt::grpc::completion_queue_driver::create(); };
  shoal::rt::runtime rt(o);

  shared_state s;
  for (int i = 0; i < connections; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("shoal-bench-connection", i);  // distinct arguments: a distinct connection each
    s.stubs.push_back(shoal::v1::KV::NewStub(grpc::CreateCustomChannel(
        absl::GetFlag(FLAGS_target), grpc::InsecureChannelCredentials(), args)));
  }

  std::vector<shoal::rt::join_handle<void>> streams;  // pipeline mode
  std::vector<std::unique_ptr<grpc::GenericStub>> generic;
  if (!absl::GetFlag(FLAGS_method).empty()) {
    for (int i = 0; i < connections; ++i) {
      grpc::ChannelArguments args;
      args.SetInt("shoal-bench-connection", i);
      generic.push_back(std::make_unique<grpc::GenericStub>(grpc::CreateCustomChannel(
          absl::GetFlag(FLAGS_target), grpc::InsecureChannelCredentials(), args)));
    }
    for (int i = 0; i < concurrency; ++i) {
      rt.spawn(
            generic_loop(&s, generic[i % connections].get(), absl::GetFlag(FLAGS_method), i, keys))
          .detach();
    }
  } else if (mode == "watch") {
    std::atomic<int> ready{0};
    for (int i = 0; i < absl::GetFlag(FLAGS_watchers); ++i)
      rt.spawn(watcher(&s, i, &ready)).detach();
    while (ready.load() < absl::GetFlag(FLAGS_watchers))
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    rt.spawn(paced_writer(&s, absl::GetFlag(FLAGS_rate), absl::GetFlag(FLAGS_value_size))).detach();
  } else {
    if (mode != "get" && mode != "put" && mode != "mixed" && mode != "txn" && mode != "pipeline") {
      std::fprintf(stderr, "unknown --mode %s\n", mode.c_str());
      return 2;
    }
    const bool pipelined_sets = mode == "pipeline" && absl::GetFlag(FLAGS_pipeline_op) == "set";
    if (absl::GetFlag(FLAGS_prefill) && mode != "put" && !pipelined_sets) {
      std::vector<shoal::rt::join_handle<void>> hs;
      const int parts = std::min(keys, 64);
      for (int p = 0; p < parts; ++p) {
        hs.push_back(rt.spawn(prefill(&s, keys * p / parts, keys * (p + 1) / parts, value)));
      }
      for (auto& h : hs) {
        rt.block_on([](shoal::rt::join_handle<void> h) -> shoal::rt::task<> {
          (void)co_await std::move(h);
        }(std::move(h)));
      }
    }
    s.budget = absl::GetFlag(FLAGS_count);
    if (mode == "pipeline") {
      for (int i = 0; i < absl::GetFlag(FLAGS_streams); ++i) {
        streams.push_back(
            rt.spawn(pipeline_loop(&s, i, !pipelined_sets, std::max(1, absl::GetFlag(FLAGS_batch)),
                                   std::max(1, absl::GetFlag(FLAGS_depth)), keys, value)));
      }
    } else {
      for (int i = 0; i < concurrency; ++i) {
        rt.spawn(load_loop(&s, i, mode, absl::GetFlag(FLAGS_get_percent), keys, value)).detach();
      }
    }
  }

  std::this_thread::sleep_for(std::chrono::duration<double>(absl::GetFlag(FLAGS_warmup)));
  s.measuring = true;
  const auto start = clk::now();
  const double duration = absl::GetFlag(FLAGS_duration);
  uint64_t last_ops = 0;
  for (int sec = 1;; ++sec) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const uint64_t ops = s.ops.load();
    std::fprintf(stderr, "t=%ds ops/s=%llu errors=%llu\n", sec,
                 static_cast<unsigned long long>(ops - last_ops),
                 static_cast<unsigned long long>(s.errors.load()));
    last_ops = ops;
    const bool done = absl::GetFlag(FLAGS_count) > 0
                          ? s.budget.load() <= 0
                          : std::chrono::duration<double>(clk::now() - start).count() >= duration;
    if (done) break;
  }
  s.measuring = false;
  const double elapsed = std::chrono::duration<double>(clk::now() - start).count();
  const uint64_t ops = s.ops.load();
  s.stop = true;
  // Pipeline streams end cleanly (their last replies come back) before the runtime stops.
  for (auto& h : streams) {
    rt.block_on([](shoal::rt::join_handle<void> h) -> shoal::rt::task<> {
      (void)co_await std::move(h);
    }(std::move(h)));
  }
  rt.shutdown();  // ends every loop and stream, and merges their histograms
  const double rate = ops / elapsed;
  const auto us = [&](double p) { return s.merged.percentile(p) / 1000.0; };
  std::printf(
      "mode=%s ops=%llu elapsed=%.2fs ops/s=%.0f p50=%.1fus p99=%.1fus p999=%.1fus errors=%llu\n",
      mode.c_str(), static_cast<unsigned long long>(ops), elapsed, rate, us(50), us(99), us(99.9),
      static_cast<unsigned long long>(s.errors.load()));
  std::printf(
      "{\"mode\":\"%s\",\"ops\":%llu,\"seconds\":%.3f,\"ops_per_s\":%.0f,\"p50_us\":%.1f,"
      "\"p99_us\":%.1f,\"p999_us\":%.1f,\"errors\":%llu,\"connections\":%d,\"concurrency\":%d}\n",
      mode.c_str(), static_cast<unsigned long long>(ops), elapsed, rate, us(50), us(99), us(99.9),
      static_cast<unsigned long long>(s.errors.load()), connections, concurrency);
  if (mode == "watch") {
    const auto put_us = [&](double p) { return s.puts.percentile(p) / 1000.0; };
    std::printf("put calls: n=%llu p50=%.1fus p99=%.1fus p999=%.1fus; event p99 / put p99 = %.2f\n",
                static_cast<unsigned long long>(s.puts.total()), put_us(50), put_us(99),
                put_us(99.9), us(99) / std::max(put_us(99), 1e-9));
  }
  return 0;
}
