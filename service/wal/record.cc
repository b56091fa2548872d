#include "service/wal/record.h"

#include <cstring>

#include "service/wal/bytes.h"
#include "service/wal/crc32c.h"

namespace shoal::service::wal {
namespace {

uint32_t frame_crc(uint32_t size, std::string_view payload) {
  char b[4];
  std::memcpy(b, &size, 4);
  return crc32c::extend(crc32c::extend(0, b, 4), payload.data(), payload.size());
}

bool parse_payload(std::string_view payload, record_view* out) {
  byte_reader r(payload);
  uint8_t format = 0;
  uint8_t flags = 0;
  uint32_t ops = 0;
  if (!r.get(&format) || format != k_record_format || !r.get(&flags) || flags > 1) return false;
  out->group = flags == 1;
  if (!r.get(&out->revision) || !r.get(&out->wall_ns) || !r.get(&ops)) return false;
  out->ops.clear();
  // Each op takes at least five bytes: a count beyond that is damage (and no huge reserve).
  if (ops > payload.size() / 5) return false;
  out->ops.reserve(ops);
  for (uint32_t i = 0; i < ops; ++i) {
    op_view op;
    uint8_t type = 0;
    uint32_t key_size = 0;
    if (!r.get(&type) || !r.get(&key_size) || key_size > k_max_key_bytes ||
        !r.bytes(key_size, &op.key)) {
      return false;
    }
    op.type = static_cast<op_type>(type);
    switch (op.type) {
      case op_type::put: {
        uint32_t value_size = 0;
        if (!r.get(&op.meta.create_revision) || !r.get(&op.meta.version) ||
            !r.get(&op.meta.deadline_wall_ns) || !r.get(&value_size) ||
            !r.bytes(value_size, &op.value)) {
          return false;
        }
        break;
      }
      case op_type::remove:
      case op_type::expire:
        break;
      default:
        return false;
    }
    out->ops.push_back(op);
  }
  return r.done() && out->revision != 0 && out->revision < k_max_revision;
}

}  // namespace

record_builder::record_builder(std::string* out, uint64_t revision, int64_t wall_ns, bool group)
    : out_(out), start_(out->size()) {
  out_->append(k_frame_header_bytes, '\0');
  put_le<uint8_t>(out_, k_record_format);
  put_le<uint8_t>(out_, group ? 1 : 0);
  put_le<uint64_t>(out_, revision);
  put_le<int64_t>(out_, wall_ns);
  put_le<uint32_t>(out_, 0);  // the op count, set by finish()
}

void record_builder::key_op(op_type t, std::string_view key) {
  put_le<uint8_t>(out_, static_cast<uint8_t>(t));
  put_le<uint32_t>(out_, static_cast<uint32_t>(key.size()));
  out_->append(key);
  ++ops_;
}

void record_builder::put(std::string_view key, std::string_view value, const op_meta& m) {
  key_op(op_type::put, key);
  put_le<uint64_t>(out_, m.create_revision);
  put_le<uint64_t>(out_, m.version);
  put_le<int64_t>(out_, m.deadline_wall_ns);
  put_le<uint32_t>(out_, static_cast<uint32_t>(value.size()));
  out_->append(value);
}

void record_builder::remove(std::string_view key) { key_op(op_type::remove, key); }
void record_builder::expire(std::string_view key) { key_op(op_type::expire, key); }

std::size_t record_builder::finish() {
  const std::size_t payload_at = start_ + k_frame_header_bytes;
  set_le<uint32_t>(out_, payload_at + 2 + 8 + 8, ops_);
  const auto size = static_cast<uint32_t>(out_->size() - payload_at);
  set_le<uint32_t>(out_, start_, size);
  set_le<uint32_t>(out_, start_ + 4,
                   frame_crc(size, std::string_view(*out_).substr(payload_at, size)));
  return out_->size() - start_;
}

void append_frame(std::string* out, std::string_view payload) {
  const auto size = static_cast<uint32_t>(payload.size());
  put_le<uint32_t>(out, size);
  put_le<uint32_t>(out, frame_crc(size, payload));
  out->append(payload);
}

decoded decode_frame(std::string_view buf, std::size_t offset, std::string_view* payload,
                     std::size_t* next) {
  if (offset > buf.size() || buf.size() - offset < k_frame_header_bytes) {
    return decoded::truncated;
  }
  uint32_t size = 0;
  uint32_t crc = 0;
  std::memcpy(&size, buf.data() + offset, 4);
  std::memcpy(&crc, buf.data() + offset + 4, 4);
  if (size > k_max_record_bytes) return decoded::corrupt;
  if (buf.size() - offset - k_frame_header_bytes < size) return decoded::truncated;
  *payload = buf.substr(offset + k_frame_header_bytes, size);
  if (frame_crc(size, *payload) != crc) return decoded::corrupt;
  *next = offset + k_frame_header_bytes + size;
  return decoded::ok;
}

decoded decode(std::string_view buf, std::size_t offset, record_view* out, std::size_t* next) {
  std::string_view payload;
  const decoded d = decode_frame(buf, offset, &payload, next);
  if (d != decoded::ok) return d;
  return parse_payload(payload, out) ? decoded::ok : decoded::corrupt;
}

bool later_record_after(std::string_view buf, std::size_t from, uint64_t revision) {
  record_view scratch;
  std::size_t next = 0;
  for (std::size_t at = from; at + k_frame_header_bytes <= buf.size(); ++at) {
    if (decode(buf, at, &scratch, &next) == decoded::ok && scratch.revision > revision) return true;
  }
  return false;
}

}  // namespace shoal::service::wal
