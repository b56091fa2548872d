// Fuzzes a Pipeline stream's frames as shoald reads them (handlers/pipeline.h, run_frame): each
// input is one frame's bytes, screened, parsed and run against a store that a few Puts filled.
// A frame either is not a request (nothing ran: the store stands) or gets a reply with an id that
// fits in a message; an error in a reply has a message and is never INTERNAL or UNKNOWN.
#include <cstddef>
#include <cstdint>
#include <string>

#include "google/protobuf/arena.h"
#include "service/handlers/kv.h"
#include "service/handlers/pipeline.h"
#include "tests/fuzz/fuzz_env.h"

namespace {

using namespace shoal;
namespace handlers = shoal::service::handlers;
namespace store = shoal::service::store;

// A few keys, one of them near the value limit, so that reads have something to return.
void fill(fuzz::env& e) {
  for (const char* key : {"a", "a/1", "a/2", "b", "n"}) {
    v1::PutRequest put;
    put.set_key(key);
    put.set_value(std::string(key) == "n"   ? "7"
                  : std::string(key) == "b" ? std::string(50 << 10, 'b')
                                            : "value");
    v1::PutResponse resp;
    if (!handlers::put(e.ctx, put, resp).ok()) fuzz::fail("the fixture's Put failed");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t n) {
  fuzz::env e;
  fill(e);
  const uint64_t revision = e.kv.revision();
  grpc::Slice slice(data, n);
  grpc::ByteBuffer frame(&slice, 1);
  google::protobuf::Arena request_arena;
  v1::PipelineResponse resp;
  const std::optional<uint64_t> id = handlers::run_frame(e.ctx, *e.cfg, frame, request_arena, resp);
  if (!id) {
    if (e.kv.revision() != revision) fuzz::fail("a frame that is not a request ran");
    return 0;
  }
  if (resp.id() != *id) fuzz::fail("the reply's id is not the request's");
  e.check_reply(grpc::Status::OK, resp);
  if (resp.has_error()) {
    const auto code = static_cast<grpc::StatusCode>(resp.error().code());
    if (resp.error().message().empty()) fuzz::fail("an error without a message");
    e.check_reply(grpc::Status(code, resp.error().message()), resp);
  }
  return 0;
}
