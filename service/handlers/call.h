// call: how a gRPC method is served on the runtime — one task per call.
//
// serve_unary / serve_stream / serve_bidi post a request (RequestX) on a worker's completion queue
// and await it; when a call arrives, the task first posts its own replacement (spawn per request,
// so the queue always has requests posted), then admits the call by its class (admission.h), runs
// the handler and finishes. A posted request waits on a tag only Server::Shutdown can return, so it
// is awaited with uncancellable_op; everything after uses the call's context for cancellation.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <type_traits>
#include <utility>
#include <variant>

#include "google/protobuf/arena.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/codegen/proto_utils.h"  // protobuf messages on the wire
#include "grpcpp/support/async_stream.h"
#include "grpcpp/support/async_unary_call.h"
#include "runtime/grpc/operation.h"
#include "runtime/runtime.h"
#include "runtime/sync/notify.h"
#include "service/auth/guard.h"
#include "service/context.h"
#include "service/handlers/screen.h"
#include "service/metrics/metrics.h"
#include "service/replica/raft_store.h"

namespace shoal::service::handlers {

// Which admission class a method's calls belong to.
inline call_class class_of(metrics::method m) {
  switch (m) {
    case metrics::method::watch:
    case metrics::method::pipeline:
    case metrics::method::watch_config:
    case metrics::method::health_watch:
    case metrics::method::snapshot:
      return call_class::stream;
    case metrics::method::status:
    case metrics::method::get_config:
    case metrics::method::health_check:
    case metrics::method::add_member:
    case metrics::method::remove_member:
    case metrics::method::transfer_leadership:
      return call_class::control;
    case metrics::method::get:
    case metrics::method::put:
    case metrics::method::remove:
    case metrics::method::increment:
    case metrics::method::range:
    case metrics::method::batch:
    case metrics::method::txn:
    case metrics::method::count_:
      break;
  }
  return call_class::unary;
}

// The caller's credentials and permissions for `req` (auth/guard.h), when auth is on.
template <class Req>
grpc::Status authorize(context& ctx, const grpc::ServerContext& call, metrics::method m,
                       const Req& req) {
  if (!ctx.auth_on()) return grpc::Status::OK;
  return auth::admit(*ctx.current_config(), call, m, req);
}

// `request` is the generated AsyncService's RequestX member (declared in one of its bases, hence
// its own template parameter).
// Enough for the request and reply of a Get or Put of small values.
inline constexpr std::size_t k_call_arena_bytes = 1024;

template <class Req, class Resp>
using unary_handler = grpc::Status (*)(context&, const Req&, Resp&);

// Whether a method's calls change the store (a replicated server puts them in its log).
inline bool writes(metrics::method m) {
  switch (m) {
    case metrics::method::put:
    case metrics::method::remove:
    case metrics::method::increment:
    case metrics::method::txn:
    case metrics::method::batch:
      return true;
    default:
      return false;
  }
}

template <class Req>
bool serializable(const Req& req) {
  if constexpr (requires { req.serializable(); }) {
    return req.serializable();
  } else {
    return false;
  }
}

// A call on a replicated server (context::raft): a write is proposed to the Raft log and its
// handler runs when the entry applies (replica/raft_store.h); a read runs after a barrier, or at
// once when it asks to be serializable. Refused for not leading (nothing applied): the leader's
// client address goes back as `shoal-leader` metadata (empty while none is known), which a
// client may follow for any call.
template <class Req, class Resp>
rt::task<grpc::Status> run_replicated(context& ctx, grpc::ServerContext& call, metrics::method m,
                                      const Req& req, Resp& resp,
                                      grpc::Status (*handle)(context&, const Req&, Resp&)) {
  grpc::Status status;
  if constexpr (std::is_same_v<Req, v1::AddMemberRequest> ||
                std::is_same_v<Req, v1::RemoveMemberRequest> ||
                std::is_same_v<Req, v1::TransferLeadershipRequest>) {
    status = co_await ctx.raft->change_members(req, resp);
  } else if (writes(m)) {
    struct bound {
      context* ctx;
      const Req* req;
      Resp* resp;
      grpc::Status (*handle)(context&, const Req&, Resp&);
    } b{&ctx, &req, &resp, handle};
    replica::raft_store::run_fn run = [](void* p) {
      auto* c = static_cast<bound*>(p);
      return c->handle(*c->ctx, *c->req, *c->resp);
    };
    status = co_await ctx.raft->write(m, req, run, &b);
  } else if (m == metrics::method::get || m == metrics::method::range) {
    if (!serializable(req)) status = co_await ctx.raft->linearize();
    if (status.ok()) status = handle(ctx, req, resp);
  } else {  // Status, GetConfig, health: about this replica itself
    status = handle(ctx, req, resp);
  }
  (void)m;
  if (replica::raft_store::refused_for_not_leading(status)) {
    // Empty while no leader is known: still, nothing was applied, and the client may retry.
    call.AddTrailingMetadata("shoal-leader", ctx.raft->leader_client());
  }
  co_return status;
}

// Raw: the method is registered raw; its request is screened, then parsed into the arena here,
// and its reply serialized here (gRPC does both for a method that is not raw).
template <bool Raw, class Service, class Request, class Req, class Resp>
rt::task<> serve_unary(Service* svc, Request request, unary_handler<Req, Resp> handle,
                       wire_screen screen, grpc::ServerCompletionQueue* cq, context* ctx,
                       metrics::method m) {
  using wire_out = std::conditional_t<Raw, grpc::ByteBuffer, Resp>;
  grpc::ServerContext call;
  // The request and the reply live in an arena that starts inside the task's frame: a small call
  // parses and answers without touching the allocator.
  alignas(8) char arena_block[k_call_arena_bytes];
  google::protobuf::ArenaOptions arena_options;
  arena_options.initial_block = arena_block;
  arena_options.initial_block_size = sizeof(arena_block);
  google::protobuf::Arena arena(arena_options);
  Req& req = *google::protobuf::Arena::CreateMessage<Req>(&arena);
  [[maybe_unused]] std::conditional_t<Raw, grpc::ByteBuffer, std::monostate> wire_in;
  grpc::ServerAsyncResponseWriter<wire_out> responder(&call);
  const bool arrived = co_await rt::grpc::uncancellable_op([&](void* tag) {
    if constexpr (Raw) {
      (svc->*request)(&call, &wire_in, &responder, cq, cq, tag);
    } else {
      (svc->*request)(&call, &req, &responder, cq, cq, tag);
    }
  });
  if (!arrived) co_return;  // the server is shutting down
  const auto arrived_at = std::chrono::steady_clock::now();
  rt::spawn(serve_unary<Raw>(svc, request, handle, screen, cq, ctx, m)).detach();

  Resp& resp = *google::protobuf::Arena::CreateMessage<Resp>(&arena);
  grpc::Status status;
  {
    // Given back before the reply leaves, as the streaming calls do: a client that has its answer
    // finds the call no longer in flight (Status, max_in_flight).
    admission::ticket ticket;
    status = ctx->calls->admit(class_of(m), &ticket);
    if constexpr (Raw) {
      if (status.ok()) status = screen_and_parse(wire_in, screen, *ctx->current_config(), &req);
    }
    if (status.ok()) status = authorize(*ctx, call, m, req);
    if (status.ok()) {
      if (ctx->raft != nullptr) {
        status = co_await run_replicated(*ctx, call, m, req, resp, handle);
      } else {
        status = handle(*ctx, req, resp);
      }
    }
    // Nothing leaves before the log has what the handler saw (context::settled). Control calls
    // (health, Status) report on the server itself and never wait for the disk.
    const uint64_t seen = ctx->hub->revision();
    if (class_of(m) != call_class::control && !ctx->settled(seen) &&
        !co_await ctx->journal->settle(seen)) {
      status = ctx->log_failed();
    }
  }
  // Recorded before the reply leaves: a client that has its answer finds the call counted.
  metrics::record_call(m, status.error_code(), std::chrono::steady_clock::now() - arrived_at);
  [[maybe_unused]] std::conditional_t<Raw, grpc::ByteBuffer, std::monostate> wire_reply;
  if constexpr (Raw) {
    bool own = false;
    if (status.ok()) {
      status = grpc::GenericSerialize<grpc::ProtoBufferWriter, Resp>(resp, &wire_reply, &own);
    }
  }
  (void)co_await rt::grpc::async_op(&call, [&](void* tag) {
    if (!status.ok()) {
      responder.FinishWithError(status, tag);
    } else if constexpr (Raw) {
      responder.Finish(wire_reply, status, tag);
    } else {
      responder.Finish(resp, status, tag);
    }
  });
}

// Keeps `count` requests for a unary method posted on `cq`.
template <class Service, class Request, class Req, class Resp>
void post_unary(rt::runtime& rt, Service* svc, Request request, unary_handler<Req, Resp> handle,
                grpc::ServerCompletionQueue* cq, context* ctx, metrics::method m, int count) {
  for (int i = 0; i < count; ++i) {
    rt.spawn(serve_unary<false>(svc, request, handle, nullptr, cq, ctx, m)).detach();
  }
}

// The same for a method registered raw, whose requests `screen` looks at before they are parsed.
template <class Service, class Request, class Req, class Resp>
void post_raw_unary(rt::runtime& rt, Service* svc, Request request, unary_handler<Req, Resp> handle,
                    wire_screen screen, grpc::ServerCompletionQueue* cq, context* ctx,
                    metrics::method m, int count) {
  for (int i = 0; i < count; ++i) {
    rt.spawn(serve_unary<true>(svc, request, handle, screen, cq, ctx, m)).detach();
  }
}

// Tells a streaming handler that its call is over (the client cancelled or went away, or the
// server is shutting down). gRPC returns the tag when a started call ends, which may be after the
// task is gone, so the signal lives on the heap, shared by the task and the tag.
class call_done {
 public:
  // Before the call is requested (gRPC's rule for AsyncNotifyWhenDone).
  static call_done* arm(grpc::ServerContext& call) {
    auto* d = new call_done();
    call.AsyncNotifyWhenDone(static_cast<rt::grpc::operation*>(&d->tag_));
    return d;
  }
  bool done() const { return done_.load(std::memory_order_acquire); }
  // Awaitable: completes once the call is over, at once if it already is. For the one task that
  // serves the call (a select branch beside its other work: nothing polls).
  auto ended() const { return ended_.notified(); }
  // The task lets go; `started` says whether the call began (otherwise no tag will ever come).
  void release(bool started) {
    if (!started) unref();  // the tag's share: gRPC never returns it for a call that did not start
    unref();
  }

