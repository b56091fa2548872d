// admission: which calls shoald takes on — by class, each against its own limit — and the drain.
//
// Every call holds a ticket while it runs: a place in the server's gate (shutdown closes the gate
// and awaits the last ticket) and a permit of its class's semaphore, whose size follows the live
// configuration (add_permits / forget_permits). A class at its limit refuses at once with
// RESOURCE_EXHAUSTED: a flood gets a prompt answer, not a queue. A closed gate refuses with
// UNAVAILABLE. The classes keep each other whole: streams, which live long, never take the places
// of unary calls, and neither takes those of the control calls (Status, GetConfig, health Check)
// that probes depend on.
//
//   admission calls(cfg->live());
//   admission::ticket t;
//   if (grpc::Status st = calls.admit(call_class::unary, &t); !st.ok()) return st;
//   ...                                  // the call runs; `t` lets go when destroyed
//   calls.follow(next_cfg->live());      // a reload changed the limits
//   co_await calls.close();              // shutdown: nothing new; wait for the calls in
//
// (tests/service/admission_test.cc does each of these.) Thread-safe: admit from any worker, tickets
// destroyed anywhere; follow from one task at a time. Cancel safety: a cancelled close() leaves
// the gate closed and no waiter behind (rt::gate).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>

#include "grpcpp/grpcpp.h"
#include "runtime/internal/coop.h"
#include "runtime/sync/gate.h"
#include "runtime/sync/semaphore.h"
#include "shoal/v1/admin.pb.h"

namespace shoal::service {

enum class call_class {
  unary,    // KV's unary methods: live.max_in_flight
  stream,   // Watch, Pipeline, WatchConfig, health Watch: live.max_streams
  control,  // Status, GetConfig, health Check: live.max_control_calls
};

class admission {
 public:
  // What an admitted call holds. Its permit goes back before it leaves the gate.
  struct ticket {
    std::optional<rt::gate::holder> in;
    rt::semaphore_permit permit;
  };

  explicit admission(const v1::LiveSettings& live);
  admission(const admission&) = delete;
  admission& operator=(const admission&) = delete;

  grpc::Status admit(call_class c, ticket* out);
  // Resizes each class to the new limits; calls above a lowered limit keep their places.
  void follow(const v1::LiveSettings& live);
  // Calls admitted and not yet gone, of every class.
  uint64_t in_flight() const { return calls_.holders(); }
  bool closed() const { return calls_.is_closed(); }
  // No new calls from now on; `co_await` completes when the last one has gone.
  auto close() { return calls_.close(); }

 private:
  struct lane {
    explicit lane(uint32_t limit) : permits(limit), limit(limit) {}
    rt::semaphore permits;
    uint32_t limit;  // as last followed (written by follow only)
  };
  static uint32_t limit_of(call_class c, const v1::LiveSettings& live);

  rt::gate calls_;
  std::array<lane, 3> lanes_;
};

}  // namespace shoal::service
