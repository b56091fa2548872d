// The header every task frame carries, and the per-thread context of the executor.
//
// Layout of one task allocation (exactly one per spawned task):
//
//   [ task_header (64 bytes) | coroutine frame (promise, locals, awaiters) ]
//
// The header is a prefix of the frame's own allocation (see promise_base::operator new), so it
// outlives the frame: a cancelled task's frame is destroyed at once (its destructors release
// permits and unregister waiters) while the join handle and in-flight wakers still hold the header.
// The block is freed when the last reference is released and the frame is gone.
//
// Internal: callers use task<T>, join_handle<T> and spawn().
#pragma once

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "runtime/internal/block_cache.h"

namespace shoal::rt {

class runtime_core;

namespace detail {

// Task state bits. A task is "idle" when none of scheduled/running/complete is set: it is suspended
// and whoever wakes it first moves it to scheduled.
enum task_state : uint32_t {
  k_scheduled = 1u << 0,      // in a run queue, or about to be pushed
  k_running = 1u << 1,        // a worker is resuming it
  k_notified = 1u << 2,       // woken while running: reschedule when it suspends
  k_complete = 1u << 3,       // finished, panicked or cancelled; result readable by the join handle
  k_cancelled = 1u << 4,      // abort requested
  k_join_interest = 1u << 5,  // a join_handle exists
  k_join_waiter = 1u << 6,    // join_waiter is registered and owns a reference to the waiter
  k_frame_gone = 1u << 7,     // the coroutine frame was destroyed (finished, or cancelled)
  k_cancel_hooked = 1u << 8,  // the cancel hook has been invoked for the current suspension
  k_result_stored = 1u << 9,  // a result_cell sits where the frame was (see result_cell)
  k_proxy = 1u << 10,         // not a task: a waker_proxy (below), e.g. one branch of a select
};
// The block's size class (block_cache.h) lives in the state word's top byte; it never changes.
constexpr uint32_t k_size_class_shift = 24;
constexpr uint32_t k_immutable_bits = 0xff000000u;

// A task suspended on an operation that an outside party (gRPC) still references sets a cancel
// hook: cancelling the task then asks that party to finish early instead of freeing the frame.
struct cancel_hook {
  void (*request_cancel)(cancel_hook* self);
};

// A finished spawned task's outcome. When a spawned task finishes, its frame is destroyed at once
// (its parameters and everything it owned are released, as when Tokio drops a finished future) and
// its result moves into the dead frame's memory, which always has room: the frame held the promise,
// which held the result. `drop` destroys it, since the code that frees the block is untyped.
struct result_cell_base {
  void (*drop)(result_cell_base*) noexcept;
};

struct alignas(16) task_header {
  std::atomic<uint32_t> state{0};
  std::atomic<uint32_t> refs{1};  // the creator's reference (task<T> object, then the runtime)
  task_header* next = nullptr;    // intrusive link: run queues and the inject queue
  std::coroutine_handle<> resume_point;  // innermost suspended coroutine of this task
  runtime_core* sched = nullptr;         // set when spawned; null for a task that is awaited inline
  task_header* owned_prev = nullptr;     // the runtime's list of live tasks (for shutdown)
  task_header* owned_next = nullptr;
  union {
    std::coroutine_handle<> continuation;  // awaited inline: the awaiting coroutine
    task_header* join_waiter;              // spawned: the task awaiting our join handle
  };
  std::atomic<cancel_hook*> hook{nullptr};

  explicit task_header(uint32_t size_class)
      : state(size_class << k_size_class_shift), continuation(nullptr) {}

  // The coroutine frame follows the header; task.h verifies, for every frame, that the compiler
  // put it exactly where operator new said.
  void* frame() noexcept { return reinterpret_cast<char*>(this) + sizeof(task_header); }
  std::coroutine_handle<> root() noexcept { return std::coroutine_handle<>::from_address(frame()); }
  static task_header* of_frame(void* frame) noexcept {
    return reinterpret_cast<task_header*>(static_cast<char*>(frame) - sizeof(task_header));
  }

