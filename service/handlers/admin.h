// admin: shoal.v1.Admin's unary methods and grpc.health.v1.Health/Check.
#pragma once

#include "grpc/health/v1/health.pb.h"
#include "grpcpp/grpcpp.h"
#include "service/context.h"
#include "shoal/v1/admin.pb.h"

namespace shoal::service::handlers {

grpc::Status status(context& ctx, const v1::StatusRequest& req, v1::StatusResponse& resp);
grpc::Status get_config(context& ctx, const v1::GetConfigRequest& req, v1::GetConfigResponse& resp);
grpc::Status health_check(context& ctx, const grpc::health::v1::HealthCheckRequest& req,
                          grpc::health::v1::HealthCheckResponse& resp);

}  // namespace shoal::service::handlers
