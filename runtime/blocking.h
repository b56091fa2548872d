// spawn_blocking: runs a blocking closure on the runtime's blocking pool, never on a worker.
// Shoal's tokio::task::spawn_blocking.
//
// File I/O, fsync, a DNS lookup, a compression pass: anything that may block the thread for more
// than a few microseconds goes here, so that the workers keep serving tasks. The closure runs on
// a pool thread (started on demand, up to runtime_options::max_blocking_threads); the returned
// join_handle yields its value, or reports the exception it threw.
//
//   rt::join_handle<std::size_t> h = rt::spawn_blocking([fd, buf = std::move(buf)] {
//     return static_cast<std::size_t>(::write(fd, buf.data(), buf.size()));
//   });
//   auto written = co_await std::move(h);  // expected<std::size_t, join_error>
//
// (tests/runtime/header_examples_test.cc compiles and runs this example.)
//
// Bounded: at most max_blocking_threads closures run and `blocking_queue` wait for a thread; the
// ones beyond wait (as tasks, without blocking anyone) to be admitted.
//
// Cancellation: aborting the handle before the closure started means it never runs; once it
// runs it runs to the end (a blocking call cannot be interrupted) and its value is dropped.
// Shutdown: the runtime's shutdown drops closures that have not started and waits for the ones
// that are running. A closure must not wait for the runtime's tasks (they may be gone).
//
// Cost: the task that waits for the result (one allocation), a oneshot and the job (two more),
// and two thread wake-ups per closure.
#pragma once

#include <exception>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <variant>

#include "runtime/executor/blocking_pool.h"
#include "runtime/runtime.h"
#include "runtime/sync/oneshot.h"
#include "runtime/sync/semaphore.h"

namespace shoal::rt {

namespace detail {

template <class R>
using blocking_outcome =
    std::variant<std::conditional_t<std::is_void_v<R>, std::monostate, R>, std::exception_ptr>;

template <class F, class R>
struct closure_job final : blocking_job {
  closure_job(F fn, oneshot::sender<blocking_outcome<R>> t, semaphore_permit p)
      : blocking_job{&run_closure, &drop_job},
        f(std::move(fn)),
        tx(std::move(t)),
        permit(std::move(p)) {}

  static void run_closure(blocking_job* j) noexcept {
    auto* self = static_cast<closure_job*>(j);
    if (!self->tx.is_closed()) {  // nobody waits any more: do not start it
      blocking_outcome<R> out;
      try {
        if constexpr (std::is_void_v<R>) {
          self->f();
          out.template emplace<0>();
        } else {
          out.template emplace<0>(self->f());
        }
      } catch (...) {
        out.template emplace<1>(std::current_exception());
      }
      self->tx.send(std::move(out));
    }
    delete self;  // gives the admission permit back
  }
  static void drop_job(blocking_job* j) noexcept { delete static_cast<closure_job*>(j); }

  F f;
  oneshot::sender<blocking_outcome<R>> tx;
  semaphore_permit permit;
};

template <class F, class R = std::invoke_result_t<F&>>
task<R> run_blocking(runtime_core* core, F f) {
  auto permit = co_await core->blocking_admission().acquire();
  if (!permit) throw std::runtime_error("spawn_blocking: the runtime is shutting down");
  auto [tx, rx] = oneshot::channel<blocking_outcome<R>>();
  core->blocking().submit(new closure_job<F, R>(std::move(f), std::move(tx), std::move(*permit)));
  auto out = co_await std::move(rx);
  if (!out) throw std::runtime_error("spawn_blocking: the runtime shut down before it ran");
  if (out->index() == 1) std::rethrow_exception(std::get<1>(*out));
  if constexpr (!std::is_void_v<R>) co_return std::move(std::get<0>(*out));
}

}  // namespace detail

// From a task: runs `f` on the calling task's runtime's blocking pool.
template <class F>
join_handle<std::invoke_result_t<F&>> spawn_blocking(F f) {
  static_assert(std::is_invocable_v<F&>, "spawn_blocking takes a closure with no arguments");
  runtime_core& core = detail::current_core();
  return spawn(detail::run_blocking(&core, std::move(f)));
}

// From anywhere: runs `f` on this runtime's blocking pool.
template <class F>
join_handle<std::invoke_result_t<F&>> spawn_blocking(runtime& rt, F f) {
  static_assert(std::is_invocable_v<F&>, "spawn_blocking takes a closure with no arguments");
  return rt.spawn(detail::run_blocking(&rt.core(), std::move(f)));
}

}  // namespace shoal::rt
