#include "service/handlers/pipeline.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "google/protobuf/arena.h"
#include "runtime/sync/mpsc.h"
#include "runtime/sync/notify.h"
#include "runtime/sync/select.h"
#include "runtime/sync/semaphore.h"
#include "runtime/sync/watch.h"
#include "service/handlers/convert.h"
#include "service/handlers/kv.h"
#include "service/handlers/screen.h"
#include "service/replica/raft_store.h"

namespace shoal::service::handlers {
namespace {

// Frames are read raw and parsed here: gRPC reports a frame it cannot parse as a failed read,
// which cannot be told from the client closing its side.
using stream_t = pipeline_stream;

// A 64-operation Batch of small values, parsed or answered, fits the first block.
constexpr std::size_t k_request_arena_bytes = 16384;
constexpr std::size_t k_reply_arena_bytes = 8192;

// On a replica, a write's reply is built where its entry applies, on the Raft thread: the
// request it runs (parsed into the reply's arena, so it lives as long) and the reply it fills,
// with the ticket the writer awaits (raft_store::submit).
struct replicated_write {
  context* ctx = nullptr;
  const v1::PipelineRequest* request = nullptr;
  v1::PipelineResponse* response = nullptr;
  std::optional<replica::raft_store::ticket> ticket;
};

// What the writer receives: a reply waiting to be written, with what it holds of the stream's two
// budgets (its place in the depth, and its bytes; both return when it is dropped, written or
// not); or word that the server is draining; or the reader's last word.
struct queued_reply {
  enum class kind : uint8_t { reply, drain, end };
  kind what = kind::reply;
  std::unique_ptr<google::protobuf::Arena> arena;
  v1::PipelineResponse* response = nullptr;
  rt::semaphore_permit slot;
  rt::semaphore_permit bytes;
  uint64_t seen_revision = 0;  // the store's revision once it ran: written once that is durable
  // A replica's write, its reply filled once it applies. Declared after the arena, so it goes
  // first: its ticket forgets the call before the reply's memory does.
  std::unique_ptr<replicated_write> pending;
};

// The reader's state, for ending an idle stream on a drain: the writer may finish the call only
// while the reader waits in a read (and so runs nothing more).
enum reader_state : int { k_running, k_reading, k_finishing };

// How the reader stopped.
enum class reader_end { client_done, drained, unparsable, revoked };

struct pipeline_state {
  pipeline_state(stream_t* s, uint32_t depth, uint32_t byte_budget)
      : stream(s), depth(depth), byte_budget(byte_budget), slots(depth), bytes(byte_budget) {}
  stream_t* stream;
  const uint32_t depth;
  const uint32_t byte_budget;
  rt::semaphore slots;  // one per request read and not yet answered
  rt::semaphore bytes;  // reply bytes waiting to be written
  std::atomic<int> reader{k_running};
  // The reader's own: requests parsed, and the id of the last one (answered, in order).
  uint64_t parsed = 0;
  uint64_t last_id = 0;
  // On a replica: a write of this stream was proposed since its last barrier, so even a
  // serializable read waits for one (a stream reads its own writes).
  bool unsettled_writes = false;
};

// The status that ends a stream whose request `st.parsed + 1` could not be parsed.
grpc::Status unparsable(const pipeline_state& st) {
  return invalid(
      absl::StrCat("request ", st.parsed + 1, " on this stream is not a shoal.v1.PipelineRequest; ",
                   st.parsed == 0 ? std::string("no request was answered")
                                  : absl::StrCat("last request answered: id ", st.last_id),
                   ". The requests after it were not run"));
}

const grpc::Status k_draining(grpc::StatusCode::UNAVAILABLE,
                              "the server is shutting down; the requests without a reply were not "
                              "run: send them to another instance");

// PERMISSION_DENIED for a request its caller may not make (audited), else OK.
grpc::Status permitted(const auth::stream_caller* caller, const v1::PipelineRequest& req) {
  if (caller == nullptr || caller->who() == nullptr) return grpc::Status::OK;
  return auth::permit(*caller->who(), caller->call(), caller->method(), req);
}

void answer(context& ctx, const config::snapshot& cfg, const v1::PipelineRequest& req,
            v1::PipelineResponse& resp, const auth::stream_caller* caller) {
  resp.set_id(req.id());
  if (const grpc::Status denied = permitted(caller, req); !denied.ok()) {
    // An operation's error in its result, as its handler's would be; a Batch refused whole.
    fill_error(denied,
               req.has_op() ? resp.mutable_result()->mutable_error() : resp.mutable_error());
    return;
  }
  switch (req.request_case()) {
    case v1::PipelineRequest::kOp:
      run_op(ctx, op_env{cfg, true}, req.op(), *resp.mutable_result());
      break;
    case v1::PipelineRequest::kBatch: {
      const grpc::Status st = batch_with(ctx, cfg, req.batch(), *resp.mutable_batch());
      if (!st.ok()) fill_error(st, resp.mutable_error());  // replaces the partial batch
      break;
    }
    case v1::PipelineRequest::REQUEST_NOT_SET:
      fill_error(invalid(absl::StrCat("request ", req.id(), " names neither an op nor a batch")),
                 resp.mutable_error());
      break;
  }
}

// A frame screened, then parsed into `arena`. A Batch with too many operations is refused
// before it is parsed (screen.h): its reply carries the error (`request` null, `id` its id), and
// the stream goes on. A frame that does not parse has neither.
struct taken_frame {
  v1::PipelineRequest* request = nullptr;
  std::optional<uint64_t> id;
};
taken_frame screen_and_parse(const config::snapshot& cfg, grpc::ByteBuffer& frame,
                             google::protobuf::Arena& arena, v1::PipelineResponse& resp) {
  uint64_t screened_id = 0;
  const grpc::Status refused = screen_pipeline_request(frame, cfg, &screened_id);
  if (!refused.ok()) {
    resp.set_id(screened_id);
    fill_error(refused, resp.mutable_error());
    return {nullptr, screened_id};
  }
  auto* req = google::protobuf::Arena::CreateMessage<v1::PipelineRequest>(&arena);
  if (!grpc::GenericDeserialize<grpc::ProtoBufferReader, v1::PipelineRequest>(&frame, req).ok()) {
    return {};
  }
  return {req, req->id()};
}

// ---- on a replica: writes go through the Raft log, reads wait for a barrier ----------------

// The proposer's apply (on the Raft thread): what the unary call would run; a failure becomes
// the reply's error, as in answer().
grpc::Status apply_pipelined(void* p) {
  auto* w = static_cast<replicated_write*>(p);
  context& ctx = *w->ctx;
  const v1::PipelineRequest& req = *w->request;
  if (req.has_batch()) {
    const grpc::Status st = batch(ctx, req.batch(), *w->response->mutable_batch());
    if (!st.ok()) fill_error(st, w->response->mutable_error());  // replaces the partial batch
    return grpc::Status::OK;
  }
  v1::OpResult& r = *w->response->mutable_result();
  grpc::Status st;
  switch (req.op().op_case()) {
    case v1::Op::kPut:
      st = put(ctx, req.op().put(), *r.mutable_put());
      break;
    case v1::Op::kDelete:
      st = remove(ctx, req.op().delete_(), *r.mutable_delete_());
      break;
    case v1::Op::kIncrement:
      st = increment(ctx, req.op().increment(), *r.mutable_increment());
      break;
    default:  // reads are never proposed
      break;
  }
  if (!st.ok()) fill_error(st, r.mutable_error());
  return grpc::Status::OK;
}

// The unary call a request is, as the Raft entry records it: a Batch, or an operation that
// writes. Nothing for a read (or a request that is neither).
struct write_call {
  metrics::method method;
  const google::protobuf::MessageLite* request;
};
std::optional<write_call> write_of(const v1::PipelineRequest& req) {
  if (req.has_batch()) return write_call{metrics::method::batch, &req.batch()};
  switch (req.op().op_case()) {
    case v1::Op::kPut:
      return write_call{metrics::method::put, &req.op().put()};
    case v1::Op::kDelete:
      return write_call{metrics::method::remove, &req.op().delete_()};
    case v1::Op::kIncrement:
      return write_call{metrics::method::increment, &req.op().increment()};
    default:
      return std::nullopt;
  }
}

// What a write holds of the stream's byte budget from before it is proposed until its reply is
// written: its request (kept for the apply) and the most its reply can take, which is built
// only where it applies. An operation's reply takes its least room (kv.h); one that reads, or
// returns what it deletes by prefix, may take a whole reply's.
std::size_t write_bytes_bound(const v1::PipelineRequest& req, const config::snapshot& cfg) {
  constexpr std::size_t k_envelope = 256;  // the reply's id, depth, header and framing
  const auto room = [&](const v1::Op& op) {
    const bool open_ended =
        op.has_get() || op.has_range() ||
        (op.has_delete_() && op.delete_().by_prefix() && op.delete_().return_previous());
    return open_ended ? reply_room(cfg) : least_result_bytes(op, cfg);
  };
  std::size_t reply = 0;
  if (req.has_batch()) {
    for (const v1::Op& op : req.batch().ops()) reply += room(op);
  } else {
    reply = room(req.op());
  }
  return req.ByteSizeLong() + k_envelope + std::min(reply, reply_room(cfg));
}

// Whether a read may run without a barrier: it asks to be serializable, and no write of this
// stream is still settling (a stream reads its own writes).
bool skips_barrier(const pipeline_state& st, const v1::PipelineRequest& req) {
  if (st.unsettled_writes || !req.has_op()) return false;
  const v1::Op& op = req.op();
  return (op.has_get() && op.get().serializable()) || (op.has_range() && op.range().serializable());
}

// A request the log refused, in its reply. Refused for not leading (nothing applied), the reply
// names the leader, as a unary call's metadata does, so that a client can send it there.
void fill_log_error(context& ctx, const grpc::Status& st, v1::OpError* error) {
  fill_error(st, error);
  if (replica::raft_store::refused_for_not_leading(st))
    error->set_leader(ctx.raft->leader_client());
}

// One frame on a replica, the first half: screened, parsed into the reply's arena (a write's
// request lives until it applies), checked against the caller's rules; a read waits for its
// barrier and runs, as do refusals; a write comes back in `pending`, to be proposed once its
// bytes are taken. Returns the request's id, or nothing if the frame is not a request.
rt::task<std::optional<uint64_t>> take_frame_on_replica(
    context& ctx, pipeline_state& st, const config::snapshot& cfg, grpc::ByteBuffer& frame,
    google::protobuf::Arena& arena, v1::PipelineResponse& resp, const auth::stream_caller& caller,
    std::unique_ptr<replicated_write>* pending) {
  const taken_frame taken = screen_and_parse(cfg, frame, arena, resp);
  if (taken.request == nullptr) co_return taken.id;
  const v1::PipelineRequest& req = *taken.request;
  const uint64_t id = req.id();
  resp.set_id(id);
  const grpc::Status denied = permitted(&caller, req);
  if (!denied.ok()) {
    fill_error(denied,
               req.has_op() ? resp.mutable_result()->mutable_error() : resp.mutable_error());
    co_return id;
  }
  if (req.request_case() == v1::PipelineRequest::REQUEST_NOT_SET) {
    answer(ctx, cfg, req, resp, nullptr);  // the error it is
    co_return id;
  }
  if (!write_of(req)) {
    grpc::Status barrier = grpc::Status::OK;
    if (!skips_barrier(st, req)) {
      barrier = co_await ctx.raft->linearize();
      if (barrier.ok()) st.unsettled_writes = false;
    }
    if (barrier.ok()) {
      answer(ctx, cfg, req, resp, nullptr);  // permitted above
    } else {
      fill_log_error(ctx, barrier, resp.mutable_result()->mutable_error());
    }
    co_return id;
  }
  *pending = std::make_unique<replicated_write>();
  (*pending)->ctx = &ctx;
  (*pending)->request = &req;
  (*pending)->response = &resp;
  co_return id;
}

// The second half, once the write's bytes are taken: proposes it (in the stream's order).
void propose(context& ctx, pipeline_state& st, replicated_write& w) {
  const std::optional<write_call> call = write_of(*w.request);
  w.ticket.emplace(ctx.raft->submit(call->method, *call->request, &apply_pipelined, &w));
  if (w.ticket->proposed()) st.unsettled_writes = true;
}

// The writer's half: the write's outcome. A failure of the log itself (not leading, leadership
// lost, stopping) becomes the reply's error; the handler's own is in the reply already.
rt::task<> settle_write(context& ctx, replicated_write& w) {
  const grpc::Status st = co_await ctx.raft->outcome(std::move(*w.ticket));
  w.ticket.reset();
  if (st.ok()) co_return;
  fill_log_error(ctx, st,
                 w.request->has_batch() ? w.response->mutable_error()
                                        : w.response->mutable_result()->mutable_error());
}

// Reads and runs requests, in order, as long as both budgets allow. Says why it stopped: the
// client is done (or the stream broke), the server is draining (a request read then is not run),
// or a frame is not a request (it and those after it are not run).
rt::task<reader_end> read_and_run(context& ctx, pipeline_state& st,
                                  rt::mpsc::sender<queued_reply>& replies) {
  auth::stream_caller caller(st.stream->call(), metrics::method::pipeline);
  // Each request is parsed into an arena reset after it ran: an operation is a oneof, which
  // protobuf would otherwise free and allocate again for every request.
  auto block = std::make_unique<char[]>(k_request_arena_bytes);
  google::protobuf::ArenaOptions request_options;
  request_options.initial_block = block.get();
  request_options.initial_block_size = k_request_arena_bytes;
  google::protobuf::Arena request_arena(request_options);
  grpc::ByteBuffer frame;
  for (;;) {
    auto slot = co_await st.slots.acquire();
    if (!slot) co_return reader_end::client_done;  // the writer found the stream broken
    // Announce the read, then look for a drain: with the writer's claim in write_replies, one of
    // the two sees the other (both sequentially consistent).
    st.reader.store(k_reading);
    if (ctx.draining.load()) co_return reader_end::drained;
    const bool more = co_await st.stream->read(&frame);
    int expected = k_reading;
    if (!st.reader.compare_exchange_strong(expected, k_running)) {
      co_return reader_end::drained;  // the writer finished the call
    }
    if (!more) co_return reader_end::client_done;
    if (ctx.draining.load()) co_return reader_end::drained;
    google::protobuf::ArenaOptions options;
    options.start_block_size = k_reply_arena_bytes;
    auto arena = std::make_unique<google::protobuf::Arena>(options);
    auto* resp = google::protobuf::Arena::CreateMessage<v1::PipelineResponse>(arena.get());
    // Each request sees the configuration of its time, and its rules.
    const config::snapshot_ptr cfg = ctx.current_config();
    if (!caller.follow(cfg)) co_return reader_end::revoked;
    std::optional<uint64_t> id;
    std::unique_ptr<replicated_write> pending;
    if (ctx.raft == nullptr) {
      id = run_frame(ctx, *cfg, frame, request_arena, *resp, &caller);
    } else {
      id = co_await take_frame_on_replica(ctx, st, *cfg, frame, *arena, *resp, caller, &pending);
    }
    if (!id) co_return reader_end::unparsable;
    ++st.parsed;
    st.last_id = *id;
    resp->set_depth(st.depth - static_cast<uint32_t>(st.slots.available_permits()));
    // A reply larger than the whole budget waits for the queue to empty, then goes alone.
    const std::size_t size = std::min<std::size_t>(
        pending ? write_bytes_bound(*pending->request, *cfg) : resp->ByteSizeLong(),
        st.byte_budget);
    auto bytes = co_await st.bytes.acquire(std::max<std::size_t>(size, 1));
    if (!bytes) co_return reader_end::client_done;
    if (pending) propose(ctx, st, *pending);
    // Named, not brace-built inside the co_await (the g++ 12 pitfall in runtime/README.md).
    queued_reply reply{queued_reply::kind::reply, std::move(arena),  resp,
                       std::move(*slot),          std::move(*bytes), ctx.hub->revision(),
                       std::move(pending)};
    const bool sent = co_await replies.send(std::move(reply));
    if (!sent) co_return reader_end::client_done;
  }
}

rt::task<reader_end> read_requests(context& ctx, std::shared_ptr<pipeline_state> st,
                                   rt::mpsc::sender<queued_reply> replies) {
  const reader_end why = co_await read_and_run(ctx, *st, replies);
  queued_reply end;
  end.what = queued_reply::kind::end;
  (void)co_await replies.send(std::move(end));
  co_return why;
}

// On a drain: true if the reader waits in a read with every reply written, in which case it is
// now marked finishing (it will run nothing it reads).
bool claim_idle_reader(pipeline_state& st) {
  const auto all_written = [&] { return st.slots.available_permits() == st.depth - 1; };
  if (!all_written()) return false;
  int expected = k_reading;
  if (!st.reader.compare_exchange_strong(expected, k_finishing)) return false;
  if (all_written()) return true;
  st.reader.store(k_reading);  // a reply came in between: it is written first
  return false;
}

// Writes the replies in order. After a failed write it keeps receiving, and drops what it gets,
// so the reader is never left waiting for budget that only a write would return. On a drain it
// ends the stream itself once the reader waits in a read and every reply is out: that read may
// wait for a request that never comes. A reply with another already queued behind it is written
// with gRPC's buffer hint, so a run of replies leaves in one send instead of one each (a send on
// loopback costs about as much as a Batch of Gets, and a worker busy sending reads no socket).
rt::task<bool> write_replies(context& ctx, std::shared_ptr<pipeline_state> st,
                             rt::mpsc::receiver<queued_reply> replies) {
  bool broken = false;
  bool draining = false;
  std::optional<queued_reply> next;  // taken early, to learn whether another reply follows
  bool written_any = false;
  for (;;) {
    std::optional<queued_reply> r;
    if (next) {
      r = std::move(next);
      next.reset();
    } else {
      r = co_await replies.recv();
    }
    if (!r || r->what == queued_reply::kind::end) break;
    if (broken) continue;
    if (r->what == queued_reply::kind::drain) {
      draining = true;
    } else {
      if (r->pending) co_await settle_write(ctx, *r->pending);
      (void)replies.try_recv(next);
      // Never on the stream's first write: gRPC does not complete a write that carries the
      // initial metadata with the buffer hint (the stream would hang).
      const bool more = written_any && next && next->what == queued_reply::kind::reply;
      written_any = true;
      // Replies that came in while the log synced wait for the same sync (group commit).
      if (!ctx.settled(r->seen_revision) && !co_await ctx.journal->settle(r->seen_revision)) {
        broken = true;
        st->slots.close();
        st->bytes.close();
        (void)co_await st->stream->finish(ctx.log_failed());
        continue;
      }
      grpc::ByteBuffer frame;
      bool own = false;
      (void)grpc::GenericSerialize<grpc::ProtoBufferWriter, v1::PipelineResponse>(*r->response,
                                                                                  &frame, &own);
      if (!co_await st->stream->write(frame, more)) {
        broken = true;
        st->slots.close();
        st->bytes.close();
        continue;
      }
    }
    r.reset();  // its permits return before the reader is looked at
    if (draining && claim_idle_reader(*st)) {
      (void)co_await st->stream->finish(k_draining);
      break;
    }
  }
  co_return !broken;
}

// Puts word of a drain in the writer's channel, then waits to be cancelled with the stream.
rt::task<> watch_drain(context& ctx, rt::mpsc::sender<queued_reply> replies) {
  co_await ctx.shutdown.cancelled();
  queued_reply drain;
  drain.what = queued_reply::kind::drain;
  (void)co_await replies.send(std::move(drain));
  rt::notify never;
  co_await never.notified();
}

}  // namespace

std::optional<uint64_t> run_frame(context& ctx, const config::snapshot& cfg,
                                  grpc::ByteBuffer& frame, google::protobuf::Arena& request_arena,
                                  v1::PipelineResponse& resp, const auth::stream_caller* caller) {
  request_arena.Reset();
  const taken_frame taken = screen_and_parse(cfg, frame, request_arena, resp);
  if (taken.request == nullptr) return taken.id;
  const v1::PipelineRequest& req = *taken.request;
  answer(ctx, cfg, req, resp, caller);
  return req.id();
}

rt::task<grpc::Status> pipeline(context& ctx, pipeline_stream& stream, const call_done& done) {
  const auto cfg = ctx.current_config();
  const uint32_t depth = cfg->live().max_pipeline_depth();
  auto st = std::make_shared<pipeline_state>(&stream, depth, cfg->live().max_pipeline_bytes());
  // Never full: the slots bound the replies, and each marker is sent once.
  auto [tx, rx] = rt::mpsc::channel<queued_reply>(depth + 2);
  auto both = rt::join(read_requests(ctx, st, tx), write_replies(ctx, st, std::move(rx)));
  auto first = co_await rt::select(std::move(both), watch_drain(ctx, std::move(tx)));
  const auto [why, written] = std::get<0>(first);  // watch_drain never ends by itself
  if (!written || done.done()) {
    co_return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
  }
  if (why == reader_end::drained || stream.finished()) co_return k_draining;
  if (why == reader_end::unparsable) co_return unparsable(*st);
  if (why == reader_end::revoked) {
    co_return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                           absl::StrCat("the rules changed (live.auth): this stream's credentials "
                                        "no longer allow it; the requests after id ",
                                        st->last_id, " were not run"));
  }
  co_return grpc::Status::OK;
}

}  // namespace shoal::service::handlers
