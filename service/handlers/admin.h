// admin: shoal.v1.Admin's methods (WatchConfig is in watch.h) and grpc.health.v1.Health/Check.
#pragma once

#include "grpc/health/v1/health.pb.h"
#include "grpcpp/grpcpp.h"
#include "runtime/task.h"
#include "service/context.h"
#include "service/handlers/call.h"
#include "shoal/v1/admin.pb.h"

namespace shoal::service::handlers {

grpc::Status status(context& ctx, const v1::StatusRequest& req, v1::StatusResponse& resp);
grpc::Status get_config(context& ctx, const v1::GetConfigRequest& req, v1::GetConfigResponse& resp);
// Admin/Snapshot: a durable server's store as a snapshot file, in chunks.
rt::task<grpc::Status> snapshot(context& ctx, const v1::SnapshotRequest& req,
                                stream_writer<v1::SnapshotChunk>& out, const call_done& done);
// AddMember, RemoveMember, TransferLeadership on a single server: FAILED_PRECONDITION (a
// replicated one runs them in handlers/call.h's run_replicated, through replica/raft_store).
grpc::Status not_replicated(context& ctx, const v1::AddMemberRequest& req,
                            v1::MembersResponse& resp);
grpc::Status not_replicated(context& ctx, const v1::RemoveMemberRequest& req,
                            v1::MembersResponse& resp);
grpc::Status not_replicated(context& ctx, const v1::TransferLeadershipRequest& req,
                            v1::MembersResponse& resp);
grpc::Status health_check(context& ctx, const grpc::health::v1::HealthCheckRequest& req,
                          grpc::health::v1::HealthCheckResponse& resp);

}  // namespace shoal::service::handlers
