// probe: the health service alone, in plaintext, on an address of its own
// (startup.probe_listen) — for probes that cannot speak TLS or carry credentials, as the
// kubelet's gRPC probes cannot: with TLS on the main port, they check this one. It answers
// grpc.health.v1.Health/Check as the main port does (service "" for liveness, "shoal.v1.KV" for
// readiness, NOT_SERVING while the server drains) and serves nothing else: no data, no Watch.
//
// When: server.cc starts one when startup.probe_listen is set, after the store is whole, and
// stops it after the drain. gRPC runs its calls on a thread of its own (the synchronous API: a
// Check reads one watch channel), never on a runtime worker.
//
//   auto p = probe_server::start("0.0.0.0:50052", &ctx);   // StatusOr<unique_ptr<...>>
//   std::printf("probes on %s\n", (*p)->address().c_str());
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "service/context.h"

namespace shoal::service {

// A builder option that leaves gRPC's reflection plugin (registered process-wide) out of one
// server.
std::unique_ptr<grpc::ServerBuilderOption> without_reflection();

class probe_server {
 public:
  static absl::StatusOr<std::unique_ptr<probe_server>> start(const std::string& listen,
                                                             context* ctx);
  ~probe_server();
  // The address bound (the port filled in when 0 was asked for).
  const std::string& address() const { return address_; }

  struct health;

 private:
  probe_server() = default;
  std::unique_ptr<health> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

}  // namespace shoal::service