 private:
  struct tag : rt::grpc::operation {
    call_done* owner;
  };
  call_done() {
    tag_.on_complete = &complete;
    tag_.owner = this;
  }
  static void complete(rt::grpc::operation* o, bool) {
    call_done* self = static_cast<tag*>(o)->owner;
    self->done_.store(true, std::memory_order_release);
    self->ended_.notify_one();  // kept as a permit if the task is not waiting yet
    self->unref();
  }
  void unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  tag tag_;
  std::atomic<bool> done_{false};
  mutable rt::notify ended_;
  std::atomic<int> refs_{2};  // the task's and the tag's
};

// A streaming task's share of its call_done, released however the task ends (finished, or
// cancelled by a runtime shutdown).
struct call_done_ref {
  call_done* d;
  bool started = false;  // set once the call arrived
  ~call_done_ref() { d->release(started); }
};

template <class Resp>
class stream_writer {
 public:
  stream_writer(grpc::ServerContext* call, grpc::ServerAsyncWriter<Resp>* writer)
      : call_(call), writer_(writer) {}
  // The call's metadata and peer (who sends it: auth/guard.h).
  const grpc::ServerContext& call() const { return *call_; }
  // `co_await` yields false if the stream is broken (the client went away).
  auto write(const Resp& r) {
    return rt::grpc::async_op(call_, [this, &r](void* tag) { writer_->Write(r, tag); });
  }

