// snapshot: the store at one revision in one file, so that the log before it can go.
//
//   <wal dir>/snap-<revision, 16 hex digits>.snap
//   frames (record.h's framing: size, crc32c, payload), in order:
//     header  [u8 'H'][u32 format = 1][u64 revision][i64 wall-clock ns written]
//     entries [u8 'E'][u32 count] count x ([u32 key size][key][u32 value size][value]
//              [u64 create_revision][u64 mod_revision][u64 version][i64 deadline, wall ns])
//     footer  [u8 'F'][u64 keys][u64 bytes of keys and values][u32 crc32c of every frame before]
//   Entries come in key order (sorted as they are written), at most about 1 MiB per frame.
//
// Snapshots are made from the log, not from the store (compact()): the last snapshot and the
// closed segments after it are folded into a map on the blocking pool and written out, so no
// shard lock is taken at all and the snapshot is exactly the store at a segment boundary. The
// price is memory: the map holds a second copy of the data while it is built.
//
//   auto info = wal::compact(fs, wal_dir, /*open_segment=*/journal.open_segment());
//   // info->revision: the snapshot's; the segments before it are gone
//   wal::read_snapshot(fs, path, [&](std::string_view key, const wal::snap_entry& e) {...});
//
// Every write is synced, renamed into place and its directory synced before anything it
// replaces is removed: a crash at any point leaves the old snapshot and log, or the new ones.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "service/wal/file_system.h"
#include "service/wal/record.h"

namespace shoal::service::wal {

struct snap_entry {
  std::string value;
  uint64_t create_revision = 0;
  uint64_t mod_revision = 0;
  uint64_t version = 0;
  int64_t deadline_wall_ns = 0;  // 0 = no TTL
};
// A store folded from a snapshot and records: hashed (folding a log is a lookup per change),
// sorted only when written.
using snap_state = absl::flat_hash_map<std::string, snap_entry>;

struct snapshot_info {
  std::string path;
  uint64_t revision = 0;
  uint64_t keys = 0;
  uint64_t bytes = 0;  // keys and values
  uint64_t file_bytes = 0;
  uint32_t checksum = 0;  // crc32c of the file before its footer
  int64_t written_wall_ns = 0;
};

std::string snapshot_name(uint64_t revision);
bool parse_snapshot_name(std::string_view name, uint64_t* revision);
// The newest snapshot in dir, if any: (revision, file name).
absl::StatusOr<std::optional<std::pair<uint64_t, std::string>>> newest_snapshot(
    file_system& fs, const std::string& dir);

// Encodes state at revision as a snapshot file's bytes.
std::string encode_snapshot(uint64_t revision, const snap_state& state, int64_t wall_ns);
// Writes it into dir (a temporary file, synced, renamed, dir synced).
absl::StatusOr<snapshot_info> write_snapshot(file_system& fs, const std::string& dir,
                                             uint64_t revision, const snap_state& state);
// Checks a snapshot's bytes and calls each() for its entries, in key order. DATA_LOSS, naming
// `name` and the byte offset, if anything is wrong.
absl::StatusOr<snapshot_info> decode_snapshot(
    std::string_view bytes, const std::string& name,
    absl::FunctionRef<absl::Status(std::string_view key, const snap_entry& e)> each);
absl::StatusOr<snapshot_info> read_snapshot(
    file_system& fs, const std::string& path,
    absl::FunctionRef<absl::Status(std::string_view key, const snap_entry& e)> each);

// One log record applied to a state.
void apply_record(snap_state& state, const record_view& r);

// Folds the newest snapshot and every segment before the open one into a new snapshot, then
// removes what it replaces. Blocking: run it on the blocking pool.
absl::StatusOr<snapshot_info> compact(file_system& fs, const std::string& dir,
                                      uint64_t open_segment_first);

}  // namespace shoal::service::wal
