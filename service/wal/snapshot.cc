#include "service/wal/snapshot.h"

#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/log.h"
#include "service/wal/replay.h"

namespace shoal::service::wal {
namespace {

int64_t wall_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

absl::StatusOr<std::optional<std::pair<uint64_t, std::string>>> newest_snapshot(
    file_system& fs, const std::string& dir) {
  auto names = fs.list(dir);
  if (!names.ok()) return names.status();
  std::optional<std::pair<uint64_t, std::string>> best;
  for (const std::string& n : *names) {
    uint64_t rev = 0;
    if (parse_snapshot_name(n, &rev) && (!best || rev > best->first)) best.emplace(rev, n);
  }
  return best;
}

absl::StatusOr<snapshot_info> read_snapshot(
    file_system& fs, const std::string& path,
    absl::FunctionRef<absl::Status(std::string_view key, const snap_entry& e)> each) {
  std::string bytes;
  if (auto st = fs.read_file(path, &bytes); !st.ok()) return st;
  auto info = decode_snapshot(bytes, path, each);
  if (info.ok()) info->path = path;
  return info;
}

absl::StatusOr<snapshot_info> write_snapshot(file_system& fs, const std::string& dir,
                                             uint64_t revision, const snap_state& state) {
  const std::string bytes = encode_snapshot(revision, state, wall_now_ns());
  const std::string name = snapshot_name(revision);
  if (auto st = write_file_atomically(fs, dir, name, bytes); !st.ok()) return st;
  snapshot_info info;
  info.path = absl::StrCat(dir, "/", name);
  info.revision = revision;
  info.keys = state.size();
  info.file_bytes = bytes.size();
  return info;
}

void apply_record(snap_state& state, const record_view& r) {
  for (const op_view& op : r.ops) {
    // No string is made for a key that is there (Debian's abseil has its own string_view).
    auto it = state.find(absl::string_view(op.key.data(), op.key.size()));
    if (op.type != op_type::put) {
      if (it != state.end()) state.erase(it);
      continue;
    }
    if (it == state.end()) it = state.try_emplace(std::string(op.key)).first;
    snap_entry& e = it->second;
    e.value.assign(op.value);
    e.create_revision = op.meta.create_revision;
    e.mod_revision = r.revision;
    e.version = op.meta.version;
    e.deadline_wall_ns = op.meta.deadline_wall_ns;
  }
}

absl::StatusOr<snapshot_info> compact(file_system& fs, const std::string& dir,
                                      uint64_t open_segment_first) {
  snap_state state;
  uint64_t base = 0;
  std::optional<std::string> old_snapshot;
  auto newest = newest_snapshot(fs, dir);
  if (!newest.ok()) return newest.status();
  if (*newest) {
    old_snapshot = absl::StrCat(dir, "/", (*newest)->second);
    auto read = read_snapshot(fs, *old_snapshot, [&](std::string_view key, const snap_entry& e) {
      state.emplace(std::string(key), e);
      return absl::OkStatus();
    });
    if (!read.ok()) return read.status();
    base = read->revision;
  }
  auto replayed =
      replay(fs, dir, {.after = base, .before_segment = open_segment_first, .repair = false},
             [&](const record_view& r) {
               apply_record(state, r);
               return absl::OkStatus();
             });
  if (!replayed.ok()) return replayed.status();
  if (replayed->last_revision == base) {
    return absl::FailedPreconditionError(
        "nothing to compact: no closed segment after the snapshot");
  }
  auto info = write_snapshot(fs, dir, replayed->last_revision, state);
  if (!info.ok()) return info.status();
  // The new snapshot is durable: what it replaces can go.
  auto segs = list_segments(fs, dir);
  if (!segs.ok()) return segs.status();
  for (const auto& [first, name] : *segs) {
    if (first < open_segment_first) {
      if (auto st = fs.remove(absl::StrCat(dir, "/", name)); !st.ok()) return st;
    }
  }
  if (old_snapshot) {
    if (auto st = fs.remove(*old_snapshot); !st.ok()) return st;
  }
  if (auto st = fs.sync_dir(dir); !st.ok()) return st;
  info->bytes = 0;
  for (const auto& [key, e] : state) info->bytes += key.size() + e.value.size();
  return info;
}

}  // namespace shoal::service::wal
