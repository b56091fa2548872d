// replay: reads the log back at start — every segment in order, every record checked — and hands
// each record after a given revision to the caller, which applies it to the store.
//
//   auto r = wal::replay(fs, dir, {.after = snapshot_revision},
//                        [&](const wal::record_view& rec) { return apply(rec); });
//   // r->last_revision: the store's revision now; r->dropped_tail: a torn write was cut off
//
// The log is a row of segments, wal-<first revision in hex>.log. What a crash can leave is a torn
// tail: the last segment ending inside a record, or with a record whose checksum fails and no
// whole record after it. Replay cuts it off (and logs it): no reply ever depended on it. Anything
// else — a bad record with good ones after it, a segment before the last that ends early, a gap
// or a repeat in the revisions — is damage: replay refuses with an error naming the file and the
// byte offset, unless truncate_damage, the operator's choice, cuts the log there (the server then
// takes a new store id, since acknowledged writes may be gone).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "service/wal/file_system.h"
#include "service/wal/record.h"

namespace shoal::service::wal {

std::string segment_name(uint64_t first_revision);
bool parse_segment_name(std::string_view name, uint64_t* first_revision);

struct replay_result {
  uint64_t last_revision = 0;  // the last record's revision, or `after` if there was none
  uint64_t records = 0;        // records applied
  uint64_t bytes = 0;          // bytes of log read
  bool dropped_tail = false;   // a torn tail was cut off
  bool cut_damage = false;     // truncate_damage cut off a damaged part
};

struct replay_options {
  uint64_t after = 0;  // records up to here are in the snapshot: skipped
  // The operator's --wal_truncate_damaged: cut the log at damage instead of refusing.
  bool truncate_damage = false;
  // Only the segments that begin before this revision (compaction reads the closed segments
  // while the writer appends to the open one).
  uint64_t before_segment = UINT64_MAX;
  // Cut a torn tail off (at start); false: report it as damage (closed segments have none).
  bool repair = true;
  // Stop after this revision (a copy of a running server's log: what follows may be mid-write).
  uint64_t up_to = UINT64_MAX;
};

absl::StatusOr<replay_result> replay(file_system& fs, const std::string& dir,
                                     const replay_options& o,
                                     absl::FunctionRef<absl::Status(const record_view&)> apply);

// The segments of dir, oldest first: (first revision, file name).
absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> list_segments(file_system& fs,
                                                                            const std::string& dir);

}  // namespace shoal::service::wal
