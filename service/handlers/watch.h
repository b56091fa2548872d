// watch: the streaming methods — KV/Watch, Admin/WatchConfig, and grpc.health.v1.Health/Watch.
//
// Each is a coroutine that call.h's post_stream runs per call; each waits in one select on {its
// next change, the client gone (call_done::ended), the drain (context::shutdown)}, so nothing
// polls:
//
//   post_stream(rt, &kv_service, &KV::RequestWatch, &handlers::watch, cq, &ctx,
//               metrics::method::watch, count);          // server.cc, once per queue
//
// KV/Watch replays the hub's history from start_revision, then follows its broadcast channel,
// batching events up to half a message per response. A watcher that falls behind the channel's
// bound (events or bytes) ends with ABORTED and the revision to resume from; a drain ends every
// stream with a last response saying where to resume, then UNAVAILABLE.
#pragma once

#include "grpc/health/v1/health.pb.h"
#include "runtime/task.h"
#include "service/context.h"
#include "service/handlers/call.h"
#include "shoal/v1/admin.pb.h"
#include "shoal/v1/kv.pb.h"

namespace shoal::service::handlers {

rt::task<grpc::Status> watch(context& ctx, const v1::WatchRequest& req,
                             stream_writer<v1::WatchResponse>& out, const call_done& done);

rt::task<grpc::Status> watch_config(context& ctx, const v1::WatchConfigRequest& req,
                                    stream_writer<v1::GetConfigResponse>& out,
                                    const call_done& done);

rt::task<grpc::Status> health_watch(context& ctx, const grpc::health::v1::HealthCheckRequest& req,
                                    stream_writer<grpc::health::v1::HealthCheckResponse>& out,
                                    const call_done& done);

}  // namespace shoal::service::handlers
