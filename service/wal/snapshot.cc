#include "service/wal/snapshot.h"

#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "service/log.h"
#include "service/wal/bytes.h"
#include "service/wal/crc32c.h"
#include "service/wal/replay.h"

namespace shoal::service::wal {
namespace {

constexpr uint32_t k_snapshot_format = 1;
constexpr std::size_t k_block_bytes = 1 << 20;

int64_t wall_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool parse_hex_name(std::string_view name, std::string_view prefix, std::string_view suffix,
                    uint64_t* out) {
  if (name.size() != prefix.size() + 16 + suffix.size() || name.substr(0, prefix.size()) != prefix ||
      name.substr(prefix.size() + 16) != suffix) {
    return false;
  }
  uint64_t v = 0;
  for (char c : name.substr(prefix.size(), 16)) {
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return false;
    v = v << 4 | static_cast<uint64_t>(d);
  }
  *out = v;
  return true;
}

absl::Status damaged(const std::string& name, std::size_t offset, const char* why) {
  return absl::DataLossError(absl::StrCat("the snapshot ", name, " is damaged at byte ", offset,
                                          ": ", why,
                                          ". Restore a backup (shoalctl snapshot restore)"));
}

}  // namespace

std::string snapshot_name(uint64_t revision) {
  return absl::StrFormat("snap-%016x.snap", revision);
}

bool parse_snapshot_name(std::string_view name, uint64_t* revision) {
  return parse_hex_name(name, "snap-", ".snap", revision);
}

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

std::string encode_snapshot(uint64_t revision, const snap_state& state, int64_t wall_ns) {
  std::string out;
  std::string payload;
  put_le<uint8_t>(&payload, 'H');
  put_le<uint32_t>(&payload, k_snapshot_format);
  put_le<uint64_t>(&payload, revision);
  put_le<int64_t>(&payload, wall_ns);
  append_frame(&out, payload);
  uint64_t bytes = 0;
  auto it = state.begin();
  while (it != state.end()) {
    payload.clear();
    put_le<uint8_t>(&payload, 'E');
    put_le<uint32_t>(&payload, 0);  // the count, set below
    uint32_t count = 0;
    for (; it != state.end() && (count == 0 || payload.size() < k_block_bytes); ++it, ++count) {
      const auto& [key, e] = *it;
      put_le<uint32_t>(&payload, static_cast<uint32_t>(key.size()));
      payload.append(key);
      put_le<uint32_t>(&payload, static_cast<uint32_t>(e.value.size()));
      payload.append(e.value);
      put_le<uint64_t>(&payload, e.create_revision);
      put_le<uint64_t>(&payload, e.mod_revision);
      put_le<uint64_t>(&payload, e.version);
      put_le<int64_t>(&payload, e.deadline_wall_ns);
      bytes += key.size() + e.value.size();
    }
    set_le<uint32_t>(&payload, 1, count);
    append_frame(&out, payload);
  }
  payload.clear();
  put_le<uint8_t>(&payload, 'F');
  put_le<uint64_t>(&payload, static_cast<uint64_t>(state.size()));
  put_le<uint64_t>(&payload, bytes);
  put_le<uint32_t>(&payload, crc32c::of(out));
  append_frame(&out, payload);
  return out;
}

absl::StatusOr<snapshot_info> decode_snapshot(
    std::string_view bytes, const std::string& name,
    absl::FunctionRef<absl::Status(std::string_view key, const snap_entry& e)> each) {
  snapshot_info info;
  info.file_bytes = bytes.size();
  std::size_t offset = 0;
  std::string_view payload;
  std::size_t next = 0;
  if (decode_frame(bytes, 0, &payload, &next) != decoded::ok) {
    return damaged(name, 0, "its header does not check");
  }
  {
    byte_reader r(payload);
    uint8_t kind = 0;
    uint32_t format = 0;
    if (!r.get(&kind) || kind != 'H' || !r.get(&format) || !r.get(&info.revision) ||
        !r.get(&info.written_wall_ns) || !r.done()) {
      return damaged(name, 0, "it has no snapshot header");
    }
    if (format != k_snapshot_format) {
      return absl::FailedPreconditionError(
          absl::StrCat("the snapshot ", name, " has format ", format, "; this shoald reads ",
                       k_snapshot_format));
    }
  }
  std::string last_key;
  snap_entry e;
  for (offset = next;;) {
    const decoded d = decode_frame(bytes, offset, &payload, &next);
    if (d != decoded::ok) {
      return damaged(name, offset,
                     d == decoded::truncated ? "the file ends early" : "a block fails its checksum");
    }
    byte_reader r(payload);
    uint8_t kind = 0;
    if (!r.get(&kind)) return damaged(name, offset, "an empty block");
    if (kind == 'F') {
      uint64_t keys = 0;
      uint64_t total = 0;
      if (!r.get(&keys) || !r.get(&total) || !r.get(&info.checksum) || !r.done()) {
        return damaged(name, offset, "its footer does not parse");
      }
      if (keys != info.keys || total != info.bytes ||
          info.checksum != crc32c::of(bytes.substr(0, offset))) {
        return damaged(name, offset, "its footer does not match its contents");
      }
      if (next != bytes.size()) return damaged(name, next, "bytes follow its footer");
      return info;
    }
    uint32_t count = 0;
    if (kind != 'E' || !r.get(&count)) return damaged(name, offset, "an unknown block");
    for (uint32_t i = 0; i < count; ++i) {
      std::string_view key;
      std::string_view value;
      if (!r.sized(&key) || !r.sized(&value) || !r.get(&e.create_revision) ||
          !r.get(&e.mod_revision) || !r.get(&e.version) || !r.get(&e.deadline_wall_ns)) {
        return damaged(name, offset, "an entry does not parse");
      }
      if (info.keys > 0 && key <= last_key) return damaged(name, offset, "keys out of order");
      if (e.mod_revision > info.revision || e.create_revision > e.mod_revision) {
        return damaged(name, offset, "an entry's revisions are beyond the snapshot's");
      }
      last_key.assign(key);
      e.value.assign(value);
      if (auto st = each(key, e); !st.ok()) return st;
      ++info.keys;
      info.bytes += key.size() + value.size();
    }
    if (!r.done()) return damaged(name, offset, "a block holds more than its entries");
    offset = next;
  }
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
    if (op.type == op_type::put) {
      snap_entry& e = state[std::string(op.key)];
      e.value.assign(op.value);
      e.create_revision = op.meta.create_revision;
      e.mod_revision = r.revision;
      e.version = op.meta.version;
      e.deadline_wall_ns = op.meta.deadline_wall_ns;
    } else {
      state.erase(std::string(op.key));
    }
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
      state.emplace_hint(state.end(), std::string(key), e);
      return absl::OkStatus();
    });
    if (!read.ok()) return read.status();
    base = read->revision;
  }
  auto replayed = replay(fs, dir,
                         {.after = base, .before_segment = open_segment_first, .repair = false},
                         [&](const record_view& r) {
                           apply_record(state, r);
                           return absl::OkStatus();
                         });
  if (!replayed.ok()) return replayed.status();
  if (replayed->last_revision == base) {
    return absl::FailedPreconditionError("nothing to compact: no closed segment after the snapshot");
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
