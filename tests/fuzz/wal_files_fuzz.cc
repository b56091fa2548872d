// The log's and snapshots' decoders on arbitrary bytes: what a damaged disk, a truncated copy or
// a hostile backup file may hold. shoald reads both at start, and shoalctl reads snapshot files.
//
// The input is read as a log segment (frame after frame, as replay does) and as a snapshot file.
// Checked: nothing crashes or reads out of bounds (ASan), and whatever decodes encodes back to
// exactly the same bytes (a decoder that accepted something else would replay another store).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "service/wal/record.h"
#include "service/wal/snapshot.h"

namespace wal = shoal::service::wal;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void as_log(std::string_view in) {
  std::size_t offset = 0;
  wal::record_view r;
  while (offset < in.size()) {
    std::size_t next = 0;
    if (wal::decode(in, offset, &r, &next) != wal::decoded::ok) {
      (void)wal::later_record_after(in, offset + 1, r.revision);  // what replay asks of a bad frame
      return;
    }
    std::string again;
    wal::record_builder b(&again, r.revision, r.wall_ns, r.group);
    for (const wal::op_view& op : r.ops) {
      switch (op.type) {
        case wal::op_type::put:
          b.put(op.key, op.value, op.meta);
          break;
        case wal::op_type::remove:
          b.remove(op.key);
          break;
        case wal::op_type::expire:
          b.expire(op.key);
          break;
      }
    }
    b.finish();
    check(again == in.substr(offset, next - offset));
    offset = next;
  }
}

void as_snapshot(std::string_view in) {
  wal::snap_state state;
  auto info = wal::decode_snapshot(in, "fuzz", [&](std::string_view key, const wal::snap_entry& e) {
    state.emplace(std::string(key), e);
    return absl::OkStatus();
  });
  if (!info.ok()) return;
  check(info->keys == state.size());
  check(wal::encode_snapshot(info->revision, state, info->written_wall_ns) == in);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  as_log(in);
  as_snapshot(in);
  return 0;
}
