// frame: the proposals a node takes together, carried in one Raft log entry.
//
// What: a leader under load finds tens of proposals queued at each turn of its loop (node.h).
// Written as one Raft entry each, every proposal would cost libraft an entry: a header on disk,
// a place in the in-memory log, an apply callback on every replica, and a step towards the next
// snapshot — taken every raft_snapshot_entries entries, each one a copy of the whole store. A
// frame makes consecutive proposals one entry; every replica applies its payloads in order.
//
//   [u8 0][u8 frame version = 1][u32 n] n x ([u32 size][payload])
//
// When: node::submit_apply frames what it appends, node::fsm_apply unframes what it applies. A
// lone proposal, and one larger than k_frame_bytes, stays a bare entry of its own (what earlier
// versions wrote): a payload never begins with a zero byte (entry.h's begin with their format,
// 1), so a frame and a bare entry tell themselves apart. Raft's disk log hands entries back
// padded with zeros to a multiple of 8 bytes; unframe accepts that padding and nothing else.
//
//   std::vector<std::string> entries = replica::frame_entries(std::move(proposals));
//   bool ok = replica::for_each_payload(entry, [&](std::string_view payload) { apply(payload); });
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"

namespace shoal::service::replica {

// Payloads beyond this size in total start another frame.
inline constexpr std::size_t k_frame_bytes = 256 * 1024;

// The Raft entries that carry `payloads` (none may be empty or begin with a zero byte), in
// order: consecutive payloads framed together up to k_frame_bytes, a group of one left bare.
// `counts`, if given, gets how many payloads each entry carries.
std::vector<std::string> frame_entries(std::vector<std::string> payloads,
                                       std::vector<std::size_t>* counts = nullptr);

// Calls `each` with every payload `entry` carries, in order (a bare entry: itself). False, with
// nothing called, if `entry` is a frame that does not parse.
bool for_each_payload(std::string_view entry, absl::FunctionRef<void(std::string_view)> each);

}  // namespace shoal::service::replica
