// record: one revision's changes as the log stores them, and the framing that guards them.
//
// A record is what a revision did, exactly: each key written (with its value, create_revision,
// version and TTL deadline) or removed, in the order the store applied them. Replaying records in
// order on any machine gives the same store, whatever the hash seed or the shard count.
//
//   frame:   [u32 payload size][u32 crc32c of (size, payload)][payload]      (little-endian)
//   payload: [u8 format = 1][u8 flags: 1 = a group (a Txn's writes)][u64 revision]
//            [i64 wall-clock ns][u32 ops] ops...
//   op:      [u8 put|remove|expire][u32 key size][key]
//            put only: [u64 create_revision][u64 version][i64 deadline, wall-clock ns, 0 = none]
//                      [u32 value size][value]
//
//   std::string log;
//   wal::record_builder b(&log, /*revision=*/7, wall_ns);  // a Txn's: group = true
//   b.put("k", "v", {.create_revision = 7, .version = 1});
//   b.finish();
//   wal::record_view r;
//   std::size_t next = 0;
//   auto outcome = wal::decode(log, 0, &r, &next);   // decoded::ok, r.ops[0].key == "k"
//
// Deadlines are wall-clock: a TTL keeps running while shoald is down, so whatever expired meanwhile
// expires at start.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace shoal::service::wal {

inline constexpr uint8_t k_record_format = 1;
inline constexpr std::size_t k_frame_header_bytes = 8;
// No record is larger (a Txn is bounded by the request size, far below this): a larger size in a
// frame header is damage, not a record.
inline constexpr uint32_t k_max_record_bytes = 1u << 30;

enum class op_type : uint8_t { put = 1, remove = 2, expire = 3 };

struct op_meta {
  uint64_t create_revision = 0;
  uint64_t version = 0;
  int64_t deadline_wall_ns = 0;  // 0 = no TTL
};

struct op_view {
  op_type type = op_type::put;
  std::string_view key;
  std::string_view value;  // put
  op_meta meta;            // put
};

struct record_view {
  uint64_t revision = 0;
  bool group = false;  // a Txn's writes, published together (even a single one)
  int64_t wall_ns = 0;
  std::vector<op_view> ops;  // views into the decoded buffer
};

// Appends one framed record to `out`. The frame's header is filled in by finish().
class record_builder {
 public:
  record_builder(std::string* out, uint64_t revision, int64_t wall_ns, bool group = false);
  void put(std::string_view key, std::string_view value, const op_meta& m);
  void remove(std::string_view key);
  void expire(std::string_view key);
  // Fills in the size and checksum. Returns the frame's size.
  std::size_t finish();

 private:
  void key_op(op_type t, std::string_view key);
  std::string* out_;
  std::size_t start_;
  uint32_t ops_ = 0;
};

enum class decoded {
  ok,
  // The buffer ends inside the frame: a write cut short (a torn tail), or the end of the data.
  truncated,
  // The frame is whole but its checksum or contents are wrong.
  corrupt,
};

// A frame around any payload (snapshots use the same framing as records).
void append_frame(std::string* out, std::string_view payload);
// The payload of the frame at `offset` (checksum verified): *next is the offset after it.
decoded decode_frame(std::string_view buf, std::size_t offset, std::string_view* payload,
                     std::size_t* next);

// Decodes the frame at `offset`. On ok, *next is the offset after it.
decoded decode(std::string_view buf, std::size_t offset, record_view* out, std::size_t* next);

// Whether a whole, valid record later than `revision` starts anywhere in [from, buf.size()): a
// bad frame followed by the records after it is damage in the middle of a log, not a torn tail.
bool later_record_after(std::string_view buf, std::size_t from, uint64_t revision);

// Keys are at most this long (the store's limit), and revisions below 2^63: a record or a
// snapshot beyond either is damage, whatever its checksum says.
inline constexpr std::size_t k_max_key_bytes = 65535;
inline constexpr uint64_t k_max_revision = uint64_t{1} << 62;

}  // namespace shoal::service::wal
