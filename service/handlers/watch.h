// watch: the streaming methods — KV/Watch, Admin/WatchConfig, and grpc.health.v1.Health/Watch.
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
