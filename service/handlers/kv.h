// kv: the unary methods of shoal.v1.KV. Each is a plain function: it validates the request,
// calls the (synchronous) store, and fills the response.
#pragma once

#include "grpcpp/grpcpp.h"
#include "service/context.h"
#include "shoal/v1/kv.pb.h"

namespace shoal::service::handlers {

grpc::Status get(context& ctx, const v1::GetRequest& req, v1::GetResponse& resp);
grpc::Status put(context& ctx, const v1::PutRequest& req, v1::PutResponse& resp);
grpc::Status remove(context& ctx, const v1::DeleteRequest& req, v1::DeleteResponse& resp);
grpc::Status increment(context& ctx, const v1::IncrementRequest& req, v1::IncrementResponse& resp);
grpc::Status range(context& ctx, const v1::RangeRequest& req, v1::RangeResponse& resp);
// One operation of a Batch or a Pipeline, as its own call would run it; a failure becomes the
// result's error. `keep_header`: false in a Batch, whose header says it once.
void run_op(context& ctx, const v1::Op& op, v1::OpResult& result, bool keep_header);
// Runs each operation as its own call would, in order; not atomic.
grpc::Status batch(context& ctx, const v1::BatchRequest& req, v1::BatchResponse& resp);
// Compares, then one branch, atomically and in one revision (docs/design.md).
grpc::Status txn(context& ctx, const v1::TxnRequest& req, v1::TxnResponse& resp);

// For Range and for a Range inside a Txn: the request checked and turned into a query, and a
// page turned into a response.
grpc::Status to_range_query(const v1::RangeRequest& req, const config::snapshot& cfg,
                            store::range_query* out);
void fill_range(const store::range_page& page, const store::store& kv, v1::RangeResponse& resp);

}  // namespace shoal::service::handlers
