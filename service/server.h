// server: shoald's composition — gRPC server, runtime, store, watch fan-out and configuration.
//
// The ServerBuilder makes one completion queue per worker; the runtime adopts them, so each worker
// parks in its queue and the calls it dequeues run there as tasks (see handlers/call.h).
//
//   auto s = server::create({.flags = overlay, .config_path = path});
//   std::printf("listening on %s\n", (*s)->address().c_str());
//   ... SIGTERM ...
//   (*s)->shutdown();   // from a thread that is not a worker
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "shoal/v1/admin.pb.h"

namespace shoal::service {

class server {
 public:
  struct options {
    shoal::v1::ServerConfig flags;  // settings given on the command line (they win over the file)
    std::string config_path;        // empty: no file
  };
  static absl::StatusOr<std::unique_ptr<server>> create(options o);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // The address actually bound (the port filled in when 0 was asked for).
  std::string address() const;
  // The metrics endpoint's address (port filled in), or empty when there is none.
  std::string metrics_address() const;
  // The plaintext health port's address (startup.probe_listen), or empty when there is none.
  std::string probe_address() const;
  // Drains and stops: readiness goes NOT_SERVING, streams end with UNAVAILABLE, new calls are
  // refused, calls in flight get startup.shutdown_grace_seconds, then everything stops. Call it
  // from a thread that is not one of the runtime's workers. Idempotent.
  void shutdown();

  struct impl;

 private:
  explicit server(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

}  // namespace shoal::service
