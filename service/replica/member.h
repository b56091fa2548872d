// member: a replica as the cluster's configuration names it.
//
// Raft stores each member's address as one string; Shoal's is "peer/client": where the other
// replicas reach its Raft port, and where clients reach its gRPC port (what a follower names in a
// leader hint). Both are host:port, and a host may be a DNS name.
//
//   auto m = replica::parse_members("1=127.0.0.1:7001/127.0.0.1:50051,2=...");
//   (*m)[0].id == 1, (*m)[0].peer == "127.0.0.1:7001", (*m)[0].address() == "127.0.0.1:7001/..."
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace shoal::service::replica {

struct member {
  uint64_t id = 0;
  std::string peer;    // host:port of its Raft transport
  std::string client;  // host:port of its gRPC port
  std::string address() const { return peer + "/" + client; }
};

// "id=peer/client" ... separated by commas. INVALID_ARGUMENT names the item that is wrong.
absl::StatusOr<std::vector<member>> parse_members(std::string_view text);
// One Raft address ("peer/client") split; false if it is not one.
bool split_address(std::string_view address, member* out);
// host and port of "host:port" ("[v6]:port" too); false if it is not one.
bool split_host_port(std::string_view hp, std::string* host, std::string* port);

}  // namespace shoal::service::replica
