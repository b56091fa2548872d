// The snapshot file format alone, with no log and no files: shoalctl reads and writes it too.
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "service/wal/bytes.h"
#include "service/wal/crc32c.h"
#include "service/wal/snapshot.h"

namespace shoal::service::wal {
namespace {

constexpr uint32_t k_snapshot_format = 1;
constexpr std::size_t k_block_bytes = 1 << 20;

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

std::string encode_snapshot(uint64_t revision, const snap_state& state, int64_t wall_ns) {
  std::string out;
  std::string payload;
  put_le<uint8_t>(&payload, 'H');
  put_le<uint32_t>(&payload, k_snapshot_format);
  put_le<uint64_t>(&payload, revision);
  put_le<int64_t>(&payload, wall_ns);
  append_frame(&out, payload);
  uint64_t bytes = 0;
  std::vector<const snap_state::value_type*> sorted;
  sorted.reserve(state.size());
  for (const auto& kv : state) sorted.push_back(&kv);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });
  auto it = sorted.begin();
  while (it != sorted.end()) {
    payload.clear();
    put_le<uint8_t>(&payload, 'E');
    put_le<uint32_t>(&payload, 0);  // the count, set below
    uint32_t count = 0;
    for (; it != sorted.end() && (count == 0 || payload.size() < k_block_bytes); ++it, ++count) {
      const auto& [key, e] = **it;
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
    if (info.revision >= k_max_revision) return damaged(name, 0, "its revision is impossible");
    if (format != k_snapshot_format) {
      return absl::FailedPreconditionError(absl::StrCat("the snapshot ", name, " has format ",
                                                        format, "; this shoald reads ",
                                                        k_snapshot_format));
    }
  }
  std::string last_key;
  snap_entry e;
  for (offset = next;;) {
    const decoded d = decode_frame(bytes, offset, &payload, &next);
    if (d != decoded::ok) {
      return damaged(
          name, offset,
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
      if (key.empty() || key.size() > k_max_key_bytes) {
        return damaged(name, offset, "a key is empty or longer than 65,535 bytes");
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

}  // namespace shoal::service::wal
