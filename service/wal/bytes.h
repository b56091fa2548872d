// bytes: little-endian fields in and out of the log's and snapshots' payloads.
//
//   std::string out;
//   wal::put_le<uint64_t>(&out, 42);
//   wal::byte_reader r(out);
//   uint64_t v;
//   bool ok = r.get(&v) && r.done();   // any read past the end fails
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace shoal::service::wal {

template <class T>
void put_le(std::string* out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // x86-64 and aarch64 are little-endian
  out->append(b, sizeof(T));
}

template <class T>
void set_le(std::string* out, std::size_t at, T v) {
  std::memcpy(out->data() + at, &v, sizeof(T));
}

// Reads fixed-size fields off a payload; a read past the end fails and reads nothing.
class byte_reader {
 public:
  explicit byte_reader(std::string_view s) : s_(s) {}
  template <class T>
  bool get(T* v) {
    if (s_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(v, s_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool bytes(uint32_t n, std::string_view* v) {
    if (s_.size() - pos_ < n) return false;
    *v = s_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  // A u32 size, then that many bytes.
  bool sized(std::string_view* v) {
    uint32_t n = 0;
    return get(&n) && bytes(n, v);
  }
  bool done() const { return pos_ == s_.size(); }

 private:
  std::string_view s_;
  std::size_t pos_ = 0;
};

// A file name made of prefix, 16 lowercase hex digits and suffix (segments, snapshots).
inline bool parse_hex_name(std::string_view name, std::string_view prefix, std::string_view suffix,
                           uint64_t* out) {
  if (name.size() != prefix.size() + 16 + suffix.size() ||
      name.substr(0, prefix.size()) != prefix || name.substr(prefix.size() + 16) != suffix) {
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

}  // namespace shoal::service::wal
