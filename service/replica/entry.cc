#include "service/replica/entry.h"

#include "service/replica/bytes.h"

namespace shoal::service::replica {
namespace {

std::string header(entry_kind k, uint64_t origin, uint64_t sequence, int64_t wall_ns) {
  std::string out;
  put_int<uint8_t>(&out, k_entry_format);
  put_int<uint8_t>(&out, static_cast<uint8_t>(k));
  put_int(&out, origin);
  put_int(&out, sequence);
  put_int(&out, wall_ns);
  return out;
}

}  // namespace

std::string encode_call(uint64_t origin, uint64_t sequence, int64_t wall_ns, metrics::method m,
                        const google::protobuf::MessageLite& request) {
  std::string out = header(entry_kind::call, origin, sequence, wall_ns);
  put_int<uint8_t>(&out, static_cast<uint8_t>(m));
  put_int(&out, static_cast<uint32_t>(request.ByteSizeLong()));
  request.AppendToString(&out);
  return out;
}

std::string encode_call(uint64_t origin, uint64_t sequence, int64_t wall_ns, metrics::method m,
                        std::string_view request) {
  std::string out = header(entry_kind::call, origin, sequence, wall_ns);
  put_int<uint8_t>(&out, static_cast<uint8_t>(m));
  put_int(&out, static_cast<uint32_t>(request.size()));
  out.append(request);
  return out;
}

std::string encode_expire(uint64_t origin, uint64_t sequence, int64_t wall_ns,
                          const std::vector<due_key>& due) {
  std::string out = header(entry_kind::expire, origin, sequence, wall_ns);
  put_int(&out, static_cast<uint32_t>(due.size()));  // each key is sized: no body size
  for (const due_key& d : due) {
    put_int(&out, static_cast<uint32_t>(d.key.size()));
    out.append(d.key);
    put_int(&out, d.mod_revision);
  }
  return out;
}

namespace {
std::string with_body(entry_kind k, uint64_t origin, uint64_t sequence, int64_t wall_ns,
                      std::string_view body) {
  std::string out = header(k, origin, sequence, wall_ns);
  put_int(&out, static_cast<uint32_t>(body.size()));
  out.append(body);
  return out;
}
}  // namespace

std::string encode_init(uint64_t origin, uint64_t sequence, int64_t wall_ns,
                        std::string_view store_id) {
  return with_body(entry_kind::init, origin, sequence, wall_ns, store_id);
}

std::string encode_settings(uint64_t origin, uint64_t sequence, int64_t wall_ns,
                            std::string_view server_config) {
  return with_body(entry_kind::settings, origin, sequence, wall_ns, server_config);
}

namespace {

bool sized_body(std::string_view* in, std::string_view* body) {
  uint32_t size = 0;
  if (!get_int(in, &size) || size > in->size()) return false;
  *body = in->substr(0, size);
  in->remove_prefix(size);
  return true;
}

// What may follow an entry: the zero bytes that pad it to 8 in Raft's log on disk.
bool padding(std::string_view rest) {
  if (rest.size() >= 8) return false;
  for (char c : rest) {
    if (c != 0) return false;
  }
  return true;
}

}  // namespace

bool decode(std::string_view in, entry* out) {
  uint8_t format = 0;
  uint8_t kind = 0;
  if (!get_int(&in, &format) || format != k_entry_format) return false;
  if (!get_int(&in, &kind) || !get_int(&in, &out->origin) || !get_int(&in, &out->sequence) ||
      !get_int(&in, &out->wall_ns)) {
    return false;
  }
  out->kind = static_cast<entry_kind>(kind);
  switch (out->kind) {
    case entry_kind::call: {
      uint8_t m = 0;
      if (!get_int(&in, &m) || m >= static_cast<uint8_t>(metrics::method::count_)) return false;
      out->method = static_cast<metrics::method>(m);
      return sized_body(&in, &out->body) && padding(in);
    }
    case entry_kind::expire: {
      uint32_t n = 0;
      if (!get_int(&in, &n) || n > in.size() / 12) return false;
      out->due.clear();
      out->due.reserve(n);
      for (uint32_t i = 0; i < n; ++i) {
        uint32_t size = 0;
        if (!get_int(&in, &size) || size > in.size()) return false;
        due_key d;
        d.key.assign(in.substr(0, size));
        in.remove_prefix(size);
        if (!get_int(&in, &d.mod_revision)) return false;
        out->due.push_back(std::move(d));
      }
      return padding(in);
    }
    case entry_kind::init:
    case entry_kind::settings:
      return sized_body(&in, &out->body) && padding(in);
  }
  return false;
}

}  // namespace shoal::service::replica
