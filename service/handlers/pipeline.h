// pipeline: KV/Pipeline, many requests on one bidirectional stream, answered in order.
#pragma once

#include <cstdint>
#include <optional>

#include "google/protobuf/arena.h"
#include "runtime/task.h"
#include "service/context.h"
#include "service/handlers/call.h"
#include "shoal/v1/kv.pb.h"

namespace shoal::service::handlers {

// The stream's frames, raw: the handler parses each request itself, so that a frame which is
// not a PipelineRequest is told apart from the client closing its side (gRPC reports both as a
// failed read). Served with KV::WithRawMethod_Pipeline.
using pipeline_stream = bidi_stream<grpc::ByteBuffer, grpc::ByteBuffer>;

// Reads requests while fewer than live.max_pipeline_depth are unanswered and fewer than
// live.max_pipeline_bytes of replies wait; runs each (an operation or a Batch) at once; a second
// task writes the replies in order. Ends when the client has sent its last request and every
// reply is written, or when the stream breaks; a frame that is not a request ends it, once the
// replies before it are written, with INVALID_ARGUMENT naming the last id answered.
rt::task<grpc::Status> pipeline(context& ctx, pipeline_stream& stream, const call_done& done);

// One frame, as the stream runs it: screened (a Batch over live.max_batch_ops is answered with
// the error), parsed into `request_arena` (reset first), run, and answered into `resp`. Returns
// the request's id, or nothing if the frame is not a PipelineRequest (then nothing ran). With a
// caller (auth on), a request it may not make is answered with PERMISSION_DENIED and not run.
//
//   google::protobuf::Arena arena;
//   v1::PipelineResponse resp;
//   if (auto id = run_frame(ctx, *ctx.current_config(), frame, arena, resp); !id) ...
std::optional<uint64_t> run_frame(context& ctx, const config::snapshot& cfg,
                                  grpc::ByteBuffer& frame, google::protobuf::Arena& request_arena,
                                  v1::PipelineResponse& resp,
                                  const auth::stream_caller* caller = nullptr);

}  // namespace shoal::service::handlers
