// Raft entries as a replica reads them back from its disk log or a peer (service/replica/entry.h):
// any bytes either decode or are refused, never read past their end; whatever decodes encodes
// back to the same bytes (less the zero padding the disk log adds). Frames of several proposals
// (service/replica/frame.h) either give payloads that lie within the bytes, each then decoded the
// same way, or are refused.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "service/replica/entry.h"
#include "service/replica/frame.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace shoal::service::replica;
  const std::string input(reinterpret_cast<const char*>(data), size);
  (void)for_each_payload(input, [&](std::string_view p) {
    if (p.data() < input.data() || p.data() + p.size() > input.data() + input.size()) {
      __builtin_trap();  // a payload outside the frame
    }
    entry inner;
    (void)decode(p, &inner);
  });
  entry e;
  if (!decode(input, &e)) return 0;
  std::string again;
  switch (e.kind) {
    case entry_kind::call:
      again = encode_call(e.origin, e.sequence, e.wall_ns, e.method, e.body);
      break;
    case entry_kind::expire:
      again = encode_expire(e.origin, e.sequence, e.wall_ns, e.due);
      break;
    case entry_kind::init:
      again = encode_init(e.origin, e.sequence, e.wall_ns, e.body);
      break;
    case entry_kind::settings:
      again = encode_settings(e.origin, e.sequence, e.wall_ns, e.body);
      break;
  }
  if (input.compare(0, again.size(), again) != 0 || input.size() - again.size() >= 8) {
    __builtin_trap();  // decoded bytes that do not encode back
  }
  return 0;
}