 private:
  grpc::ServerContext* call_;
  grpc::ServerAsyncWriter<Resp>* writer_;
};

template <class Req, class Resp>
using stream_handler = rt::task<grpc::Status> (*)(context&, const Req&, stream_writer<Resp>&,
                                                  const call_done&);

template <class Service, class Request, class Req, class Resp>
rt::task<> serve_stream(Service* svc, Request request, stream_handler<Req, Resp> handle,
                        grpc::ServerCompletionQueue* cq, context* ctx, metrics::method m) {
  grpc::ServerContext call;
  call_done_ref done{call_done::arm(call)};  // must precede the request
  Req req;
  grpc::ServerAsyncWriter<Resp> writer(&call);
  const bool arrived = co_await rt::grpc::uncancellable_op(
      [&](void* tag) { (svc->*request)(&call, &req, &writer, cq, cq, tag); });
  if (!arrived) co_return;
  done.started = true;
  const auto arrived_at = std::chrono::steady_clock::now();
  rt::spawn(serve_stream(svc, request, handle, cq, ctx, m)).detach();

  stream_writer<Resp> out(&call, &writer);
  grpc::Status status;
  {
    admission::ticket ticket;
    status = ctx->calls->admit(class_of(m), &ticket);
    if (status.ok()) status = authorize(*ctx, call, m, req);
    if (status.ok()) status = co_await handle(*ctx, req, out, *done.d);
  }
  metrics::record_call(m, status.error_code(), std::chrono::steady_clock::now() - arrived_at);
  if (m == metrics::method::watch && status.error_code() == grpc::StatusCode::CANCELLED) {
    metrics::count(metrics::event::watcher_cancelled);
  }
  (void)co_await rt::grpc::async_op(&call, [&](void* tag) { writer.Finish(status, tag); });
}

template <class Service, class Request, class Req, class Resp>
void post_stream(rt::runtime& rt, Service* svc, Request request, stream_handler<Req, Resp> handle,
                 grpc::ServerCompletionQueue* cq, context* ctx, metrics::method m, int count) {
  for (int i = 0; i < count; ++i) rt.spawn(serve_stream(svc, request, handle, cq, ctx, m)).detach();
}

// Both directions of a bidirectional stream. gRPC allows one read and one write outstanding at a
// time, and the two may overlap (a reader task and a writer task).
template <class Req, class Resp>
class bidi_stream {
 public:
  bidi_stream(grpc::ServerContext* call, grpc::ServerAsyncReaderWriter<Resp, Req>* stream)
      : call_(call), stream_(stream) {}
  const grpc::ServerContext& call() const { return *call_; }
  // `co_await` yields false once the client has finished sending (or the stream is broken).
  auto read(Req* r) {
    return rt::grpc::async_op(call_, [this, r](void* tag) { stream_->Read(r, tag); });
  }
  // `co_await` yields false if the stream is broken (the client went away). `more_follows`: another
  // write comes at once, so gRPC may hold this one and send both in one go (its buffer hint).
  auto write(const Resp& r, bool more_follows = false) {
    return rt::grpc::async_op(call_, [this, &r, more_follows](void* tag) {
      grpc::WriteOptions options;
      if (more_follows) options.set_buffer_hint();
      stream_->Write(r, options, tag);
    });
  }
  // Ends the call early, with no write outstanding; a read still outstanding then fails (gRPC
  // allows this for ending a call with a non-OK status). serve_bidi then does not finish it again.
  auto finish(const grpc::Status& status) {
    return rt::grpc::async_op(call_, [this, &status](void* tag) {
      finished_ = true;
      stream_->Finish(status, tag);
    });
  }
  bool finished() const { return finished_; }