  void add_ref() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  // Drops a reference; the last one destroys a frame that is still alive and frees the block.
  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    const uint32_t s = state.load(std::memory_order_acquire);
    if (s & k_proxy) {
      release_proxy();
    } else if (s & k_result_stored) {
      auto* cell = static_cast<result_cell_base*>(frame());
      cell->drop(cell);
      free_block();
    } else if (s & k_frame_gone) {
      free_block();
    } else {
      root().destroy();  // promise_base::operator delete sees refs == 0 and frees the block
    }
  }
  inline void release_proxy() noexcept;
  void free_block() noexcept {
    const uint32_t size_class = state.load(std::memory_order_relaxed) >> k_size_class_shift;
    this->~task_header();
    detail::free_block(this, size_class);
  }
};
static_assert(sizeof(task_header) == 64, "keep the task header one cache line");

// A waker that is not a task. Primitives keep a task_header* for the task to wake and call wake()
// and add_ref()/release() on it; an awaiter that waits on several primitives at once (select)
// hands each of them a proxy instead of its task (see suspend_current), and learns which of them
// fired. `wake` and `last_release` are the proxy's own; nothing else of the header is used.
struct waker_proxy : task_header {
  struct ops {
    void (*wake)(waker_proxy* self) noexcept;
    void (*last_release)(waker_proxy* self) noexcept;
  };
  explicit waker_proxy(const ops* o) noexcept : task_header(0), vtable(o) {
    state.store(k_proxy, std::memory_order_relaxed);
  }
  const ops* vtable;
};

inline void task_header::release_proxy() noexcept {
  auto* p = static_cast<waker_proxy*>(this);
  p->vtable->last_release(p);
}

// Schedules `t` to run (or marks it notified if it is running). The caller holds a reference or a
// registration that keeps `t` alive for the duration of the call. Defined in executor/worker.cc.
void wake(task_header* t) noexcept;

// Per-thread executor state. The trampoline (`next`) replaces symmetric transfer: g++ does not turn
// `await_suspend` returning a handle into a tail call at -O0 or under sanitizers, so chains of
// immediately completing tasks would grow the stack without it.
struct thread_context {
  class worker* current_worker = nullptr;
  task_header* current_task = nullptr;
  std::coroutine_handle<> next = nullptr;  // coroutine to resume after the current one suspends
  bool finished = false;                   // the running spawned task reached its final suspend
  bool yielded = false;                    // the running task asked to go to the back of the queue
  uint32_t budget = 0;  // awaits the running task may still complete without suspending (coop.h)
  task_header* finishing = nullptr;  // a finished task whose frame is replaced by its result
  // Frames being created: allocated by operator new, not yet checked by initial_suspend (a stack,
  // since copying a coroutine's parameters could itself create a coroutine).
  void* creating[8] = {};
  int creating_count = 0;
  void* creating_promise = nullptr;
  // While a select registers its branches: the waker they get in place of the running task.
  task_header* waker_override = nullptr;
};
inline thread_local thread_context tls;

// Resumes `h` and every coroutine it hands control to, iteratively.
inline void resume_chain(std::coroutine_handle<> h) {
  h.resume();
  while (std::coroutine_handle<> n = tls.next) {
    tls.next = nullptr;
    n.resume();
  }
}

// The task running on this thread; aborts if called outside a task.
task_header* current_task_or_die() noexcept;

// Records where the current task continues once woken, and returns the waker to register with a
// primitive: the task itself, or the proxy of the select branch being registered. Leaf awaiters
// call this in await_suspend.
inline task_header* suspend_current(std::coroutine_handle<> h) noexcept {
  task_header* t = current_task_or_die();
  t->resume_point = h;
  return tls.waker_override != nullptr ? tls.waker_override : t;
}

}  // namespace detail
}  // namespace shoal::rt
