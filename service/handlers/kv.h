// kv: the unary methods of shoal.v1.KV. Each is a plain function: it validates the request,
// calls the (synchronous) store, and fills the response.
#pragma once

#include <algorithm>
#include <cstddef>

#include "grpcpp/grpcpp.h"
#include "service/context.h"
#include "shoal/v1/kv.pb.h"

namespace shoal::service::handlers {

// The calls: each reads the live configuration, then runs as below.
grpc::Status get(context& ctx, const v1::GetRequest& req, v1::GetResponse& resp);
grpc::Status put(context& ctx, const v1::PutRequest& req, v1::PutResponse& resp);
grpc::Status remove(context& ctx, const v1::DeleteRequest& req, v1::DeleteResponse& resp);
grpc::Status increment(context& ctx, const v1::IncrementRequest& req, v1::IncrementResponse& resp);
grpc::Status range(context& ctx, const v1::RangeRequest& req, v1::RangeResponse& resp);
// The room left in a reply that gathers many results (a Batch's), in bytes. An operation whose
// result would not fit is not run (a read copies nothing) and answers RESOURCE_EXHAUSTED.
class reply_budget {
 public:
  explicit reply_budget(std::size_t bytes) : left_(bytes) {}
  std::size_t left() const { return left_; }
  bool fits(std::size_t bytes) const { return bytes <= left_; }
  void spend(std::size_t bytes) { left_ -= std::min(left_, bytes); }
  // Why a result of `bytes` is not in the reply.
  grpc::Status refuse(std::size_t bytes) const;

 private:
  std::size_t left_;
};

// What an operation runs with when it is one of many (a Batch, a Pipeline): the configuration
// read once for all of them, whether its response carries its own header (a Batch's header
// says it once), and the room its reply shares with the others (none: a reply of its own, which
// the limits on keys, values and pages already fit in a message).
struct op_env {
  const config::snapshot& cfg;
  bool header;
  reply_budget* budget = nullptr;
};
grpc::Status get_with(context& ctx, const op_env& env, const v1::GetRequest& req,
                      v1::GetResponse& resp);
grpc::Status put_with(context& ctx, const op_env& env, const v1::PutRequest& req,
                      v1::PutResponse& resp);
grpc::Status remove_with(context& ctx, const op_env& env, const v1::DeleteRequest& req,
                         v1::DeleteResponse& resp);
grpc::Status increment_with(context& ctx, const op_env& env, const v1::IncrementRequest& req,
                            v1::IncrementResponse& resp);
grpc::Status range_with(context& ctx, const op_env& env, const v1::RangeRequest& req,
                        v1::RangeResponse& resp);

// A call's configuration, read when it starts, for `op`.
template <class Req, class Resp>
grpc::Status as_call(context& ctx, const Req& req, Resp& resp,
                     grpc::Status (*op)(context&, const op_env&, const Req&, Resp&)) {
  const auto cfg = ctx.current_config();
  return op(ctx, op_env{*cfg, true}, req, resp);
}

// One operation of a Batch or a Pipeline, as its own call would run it; a failure becomes the
// result's error.
void run_op(context& ctx, const op_env& env, const v1::Op& op, v1::OpResult& result);
// The room an operation needs before it runs: its key and a result's overhead, and for a write
// that returns the previous entry, room for the largest value (it cannot be taken back once
// written). A get's or a range's value is checked as it is found.
std::size_t least_result_bytes(const v1::Op& op, const config::snapshot& cfg);
// Runs each operation as its own call would, in order; not atomic.
grpc::Status batch(context& ctx, const v1::BatchRequest& req, v1::BatchResponse& resp);
grpc::Status batch_with(context& ctx, const config::snapshot& cfg, const v1::BatchRequest& req,
                        v1::BatchResponse& resp);
// Compares, then one branch, atomically and in one revision (docs/design.md).
grpc::Status txn(context& ctx, const v1::TxnRequest& req, v1::TxnResponse& resp);

// For Range and for a Range inside a Txn: the request checked and turned into a query, and a
// page turned into a response.
grpc::Status to_range_query(const v1::RangeRequest& req, const config::snapshot& cfg,
                            store::range_query* out);
void fill_range(const store::range_page& page, const store::store& kv, v1::RangeResponse& resp);

}  // namespace shoal::service::handlers
