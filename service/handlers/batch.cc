#include "absl/strings/str_cat.h"
#include "service/handlers/convert.h"
#include "service/handlers/kv.h"

namespace shoal::service::handlers {
namespace {

// Runs one operation through its own handler; a failure becomes the operation's error.
template <class Req, class Resp>
void run(context& ctx, grpc::Status (*handler)(context&, const Req&, Resp&), const Req& req,
         Resp* out, v1::OpResult& result, bool keep_header) {
  const grpc::Status st = handler(ctx, req, *out);
  if (st.ok()) {
    if (!keep_header) out->clear_header();  // a batch's header says it once
    return;
  }
  v1::OpError* e = result.mutable_error();  // replaces the partial response in the oneof
  e->set_code(st.error_code());
  e->set_message(st.error_message());
}

}  // namespace

void run_op(context& ctx, const v1::Op& op, v1::OpResult& r, bool keep_header) {
  switch (op.op_case()) {
    case v1::Op::kGet:
      run(ctx, &get, op.get(), r.mutable_get(), r, keep_header);
      break;
    case v1::Op::kPut:
      run(ctx, &put, op.put(), r.mutable_put(), r, keep_header);
      break;
    case v1::Op::kDelete:
      run(ctx, &remove, op.delete_(), r.mutable_delete_(), r, keep_header);
      break;
    case v1::Op::kIncrement:
      run(ctx, &increment, op.increment(), r.mutable_increment(), r, keep_header);
      break;
    case v1::Op::kRange:
      run(ctx, &range, op.range(), r.mutable_range(), r, keep_header);
      break;
    case v1::Op::OP_NOT_SET:
      r.mutable_error()->set_code(grpc::StatusCode::INVALID_ARGUMENT);
      r.mutable_error()->set_message(
          "an operation names none of get, put, delete, increment, range");
      break;
  }
}

grpc::Status batch(context& ctx, const v1::BatchRequest& req, v1::BatchResponse& resp) {
  const auto cfg = ctx.current_config();
  const uint32_t max_ops = cfg->live().max_batch_ops();
  if (static_cast<uint32_t>(req.ops_size()) > max_ops) {
    return invalid(absl::StrCat("the batch has ", req.ops_size(),
                                " operations; the limit is live.max_batch_ops = ", max_ops));
  }
  resp.mutable_results()->Reserve(req.ops_size());
  for (const v1::Op& op : req.ops()) run_op(ctx, op, *resp.add_results(), false);
  ctx.fill(resp.mutable_header());
  return grpc::Status::OK;
}

}  // namespace shoal::service::handlers
