// channel: the connection a client makes from its options — plaintext or TLS (with a client
// certificate for mTLS), and a bearer token added to every call's metadata by an interceptor, so
// that every stub on the channel (the wrappers' and kv_stub()'s alike) carries it.
//
//   shoal::client::options o{.target = "db.example:50051", .ca_file = "ca.crt",
//                            .token = "s3cr3t"};
//   auto ch = shoal::client::make_channel(o, o.target);  // StatusOr<shared_ptr<grpc::Channel>>
//
// Empty settings are taken from the environment: SHOAL_CACERT, SHOAL_CERT, SHOAL_KEY and
// SHOAL_TOKEN. A token goes in plaintext only to this machine (a target on loopback or a unix
// socket); to any other, without TLS, the channel is refused.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace shoal::client {

struct options;

// The options' TLS and token settings with the environment's filled in where they are empty.
options with_environment(options o);

// An error names the file it could not read (never its contents).
absl::StatusOr<std::shared_ptr<grpc::Channel>> make_channel(const options& o,
                                                            const std::string& target);

}  // namespace shoal::client
