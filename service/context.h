// context: what every handler shares — the store, the sequencer, the live configuration, the
// counters behind the limits, and the server's identity. Owned by the server; handlers get a
// reference.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "grpcpp/grpcpp.h"
#include "runtime/sync/watch.h"
#include "service/config/config.h"
#include "service/metrics/metrics.h"
#include "service/store/sequencer.h"
#include "service/store/store.h"
#include "shoal/v1/kv.pb.h"

namespace shoal::service {

// What the health service reports, published on a watch channel.
struct serving_state {
  bool draining = false;
  bool read_only = false;
  bool ready() const { return !draining && !read_only; }
};

struct context {
  std::string store_id;
  std::chrono::steady_clock::time_point started;
  store::sequencer* seq = nullptr;
  store::store* kv = nullptr;

  // The live configuration: handlers read the latest snapshot.
  rt::watch::receiver<config::snapshot_ptr>* config = nullptr;
  config::snapshot_ptr current_config() const { return *config->borrow(); }

  rt::watch::receiver<serving_state>* serving = nullptr;
  // Raised once when the server starts draining; long-lived streams end on it.
  rt::watch::receiver<bool>* stopping = nullptr;

  std::atomic<int64_t> in_flight{0};
  std::atomic<int64_t> watchers{0};
  // Set when the drain starts: new calls are refused with UNAVAILABLE.
  std::atomic<bool> draining{false};
  // Tests only (SHOALD_TESTING_NONATOMIC_TXN=1): Txn checks its compares and then runs each
  // operation as a call of its own, with no lock held across them, so that the linearizability
  // test can show that it catches a Txn that is not atomic.
  bool testing_nonatomic_txn = false;

  void fill(v1::ResponseHeader* h) const {
    h->set_revision(seq->revision());
    h->set_store_id(store_id);
  }
};

// Counts a call against live.max_in_flight for as long as it lives.
class in_flight_permit {
 public:
  // Admits the call, or returns RESOURCE_EXHAUSTED at once (no waiting: a flood gets a prompt
  // answer, not a queue).
  static grpc::Status admit(context& ctx, const config::snapshot& cfg, in_flight_permit* out) {
    if (ctx.draining.load(std::memory_order_acquire)) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "the server is shutting down; retry on another instance");
    }
    const int64_t max = cfg.live().max_in_flight();
    if (ctx.in_flight.fetch_add(1, std::memory_order_relaxed) >= max) {
      ctx.in_flight.fetch_sub(1, std::memory_order_relaxed);
      metrics::count(metrics::event::rejected_in_flight);
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "the server is at its limit of calls in flight (live.max_in_flight = " +
                              std::to_string(max) + "); retry later");
    }
    out->ctx_ = &ctx;
    return grpc::Status::OK;
  }
  in_flight_permit() = default;
  in_flight_permit(const in_flight_permit&) = delete;
  in_flight_permit& operator=(const in_flight_permit&) = delete;
  ~in_flight_permit() {
    if (ctx_) ctx_->in_flight.fetch_sub(1, std::memory_order_relaxed);
  }

 private:
  context* ctx_ = nullptr;
};

// absl and gRPC status codes are equal: the mapping is a cast.
inline grpc::Status to_grpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace shoal::service
