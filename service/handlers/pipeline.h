// pipeline: KV/Pipeline, many requests on one bidirectional stream, answered in order.
#pragma once

#include "runtime/task.h"
#include "service/context.h"
#include "service/handlers/call.h"
#include "shoal/v1/kv.pb.h"

namespace shoal::service::handlers {

// Reads requests while fewer than live.max_pipeline_depth are unanswered and fewer than
// live.max_pipeline_bytes of replies wait; runs each (an operation or a Batch) at once; a second
// task writes the replies in order. Ends when the client has sent its last request and every
// reply is written, or when the stream breaks.
rt::task<grpc::Status> pipeline(context& ctx,
                                bidi_stream<v1::PipelineRequest, v1::PipelineResponse>& stream,
                                const call_done& done);

}  // namespace shoal::service::handlers