 private:
  grpc::ServerContext* call_;
  grpc::ServerAsyncReaderWriter<Resp, Req>* stream_;
  bool finished_ = false;  // read by serve_bidi once the handler has returned
};

template <class Req, class Resp>
using bidi_handler = rt::task<grpc::Status> (*)(context&, bidi_stream<Req, Resp>&,
                                                const call_done&);

// serve_stream's twin for a bidirectional method: the handler reads the requests itself.
template <class Service, class Request, class Req, class Resp>
rt::task<> serve_bidi(Service* svc, Request request, bidi_handler<Req, Resp> handle,
                      grpc::ServerCompletionQueue* cq, context* ctx, metrics::method m) {
  grpc::ServerContext call;
  call_done_ref done{call_done::arm(call)};
  grpc::ServerAsyncReaderWriter<Resp, Req> stream(&call);
  const bool arrived = co_await rt::grpc::uncancellable_op(
      [&](void* tag) { (svc->*request)(&call, &stream, cq, cq, tag); });
  if (!arrived) co_return;
  done.started = true;
  const auto arrived_at = std::chrono::steady_clock::now();
  rt::spawn(serve_bidi(svc, request, handle, cq, ctx, m)).detach();

  bidi_stream<Req, Resp> both(&call, &stream);
  grpc::Status status;
  {
    admission::ticket ticket;
    status = ctx->calls->admit(class_of(m), &ticket);
    // Who the caller is, now; what each request needs, as it comes (handlers/pipeline.cc).
    if (status.ok() && ctx->auth_on()) {
      const auth::user* who = nullptr;
      status = auth::identify(*ctx->current_config(), call, m, &who);
    }
    if (status.ok()) status = co_await handle(*ctx, both, *done.d);
  }
  metrics::record_call(m, status.error_code(), std::chrono::steady_clock::now() - arrived_at);
  if (both.finished()) co_return;
  (void)co_await rt::grpc::async_op(&call, [&](void* tag) { stream.Finish(status, tag); });
}

template <class Service, class Request, class Req, class Resp>
void post_bidi(rt::runtime& rt, Service* svc, Request request, bidi_handler<Req, Resp> handle,
               grpc::ServerCompletionQueue* cq, context* ctx, metrics::method m, int count) {
  for (int i = 0; i < count; ++i) rt.spawn(serve_bidi(svc, request, handle, cq, ctx, m)).detach();
}

}  // namespace shoal::service::handlers
