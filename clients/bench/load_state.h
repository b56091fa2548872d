// load_state: what shoal-bench's load tasks share: the stubs, the counters, the latency histogram,
// and the key names.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "shoal/v1/kv.grpc.pb.h"

namespace shoal::bench {

using clk = std::chrono::steady_clock;

// Latency histogram: log2 buckets split in 64 linear sub-buckets (about 1.6% resolution).
class histogram {
 public:
  void record(uint64_t ns) {
    if (ns == 0) ns = 1;
    const int msb = 63 - __builtin_clzll(ns);
    const int sub = msb < 6 ? static_cast<int>(ns) : static_cast<int>((ns >> (msb - 6)) & 63);
    const int idx = msb < 6 ? static_cast<int>(ns) : (msb - 5) * 64 + sub;
    counts_[std::min(idx, k_buckets - 1)]++;
    total_++;
  }
  void merge(const histogram& o) {
    for (int i = 0; i < k_buckets; ++i) counts_[i] += o.counts_[i];
    total_ += o.total_;
  }
  uint64_t total() const { return total_; }
  double percentile(double p) const {
    if (total_ == 0) return 0;
    const uint64_t want = static_cast<uint64_t>(std::ceil(p / 100.0 * total_));
    uint64_t seen = 0;
    for (int i = 0; i < k_buckets; ++i) {
      seen += counts_[i];
      if (seen >= want) return value_of(i);
    }
    return value_of(k_buckets - 1);
  }

 private:
  static constexpr int k_buckets = 64 * 60;
  static double value_of(int idx) {
    if (idx < 64) return idx;
    const int msb = idx / 64 + 5, sub = idx % 64;
    return std::ldexp(64 + sub + 0.5, msb - 6);
  }
  std::vector<uint64_t> counts_ = std::vector<uint64_t>(k_buckets, 0);
  uint64_t total_ = 0;
};

struct shared_state {
  std::vector<std::unique_ptr<v1::KV::Stub>> stubs;
  std::atomic<bool> measuring{false};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> ops{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<int64_t> budget{0};  // --count
  std::mutex mu;
  histogram merged;  // guarded by mu
  histogram puts;    // guarded by mu; watch mode: the Put calls' own latency
};

// Adds a task's histogram to the total however the task ends (finished, or cancelled by the
// runtime's shutdown: destroying its frame runs this destructor).
struct merge_on_exit {
  shared_state* s;
  histogram* h;
  ~merge_on_exit() {
    std::lock_guard lock(s->mu);
    s->merged.merge(*h);
  }
};

inline uint64_t key_index_of(const std::string& key) { return std::stoull(key.substr(6)); }

inline std::string key_of(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "bench/%010llu", static_cast<unsigned long long>(i));
  return buf;
}

}  // namespace shoal::bench
