// shoal-store-bench: the store on its own (no gRPC), with Google Benchmark.
//
// range_call/N: the same page as shoald serves it, minus the transport: the Range handler fills
// the response, which is then serialized as gRPC would.
//
// range_page/N: one 100-item Range page starting at a random key of a store holding N keys
// (16-byte keys, 100-byte values, 4 shards as shoald has on two workers). The ordered index
// makes a page cost O(page + log N): the 1,000,000-key page should stay within 2x of the
// 10,000-key one. get/N and put/N give the single-key costs beside it.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "runtime/runtime.h"
#include "runtime/sync/watch.h"
#include "service/config/config.h"
#include "service/context.h"
#include "service/handlers/kv.h"
#include "service/store/store.h"
#include "service/watch/hub.h"

namespace {

using namespace shoal;
using service::store::condition;
using service::store::entry;
using service::store::entry_view;
using service::store::limits;
using service::store::store;
using service::store::ttl_spec;
using service::watch::hub;

std::string key_of(int64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "bench/%010lld", static_cast<long long>(i));
  return buf;
}

// As shoald has on two workers.
constexpr uint32_t k_shards = 4;

// One loaded store per size, kept across benchmarks (loading a million keys takes a while).
struct fixture {
  rt::runtime rt{[] {
    rt::runtime_options o;
    o.kind = rt::flavor::current_thread;
    return o;
  }()};
  hub events{hub::options{}};
  store kv{store::options{.shards = k_shards, .clock = &rt.clock(), .hub = &events}};

  explicit fixture(int64_t n) {
    const std::string value(100, 'v');
    for (int64_t i = 0; i < n; ++i) {
      auto r = kv.put(key_of(i), value, ttl_spec{}, condition{}, limits{},
                      [](const entry_view*, const entry_view*, bool) {});
      if (!r.ok()) std::abort();
    }
  }
  static fixture& of(int64_t n) {
    static std::map<int64_t, std::unique_ptr<fixture>> loaded;
    auto& f = loaded[n];
    if (!f) f = std::make_unique<fixture>(n);
    return *f;
  }
};

void range_page(benchmark::State& state) {
  const int64_t n = state.range(0);
  fixture& f = fixture::of(n);
  std::mt19937_64 rng(42);
  store::range_query q;
  q.max_items = 100;
  q.from = "bench/";
  q.to = "bench0";  // '/' + 1: every key with the prefix
  q.has_to = true;
  std::vector<std::string> starts(1024);
  for (auto& s : starts) s = key_of(static_cast<int64_t>(rng() % static_cast<uint64_t>(n - 100)));
  std::size_t i = 0;
  for (auto _ : state) {
    q.from = starts[i++ % starts.size()];
    auto page = f.kv.range(q);
    benchmark::DoNotOptimize(page);
    if (page.entries.size() != 100) state.SkipWithError("short page");
  }
  state.SetItemsProcessed(state.iterations() * 100);
}

void range_call(benchmark::State& state) {
  const int64_t n = state.range(0);
  fixture& f = fixture::of(n);
  auto snap = std::make_shared<service::config::snapshot>();
  snap->config = service::config::defaults();
  auto [config_tx, config_rx] = rt::watch::channel<service::config::snapshot_ptr>(snap);
  service::context ctx;
  ctx.store_id = "bench";
  ctx.hub = &f.events;
  ctx.kv = &f.kv;
  ctx.config = &config_rx;
  std::mt19937_64 rng(42);
  std::vector<v1::RangeRequest> requests(1024);
  for (auto& r : requests) {
    r.set_prefix("bench/");
    r.set_limit(100);
    r.set_continuation(key_of(static_cast<int64_t>(rng() % static_cast<uint64_t>(n - 100))));
  }
  std::size_t i = 0;
  std::string wire;
  for (auto _ : state) {
    v1::RangeResponse resp;
    auto st = service::handlers::range(ctx, requests[i++ % requests.size()], resp);
    resp.SerializeToString(&wire);
    benchmark::DoNotOptimize(wire);
    if (!st.ok() || resp.entries_size() != 100) state.SkipWithError("short page");
  }
  state.SetItemsProcessed(state.iterations() * 100);
}

void get(benchmark::State& state) {
  const int64_t n = state.range(0);
  fixture& f = fixture::of(n);
  std::mt19937_64 rng(7);
  for (auto _ : state) {
    const std::string k = key_of(static_cast<int64_t>(rng() % static_cast<uint64_t>(n)));
    std::size_t size = 0;
    benchmark::DoNotOptimize(f.kv.get(k, [&](const entry& e) { size = e.value().size(); }));
    benchmark::DoNotOptimize(size);
  }
}

void put(benchmark::State& state) {
  const int64_t n = state.range(0);
  fixture& f = fixture::of(n);
  std::mt19937_64 rng(9);
  const std::string value(100, 'w');
  for (auto _ : state) {
    const std::string k = key_of(static_cast<int64_t>(rng() % static_cast<uint64_t>(n)));
    auto r = f.kv.put(k, value, ttl_spec{}, condition{}, limits{},
                      [](const entry_view*, const entry_view*, bool) {});
    benchmark::DoNotOptimize(r);
  }
}

BENCHMARK(range_page)->Arg(10'000)->Arg(100'000)->Arg(1'000'000);
BENCHMARK(range_call)->Arg(10'000)->Arg(100'000)->Arg(1'000'000);
BENCHMARK(get)->Arg(10'000)->Arg(1'000'000);
BENCHMARK(put)->Arg(10'000)->Arg(1'000'000);

}  // namespace

BENCHMARK_MAIN();
