// join_handle<T>: the owner's view of a spawned task; abort_handle: a copyable right to cancel it.
//
// `co_await handle` yields expected<T, join_error>: the task's value, or an error saying whether it
// threw (carrying the exception) or was cancelled (by abort() or by the runtime shutting down).
// Dropping the handle detaches the task; it keeps running. As in Tokio, a handle is awaited once.
//
//   auto h = rt::spawn(fetch(key));
//   rt::abort_handle stop = h.abort_handle();   // give it to whoever may cancel the task
//   stop.abort();                                // optional: request cancellation
//   rt::expected<value, rt::join_error> r = co_await std::move(h);
//   if (!r && r.error().is_cancelled()) ...
//
// Cancel safety: awaiting a handle takes nothing; a cancelled await leaves the task running and the
// handle usable. An abort_handle keeps the task's header (64 bytes, and its result until the
// handle goes) alive, not the task.
#pragma once

#include <coroutine>
#include <exception>
#include <utility>

#include "runtime/expected.h"
#include "runtime/internal/coop.h"
#include "runtime/internal/task_header.h"
#include "runtime/task.h"

namespace shoal::rt {

class join_error : public std::exception {
 public:
  static join_error cancelled() { return join_error(nullptr); }
  static join_error panicked(std::exception_ptr e) { return join_error(std::move(e)); }

  bool is_cancelled() const noexcept { return exception_ == nullptr; }
  bool is_panic() const noexcept { return exception_ != nullptr; }
  // The exception the task threw (null if it was cancelled).
  std::exception_ptr panic() const noexcept { return exception_; }
  const char* what() const noexcept override {
    return is_cancelled() ? "task was cancelled" : "task threw an exception";
  }

 private:
  explicit join_error(std::exception_ptr e) : exception_(std::move(e)) {}
  std::exception_ptr exception_;
};

namespace detail {
// Requests cancellation of `t` (any thread). Defined in executor/worker.cc.
void abort_task(task_header* t) noexcept;
// Drops the join interest; the result is destroyed with the frame. Defined in executor/worker.cc.
void drop_join_handle(task_header* t) noexcept;
// Registers the current task as t's join waiter. Returns false if t already completed.
bool register_join_waiter(task_header* t, task_header* waiter) noexcept;
// Unregisters a waiter that is being destroyed (its task was cancelled while waiting).
void unregister_join_waiter(task_header* t) noexcept;
}  // namespace detail

// Cancels a task without owning its result. Copyable; any thread.
class abort_handle {
 public:
  abort_handle() noexcept = default;
  abort_handle(const abort_handle& o) noexcept : t_(o.t_) {
    if (t_) t_->add_ref();
  }
  abort_handle(abort_handle&& o) noexcept : t_(std::exchange(o.t_, nullptr)) {}
  abort_handle& operator=(abort_handle o) noexcept {
    std::swap(t_, o.t_);
    return *this;
  }
  ~abort_handle() {
    if (t_) t_->release();
  }

  // Requests cancellation; a task that already finished keeps its result.
  void abort() const noexcept {
    if (t_) detail::abort_task(t_);
  }
  bool is_finished() const noexcept {
    return t_ && (t_->state.load(std::memory_order_acquire) & detail::k_complete);
  }

 private:
  template <class>
  friend class join_handle;
  explicit abort_handle(detail::task_header* t) noexcept : t_(t) { t_->add_ref(); }
  detail::task_header* t_ = nullptr;
};

template <class T>
class join_set;
class runtime;

template <class T>
class [[nodiscard]] join_handle {
 public:
  using result_type = expected<T, join_error>;

  join_handle() noexcept = default;
  explicit join_handle(detail::task_header* t) noexcept : t_(t) {}
  join_handle(join_handle&& o) noexcept : t_(std::exchange(o.t_, nullptr)) {}
  join_handle& operator=(join_handle&& o) noexcept {
    if (this != &o) {
      reset();
      t_ = std::exchange(o.t_, nullptr);
    }
    return *this;
  }
  ~join_handle() { reset(); }

  bool valid() const noexcept { return t_ != nullptr; }

  // Requests cancellation. A task that already finished keeps its result.
  void abort() const noexcept {
    if (t_) detail::abort_task(t_);
  }
  // A handle that can cancel the task, for someone other than the one who awaits it.
  rt::abort_handle abort_handle() const noexcept { return rt::abort_handle(t_); }
  bool is_finished() const noexcept {
    return t_ && (t_->state.load(std::memory_order_acquire) & detail::k_complete);
  }

  // Detaches the task (same as dropping the handle).
  void detach() noexcept { reset(); }

  // Awaiting an lvalue handle leaves it in place (it still owns the result); awaiting an rvalue
  // consumes it, like `handle.await` in Tokio: the task's memory goes as soon as the value is out.
  auto operator co_await() & noexcept {
    return detail::coop::budgeted<awaiter>(awaiter{t_, false});
  }
  auto operator co_await() && noexcept {
    return detail::coop::budgeted<awaiter>(awaiter{std::exchange(t_, nullptr), true});
  }

 private:
  friend class join_set<T>;
  friend class runtime;
  struct awaiter {
    detail::task_header* t;
    bool owns;  // holds the handle's reference (awaited as an rvalue)
    bool registered = false;

    bool await_ready() const noexcept {
      return t->state.load(std::memory_order_acquire) & detail::k_complete;
    }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      detail::task_header* self = detail::suspend_current(h);
      registered = detail::register_join_waiter(t, self);
      return registered;
    }
    result_type await_resume() {
      registered = false;
      return take_result(t);
    }
    awaiter(detail::task_header* target, bool owning) noexcept : t(target), owns(owning) {}
    awaiter(awaiter&& o) noexcept
        : t(o.t),
          owns(std::exchange(o.owns, false)),
          registered(std::exchange(o.registered, false)) {}
    ~awaiter() {
      if (registered) detail::unregister_join_waiter(t);  // our task is being cancelled
      if (owns) detail::drop_join_handle(t);
    }
  };

  static result_type take_result(detail::task_header* t) {
    uint32_t s = t->state.load(std::memory_order_acquire);
    if (!(s & detail::k_result_stored)) return unexpected(join_error::cancelled());
    auto& r = static_cast<detail::result_cell<T>*>(t->frame())->result;
    if (r.index() == 2) return unexpected(join_error::panicked(std::get<2>(r)));
    if constexpr (std::is_void_v<T>) {
      return {};
    } else {
      return std::move(std::get<1>(r));
    }
  }

  void reset() noexcept {
    if (t_) detail::drop_join_handle(std::exchange(t_, nullptr));
  }

  detail::task_header* t_ = nullptr;
};

}  // namespace shoal::rt
