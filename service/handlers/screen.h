// screen: a look at a request's bytes before they are parsed, for what parsing alone would make
// expensive. A 3 MiB Batch of 1.5 million empty operations is a few bytes per operation on the
// wire and tens of bytes each once parsed; counting its operations first refuses it for the cost
// of one pass over the bytes, with nothing allocated.
//
//   grpc::ByteBuffer wire = ...;                       // a KV/Batch request, as it arrived
//   if (auto st = screen_batch(wire, *cfg); !st.ok()) return st;   // INVALID_ARGUMENT
//   ... parse it ...
//
// Used by the methods served raw: Batch (call.h's serve_unary<true>) and Pipeline's frames. Bytes
// that are not a valid message pass: the parser that follows refuses them, with its own message.
#pragma once

#include <cstdint>

#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/codegen/proto_utils.h"  // protobuf messages on the wire
#include "service/config/config.h"

namespace shoal::service::handlers {

// A BatchRequest with more operations than live.max_batch_ops: INVALID_ARGUMENT.
grpc::Status screen_batch(const grpc::ByteBuffer& wire, const config::snapshot& cfg);
// A PipelineRequest whose Batch has more operations than live.max_batch_ops: INVALID_ARGUMENT.
// `id` gets the request's id, for the reply that carries the refusal.
grpc::Status screen_pipeline_request(const grpc::ByteBuffer& wire, const config::snapshot& cfg,
                                     uint64_t* id);

// A screen for a method served raw (screen_batch).
using wire_screen = grpc::Status (*)(const grpc::ByteBuffer&, const config::snapshot&);

// A raw request as a raw method takes it: screened, then parsed into `req` (the screen's refusal,
// or INVALID_ARGUMENT if the bytes are not a `Req`). Consumes `wire`.
template <class Req>
grpc::Status screen_and_parse(grpc::ByteBuffer& wire, wire_screen screen,
                              const config::snapshot& cfg, Req* req) {
  if (auto st = screen(wire, cfg); !st.ok()) return st;
  if (!grpc::GenericDeserialize<grpc::ProtoBufferReader, Req>(&wire, req).ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the request is not a valid message of its method's type");
  }
  return grpc::Status::OK;
}

}  // namespace shoal::service::handlers
