#include "service/handlers/pipeline.h"

#include <algorithm>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "google/protobuf/arena.h"
#include "runtime/sync/mpsc.h"
#include "runtime/sync/select.h"
#include "runtime/sync/semaphore.h"
#include "service/handlers/kv.h"

namespace shoal::service::handlers {
namespace {

using stream_t = bidi_stream<v1::PipelineRequest, v1::PipelineResponse>;

// A 64-operation Batch of small values, parsed or answered, fits the first block.
constexpr std::size_t k_request_arena_bytes = 16384;
constexpr std::size_t k_reply_arena_bytes = 8192;

// A reply waiting to be written, with what it holds of the stream's two budgets: its place in
// the depth, and its bytes. Both return when it is dropped, written or not.
struct queued_reply {
  std::unique_ptr<google::protobuf::Arena> arena;
  v1::PipelineResponse* response;
  rt::semaphore_permit slot;
  rt::semaphore_permit bytes;
};

struct pipeline_state {
  pipeline_state(stream_t* s, uint32_t depth, uint32_t byte_budget)
      : stream(s), depth(depth), byte_budget(byte_budget), slots(depth), bytes(byte_budget) {}
  stream_t* stream;
  const uint32_t depth;
  const uint32_t byte_budget;
  rt::semaphore slots;  // one per request read and not yet answered
  rt::semaphore bytes;  // reply bytes waiting to be written
};

void answer(context& ctx, const v1::PipelineRequest& req, v1::PipelineResponse& resp) {
  resp.set_id(req.id());
  const auto cfg = ctx.current_config();  // each request sees the configuration of its time
  switch (req.request_case()) {
    case v1::PipelineRequest::kOp:
      run_op(ctx, op_env{*cfg, true}, req.op(), *resp.mutable_result());
      break;
    case v1::PipelineRequest::kBatch: {
      const grpc::Status st = batch_with(ctx, *cfg, req.batch(), *resp.mutable_batch());
      if (!st.ok()) {
        v1::OpError* e = resp.mutable_error();  // replaces the partial batch in the oneof
        e->set_code(st.error_code());
        e->set_message(st.error_message());
      }
      break;
    }
    case v1::PipelineRequest::REQUEST_NOT_SET:
      resp.mutable_error()->set_code(grpc::StatusCode::INVALID_ARGUMENT);
      resp.mutable_error()->set_message(
          absl::StrCat("request ", req.id(), " names neither an op nor a batch"));
      break;
  }
}

// Reads and runs requests, in order, as long as both budgets allow; dropping `replies` at the end
// tells the writer that no more come. Yields true if it stopped because the server is draining
// (the request read then was not run).
rt::task<bool> read_requests(context& ctx, std::shared_ptr<pipeline_state> st,
                             rt::mpsc::sender<queued_reply> replies) {
  // Each request is parsed into an arena reset after it ran: an operation is a oneof, which
  // protobuf would otherwise free and allocate again for every request.
  auto block = std::make_unique<char[]>(k_request_arena_bytes);
  google::protobuf::ArenaOptions request_options;
  request_options.initial_block = block.get();
  request_options.initial_block_size = k_request_arena_bytes;
  google::protobuf::Arena request_arena(request_options);
  for (;;) {
    auto slot = co_await st->slots.acquire();
    if (!slot) co_return false;  // the writer found the stream broken
    request_arena.Reset();
    auto& req = *google::protobuf::Arena::CreateMessage<v1::PipelineRequest>(&request_arena);
    const bool more = co_await st->stream->read(&req);
    if (!more) co_return false;  // the client is done sending
    if (ctx.draining.load(std::memory_order_acquire)) co_return true;
    google::protobuf::ArenaOptions options;
    options.start_block_size = k_reply_arena_bytes;
    auto arena = std::make_unique<google::protobuf::Arena>(options);
    auto* resp = google::protobuf::Arena::CreateMessage<v1::PipelineResponse>(arena.get());
    answer(ctx, req, *resp);
    resp->set_depth(st->depth - static_cast<uint32_t>(st->slots.available_permits()));
    // A reply larger than the whole budget waits for the queue to empty, then goes alone.
    const std::size_t size = std::min<std::size_t>(resp->ByteSizeLong(), st->byte_budget);
    auto bytes = co_await st->bytes.acquire(std::max<std::size_t>(size, 1));
    if (!bytes) co_return false;
    // Named, not brace-built inside the co_await (the g++ 12 pitfall in runtime/README.md).
    queued_reply reply{std::move(arena), resp, std::move(*slot), std::move(*bytes)};
    const bool sent = co_await replies.send(std::move(reply));
    if (!sent) co_return false;
  }
}

// Writes the replies in order. After a failed write it keeps receiving, and drops what it gets,
// so the reader is never left waiting for budget that only a write would return.
rt::task<bool> write_replies(std::shared_ptr<pipeline_state> st,
                             rt::mpsc::receiver<queued_reply> replies) {
  bool broken = false;
  for (;;) {
    std::optional<queued_reply> r = co_await replies.recv();
    if (!r) break;
    if (broken) continue;
    if (!co_await st->stream->write(*r->response)) {
      broken = true;
      st->slots.close();
      st->bytes.close();
    }
  }
  co_return !broken;
}

}  // namespace

rt::task<grpc::Status> pipeline(context& ctx, stream_t& stream, const call_done& done) {
  const auto cfg = ctx.current_config();
  const uint32_t depth = cfg->live().max_pipeline_depth();
  auto st = std::make_shared<pipeline_state>(&stream, depth, cfg->live().max_pipeline_bytes());
  auto [tx, rx] = rt::mpsc::channel<queued_reply>(depth);  // never full: the slots bound it
  auto [drained, written] =
      co_await rt::join(read_requests(ctx, st, std::move(tx)), write_replies(st, std::move(rx)));
  if (!written || done.done()) {
    co_return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
  }
  if (drained) {
    co_return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                           "the server is shutting down; the requests without a reply were not "
                           "run: send them to another instance");
  }
  co_return grpc::Status::OK;
}

}  // namespace shoal::service::handlers
