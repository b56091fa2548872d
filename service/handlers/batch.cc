#include "absl/strings/str_cat.h"
#include "service/handlers/convert.h"
#include "service/handlers/kv.h"

namespace shoal::service::handlers {
namespace {

// Runs one operation through its own handler; a failure becomes the operation's error.
template <class Req, class Resp>
void run(context& ctx, const op_env& env,
         grpc::Status (*handler)(context&, const op_env&, const Req&, Resp&), const Req& req,
         Resp* out, v1::OpResult& result) {
  const grpc::Status st = handler(ctx, env, req, *out);
  if (!st.ok()) fill_error(st, result.mutable_error());  // replaces the partial response
}

// An upper bound of what a result takes in the reply, cheaper than ByteSizeLong (which would
// size every result twice, here and when the reply is serialized): keys, values and messages by
// their length, k_result_overhead_bytes for each entry's numbers and framing, and a little for the
// result's own.
constexpr std::size_t k_result_frame_bytes = 32;

std::size_t entry_bound(const v1::Entry& e) {
  return e.key().size() + e.value().size() + store::k_result_overhead_bytes;
}

std::size_t result_bytes_bound(const v1::OpResult& r) {
  std::size_t n = k_result_frame_bytes;
  switch (r.result_case()) {
    case v1::OpResult::kError:
      n += r.error().message().size();
      break;
    case v1::OpResult::kGet:
      if (r.get().has_entry()) n += entry_bound(r.get().entry());
      break;
    case v1::OpResult::kPut:
      if (r.put().has_entry()) n += entry_bound(r.put().entry());
      if (r.put().has_previous()) n += entry_bound(r.put().previous());
      break;
    case v1::OpResult::kDelete:
      for (const v1::Entry& e : r.delete_().previous()) n += entry_bound(e);
      if (r.delete_().has_current()) n += entry_bound(r.delete_().current());
      break;
    case v1::OpResult::kIncrement:
      if (r.increment().has_entry()) n += entry_bound(r.increment().entry());
      break;
    case v1::OpResult::kRange:
      for (const v1::Entry& e : r.range().entries()) n += entry_bound(e);
      n += r.range().continuation().size();
      break;
    case v1::OpResult::RESULT_NOT_SET:
      break;
  }
  return n;
}

}  // namespace

std::size_t least_result_bytes(const v1::Op& op, const config::snapshot& cfg) {
  const std::size_t largest = cfg.live().max_value_bytes();
  std::size_t key = 0;
  bool previous = false;
  switch (op.op_case()) {
    case v1::Op::kGet:
      key = op.get().key().size();
      break;
    case v1::Op::kPut:
      key = op.put().key().size();
      previous = op.put().return_previous();
      break;
    case v1::Op::kDelete:
      key = op.delete_().key().size();
      previous = op.delete_().return_previous() && !op.delete_().by_prefix();
      break;
    case v1::Op::kIncrement:
      key = op.increment().key().size();
      break;
    case v1::Op::kRange:
    case v1::Op::OP_NOT_SET:
      break;
  }
  return store::k_result_overhead_bytes + key + (previous ? key + largest : 0);
}

void run_op(context& ctx, const op_env& env, const v1::Op& op, v1::OpResult& r) {
  switch (op.op_case()) {
    case v1::Op::kGet:
      run(ctx, env, &get_with, op.get(), r.mutable_get(), r);
      break;
    case v1::Op::kPut:
      run(ctx, env, &put_with, op.put(), r.mutable_put(), r);
      break;
    case v1::Op::kDelete:
      run(ctx, env, &remove_with, op.delete_(), r.mutable_delete_(), r);
      break;
    case v1::Op::kIncrement:
      run(ctx, env, &increment_with, op.increment(), r.mutable_increment(), r);
      break;
    case v1::Op::kRange:
      run(ctx, env, &range_with, op.range(), r.mutable_range(), r);
      break;
    case v1::Op::OP_NOT_SET:
      fill_error(invalid("an operation names none of get, put, delete, increment, range"),
                 r.mutable_error());
      break;
  }
}

grpc::Status batch(context& ctx, const v1::BatchRequest& req, v1::BatchResponse& resp) {
  const auto cfg = ctx.current_config();
  return batch_with(ctx, *cfg, req, resp);
}

grpc::Status batch_with(context& ctx, const config::snapshot& cfg, const v1::BatchRequest& req,
                        v1::BatchResponse& resp) {
  const uint32_t max_ops = cfg.live().max_batch_ops();
  if (static_cast<uint32_t>(req.ops_size()) > max_ops) {
    return invalid(absl::StrCat("the batch has ", req.ops_size(),
                                " operations; the limit is live.max_batch_ops = ", max_ops));
  }
  resp.mutable_results()->Reserve(req.ops_size());
  // The results share one reply: each takes its room, and one that would not fit is not run.
  reply_budget budget(reply_room(cfg));
  const op_env env{cfg, false, &budget};
  for (const v1::Op& op : req.ops()) {
    v1::OpResult& result = *resp.add_results();
    const std::size_t least = least_result_bytes(op, cfg);
    if (!budget.fits(least)) {
      fill_error(budget.refuse(least), result.mutable_error());
    } else {
      run_op(ctx, env, op, result);
    }
    budget.spend(result_bytes_bound(result));
  }
  ctx.fill(resp.mutable_header());
  return grpc::Status::OK;
}

}  // namespace shoal::service::handlers
