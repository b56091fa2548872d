// runtime: runs tasks on worker threads. Shoal's equivalent of tokio::runtime::Runtime.
//
// Two flavors: multi_thread (N workers with work stealing; a task may move between workers at any
// co_await) and current_thread (every task on one thread at a time). Each worker parks on a
// driver: a condition variable by default, or a gRPC completion queue (see runtime/grpc/).
//
// block_on: on multi_thread, the task runs on the workers and the caller waits. On
// current_thread, as in Tokio, the caller's own thread runs it, and every other task of the
// runtime while it lasts: the runtime's thread steps aside and takes over again afterwards, so a
// current_thread runtime still serves spawned tasks (and gRPC calls) when no one is in block_on.
//
//   rt::runtime rt({.kind = rt::runtime_options::flavor::multi_thread, .workers = 2});
//   int v = rt.block_on(compute());              // from ordinary code
//   auto h = rt.spawn(background_job());         // from anywhere
//   // inside a task: rt::spawn(...), co_await rt::yield_now()
//   rt::spawn([key = std::move(key)]() -> rt::task<> { co_await use(key); });  // owns its captures
//
// A coroutine lambda's captures live in the lambda object, not in its frame, so spawning the task
// a temporary lambda returns would leave the task reading a destroyed object. spawn() therefore
// also takes the lambda itself: it moves it into the spawned task's frame and calls it there, so
// the captures live exactly as long as the task (one more small frame).
//
// Destroying the runtime (or shutdown()) cancels every task still pending, waits until each one
// has been destroyed, and joins the workers. Their join handles report `cancelled`.
#pragma once

#include <concepts>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

#include "runtime/executor/runtime_core.h"
#include "runtime/join_handle.h"
#include "runtime/task.h"

namespace shoal::rt {

using flavor = runtime_options::flavor;

namespace detail {
template <class F>
concept task_factory = std::invocable<F&> && requires {
  typename std::invoke_result_t<F&>::value_type;
} && std::is_same_v<std::invoke_result_t<F&>, task<typename std::invoke_result_t<F&>::value_type>>;

// Owns `f` for as long as the task it makes runs.
template <class F, class R = typename std::invoke_result_t<F&>::value_type>
task<R> call_owned(F f) {
  if constexpr (std::is_void_v<R>) {
    co_await f();
  } else {
    co_return co_await f();
  }
}
}  // namespace detail

class runtime {
 public:
  explicit runtime(runtime_options options = {})
      : core_(std::make_unique<runtime_core>(std::move(options))) {
    core_->start();
  }
  ~runtime() { core_->shutdown(); }
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  // Schedules `t` on this runtime, from any thread. One allocation: the task's own frame.
  template <class T>
  join_handle<T> spawn(task<T> t) {
    detail::task_header* h = t.release_header();
    core_->spawn(h);
    return join_handle<T>(h);
  }
  // Spawns the task a coroutine lambda (or any callable) returns, keeping the callable alive.
  template <detail::task_factory F>
  auto spawn(F f) {
    return spawn(detail::call_owned(std::move(f)));
  }

  // Runs `t` to completion and returns its value (rethrowing its exception). Not from a worker of
  // this runtime; on current_thread, the calling thread runs the tasks meanwhile.
  template <class T>
  T block_on(task<T> t);

  // Cancels every task, waits for them, and stops the workers. Idempotent.
  void shutdown() { core_->shutdown(); }

  rt::clock& clock() { return core_->time(); }
  // Paused clock: moves time forward and fires the timers that became due.
  void advance(clock::duration d) { core_->advance_clock(d); }
  int workers() const { return core_->worker_count(); }
  runtime_core& core() { return *core_; }

 private:
  std::unique_ptr<runtime_core> core_;
};

namespace detail {

struct block_on_latch {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;

  void signal() {
    std::lock_guard lock(mu);
    done = true;
    cv.notify_all();
  }
  void wait() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done; });
  }
};

// Signals the latch however the waiting task ends: finished, or destroyed by a shutdown.
struct latch_signal {
  block_on_latch* latch;
  ~latch_signal() { latch->signal(); }
};

template <class T>
task<> wait_and_signal(join_handle<T> h, block_on_latch* latch,
                       std::optional<expected<T, join_error>>* out) {
  latch_signal signal{latch};
  out->emplace(co_await std::move(h));
}

}  // namespace detail

template <class T>
T runtime::block_on(task<T> t) {
  if (core_->is_current()) {
    std::fprintf(stderr, "shoal::rt: block_on called from a worker of the same runtime\n");
    std::abort();
  }
  if (core_->single_threaded()) {
    if (!core_->take_seat()) throw join_error::cancelled();  // the runtime has shut down
    join_handle<T> h = spawn(std::move(t));
    core_->serve_on_caller_until(h.t_);
    core_->give_seat_back();
    expected<T, join_error> r = join_handle<T>::take_result(h.t_);
    if (!r) {
      if (r.error().is_panic()) std::rethrow_exception(r.error().panic());
      throw r.error();
    }
    if constexpr (!std::is_void_v<T>)
      return std::move(*r);
    else
      return;
  }
  detail::block_on_latch latch;
  std::optional<expected<T, join_error>> result;
  spawn(detail::wait_and_signal(spawn(std::move(t)), &latch, &result)).detach();
  latch.wait();
  if (!result) throw join_error::cancelled();
  if (!*result) {
    const join_error& e = result->error();
    if (e.is_panic()) std::rethrow_exception(e.panic());
    throw e;
  }
  if constexpr (!std::is_void_v<T>) return std::move(**result);
}

// Spawns onto the runtime of the calling task.
template <class T>
join_handle<T> spawn(task<T> t) {
  detail::task_header* h = t.release_header();
  detail::current_core().spawn(h);
  return join_handle<T>(h);
}
// Spawns the task a coroutine lambda returns, moving the lambda (and its captures) into the task.
template <detail::task_factory F>
auto spawn(F f) {
  return spawn(detail::call_owned(std::move(f)));
}

// Lets the other tasks of this worker run; the caller goes to the back of the run queue.
inline auto yield_now() noexcept {
  struct awaiter {
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) const noexcept {
      detail::current_task_or_die()->resume_point = h;
      detail::tls.yielded = true;
    }
    void await_resume() const noexcept {}
  };
  return awaiter{};
}

}  // namespace shoal::rt
