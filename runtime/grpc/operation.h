// operation and async_op: awaiting a gRPC completion-queue operation from a task.
//
// A completion-queue tag is a pointer to an `operation`, whose first member is the function to call
// when the tag comes out of the queue: one indirect call per event, no virtual dispatch, and no
// allocation (the operation lives in the awaiting coroutine's frame).
//
//   bool ok = co_await rt::grpc::async_op(ctx, [&](void* tag) {
//     responder.Finish(reply, grpc::Status::OK, tag);
//   });
//
// Cancellation: gRPC owns the tag until it comes back, so the frame must outlive it. While such an
// operation is pending, cancelling the task (abort, shutdown) calls `ctx->TryCancel()` and the task
// is destroyed only after the tag has returned. Pass the call's ServerContext or ClientContext; for
// operations that have no call (an alarm), pass an object with a TryCancel() that makes the tag
// return early. A server's posted request (RequestX) has no call yet, and TryCancel on its context
// is invalid: use uncancellable_op; Server::Shutdown returns its tag.
#pragma once

#include <atomic>
#include <coroutine>
#include <utility>

#include "runtime/internal/task_header.h"

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define SHOAL_TSAN_RELEASE(addr) __tsan_release(addr)
#define SHOAL_TSAN_ACQUIRE(addr) __tsan_acquire(addr)
#else
#define SHOAL_TSAN_RELEASE(addr) ((void)(addr))
#define SHOAL_TSAN_ACQUIRE(addr) ((void)(addr))
#endif

namespace shoal::rt::grpc {

struct operation {
  void (*on_complete)(operation* self, bool ok);
};

// Runs a dequeued tag. ThreadSanitizer cannot see gRPC's internal hand-off between the thread that
// started an operation and the worker that polls its completion: the acquire here pairs with the
// release in async_op::await_suspend.
inline void dispatch(void* tag, bool ok) {
  SHOAL_TSAN_ACQUIRE(tag);
  auto* op = static_cast<operation*>(tag);
  op->on_complete(op, ok);
}

template <class Cancellable, class Initiate>
class [[nodiscard]] async_op : private operation, private rt::detail::cancel_hook {
 public:
  async_op(Cancellable* ctx, Initiate initiate)
      : operation{&complete},
        rt::detail::cancel_hook{&cancel},
        ctx_(ctx),
        initiate_(std::move(initiate)) {}
  async_op(const async_op&) = delete;

  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    task_ = rt::detail::suspend_current(h);
    // Set before starting: from now until the tag returns, cancellation must not free the frame.
    task_->hook.store(static_cast<rt::detail::cancel_hook*>(this), std::memory_order_release);
    operation* tag = this;
    SHOAL_TSAN_RELEASE(tag);
    initiate_(static_cast<void*>(tag));
  }
  // gRPC's `ok`: false when the operation failed (call cancelled, stream ended, shutdown).
  bool await_resume() const noexcept { return ok_; }

 private:
  static void complete(operation* op, bool ok) {
    auto* self = static_cast<async_op*>(op);
    self->ok_ = ok;
    rt::detail::task_header* t = self->task_;
    // Once the hook is cleared, a task being cancelled may be destroyed and its header freed by
    // another worker at any moment: hold a reference until the wake is done. (`self` lives in the
    // frame: not touched after the store.)
    t->add_ref();
    t->hook.store(nullptr, std::memory_order_release);
    rt::detail::wake(t);
    t->release();
  }
  static void cancel(rt::detail::cancel_hook* hook) {
    auto* self = static_cast<async_op*>(hook);
    if (self->ctx_ != nullptr) self->ctx_->TryCancel();
  }

  Cancellable* ctx_;
  Initiate initiate_;
  rt::detail::task_header* task_ = nullptr;
  bool ok_ = false;
};

// For an operation nothing can cut short (a posted RequestX: only Server::Shutdown returns it). A
// cancelled task waits for the tag.
struct until_completion {
  void TryCancel() noexcept {}
};

template <class Initiate>
async_op<until_completion, Initiate> uncancellable_op(Initiate initiate) {
  return async_op<until_completion, Initiate>(nullptr, std::move(initiate));
}

}  // namespace shoal::rt::grpc
