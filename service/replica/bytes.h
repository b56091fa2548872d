// bytes: fixed-size integers in little-endian byte order, appended to and read from byte strings —
// the encoding of what a replica writes into Raft's log and snapshots (entry.h, raft_store.cc).
//
//   std::string out;
//   replica::put_int(&out, uint64_t{7});
//   std::string_view in = out;
//   uint64_t v = 0;
//   bool ok = replica::get_int(&in, &v);   // v == 7, `in` advanced past it
#pragma once

#include <cstring>
#include <string>
#include <string_view>

namespace shoal::service::replica {

template <class T>
void put_int(std::string* out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian hosts only (x86-64, arm64)
  out->append(b, sizeof(T));
}

// False, and `in` untouched, if it is too short.
template <class T>
bool get_int(std::string_view* in, T* v) {
  if (in->size() < sizeof(T)) return false;
  std::memcpy(v, in->data(), sizeof(T));
  in->remove_prefix(sizeof(T));
  return true;
}

}  // namespace shoal::service::replica
