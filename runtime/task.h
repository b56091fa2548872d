// task<T>: a lazily started coroutine, the unit of asynchronous work in Shoal's runtime.
//
// A task does nothing until it is awaited (it then runs inline, on the awaiting task) or spawned
// (it then runs on the runtime, concurrently, and spawn returns a join_handle). Like a Tokio
// future: it is a value you can move around, and destroying it before it runs simply frees it.
//
//   rt::task<int> add(int a, int b) { co_return a + b; }
//   rt::task<> caller() {
//     int x = co_await add(1, 2);            // inline
//     auto h = rt::spawn(add(3, 4));         // concurrent; one allocation
//     int y = (co_await h).value();
//   }
//
// Coroutine lambdas that capture must not be spawned directly (the captures live in the lambda
// object, not in the frame); pass values as parameters of a coroutine function instead.
#pragma once

#include <cassert>
#include <coroutine>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>
#include <variant>

#include "runtime/internal/task_header.h"

namespace shoal::rt {

template <class T = void>
class task;

namespace detail {

// The layout the runtime relies on, checked for every frame when it is created: the frame starts
// at the address operator new returned (so the header is just before it), with the resume and
// destroy pointers and then the promise (so coroutine_handle::promise() is right).
//
// g++ 12 breaks that layout for a coroutine whose loop condition co_awaits a temporary awaiter
// (`while (co_await rx.changed())`): it puts a hidden flag before the resume pointer, and resuming
// or destroying such a frame runs garbage. Nothing can repair it, so the check stops the program
// with a message naming the fix (name the result: `for (;;) { bool ok = co_await ...; if (!ok)
// break; }`).
struct promise_base {
  // The frame and its header are one allocation; see task_header.h.
  static void* operator new(std::size_t size) {
    const std::size_t bytes = sizeof(task_header) + size;
    const uint32_t size_class = block_class_for(bytes);
    void* block = allocate_block(bytes, size_class);
    void* frame = (new (block) task_header(size_class))->frame();
    tls.creating[tls.creating_count++] = frame;  // checked by initial_suspend
    return frame;
  }
  // Runs after the frame is destroyed. A cancelled task's frame is destroyed while references to
  // its header remain: the block is then freed by the last task_header::release().
  static void operator delete(void* frame, std::size_t) noexcept {
    if (tls.creating_count > 0 && tls.creating[tls.creating_count - 1] == frame) {
      --tls.creating_count;  // creation failed (a parameter's copy threw)
    }
    task_header* h = task_header::of_frame(frame);
    if (h->refs.load(std::memory_order_acquire) == 0) {
      h->free_block();
    } else if (tls.finishing != h) {  // a finished frame: complete() sets the bits
      h->state.fetch_or(k_frame_gone, std::memory_order_release);
    }
  }

  promise_base() noexcept { tls.creating_promise = this; }

  // Suspends at once (tasks are lazy), after checking the frame's layout.
  struct initial_awaiter {
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) const noexcept {
      void* allocated = tls.creating[--tls.creating_count];
      if (h.address() != allocated ||
          static_cast<char*>(h.address()) + 2 * sizeof(void*) != tls.creating_promise) {
        std::fprintf(stderr,
                     "shoal::rt: g++ 12 miscompiled a coroutine (its frame does not start with the "
                     "resume and destroy pointers). Usual cause: `while (co_await expr)`; write "
                     "`for (;;) { auto r = co_await expr; if (!r) break; }` instead.\n");
        std::abort();
      }
    }
    void await_resume() const noexcept {}
  };
  initial_awaiter initial_suspend() const noexcept { return {}; }
};

template <class T>
using result_variant =
    std::variant<std::monostate, std::conditional_t<std::is_void_v<T>, std::monostate, T>,
                 std::exception_ptr>;

template <class T>
struct result_cell final : result_cell_base {
  result_variant<T> result;
  explicit result_cell(result_variant<T>&& r) : result_cell_base{&destroy}, result(std::move(r)) {}
  static void destroy(result_cell_base* c) noexcept {
    static_cast<result_cell*>(c)->~result_cell();
  }
};

// Everything of a promise but how it returns (C++ forbids return_value beside return_void).
template <class T>
struct promise_impl : promise_base {
  using value_type = T;
  result_variant<T> result;

  static promise_impl* promise_of(task_header* h) noexcept {
    return &std::coroutine_handle<promise_impl>::from_address(h->frame()).promise();
  }

  task<T> get_return_object() noexcept;
  void unhandled_exception() noexcept { result.template emplace<2>(std::current_exception()); }
  T take() {
    if (result.index() == 2) std::rethrow_exception(std::get<2>(result));
    if constexpr (!std::is_void_v<T>) return std::move(std::get<1>(result));
  }

  struct final_awaiter {
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) const noexcept {
      task_header* hd = task_header::of_frame(h.address());
      if (hd->sched == nullptr) {
        tls.next = hd->continuation;  // awaited inline: continue the awaiting coroutine
      } else {
        store_result_and_destroy(hd, h);  // spawned: the frame goes now, the result stays
        tls.finished = true;              // the worker completes the task
      }
    }
    void await_resume() const noexcept {}
  };
  final_awaiter final_suspend() noexcept { return {}; }

  // Moves the result out of the promise, destroys the frame (nothing may touch it afterwards),
  // and builds the result cell in its memory.
  static void store_result_and_destroy(task_header* hd, std::coroutine_handle<> h) noexcept {
    // The frame held the promise, which held the result: the cell (a pointer more) fits in it.
    static_assert(sizeof(result_cell<T>) <= 2 * sizeof(void*) + sizeof(promise_impl));
    result_variant<T> moved(std::move(promise_of(hd)->result));
    tls.finishing = hd;  // complete() sets k_frame_gone | k_result_stored
    h.destroy();         // operator delete sees the runtime's reference: the block stays
    tls.finishing = nullptr;
    new (hd->frame()) result_cell<T>(std::move(moved));
  }
};

template <class T>
struct promise final : promise_impl<T> {
  template <class U>
  void return_value(U&& v) {
    this->result.template emplace<1>(std::forward<U>(v));
  }
};

template <>
struct promise<void> final : promise_impl<void> {
  void return_void() noexcept {}
};

}  // namespace detail

template <class T>
class [[nodiscard]] task {
 public:
  using promise_type = detail::promise<T>;
  using value_type = T;

  task() noexcept = default;
  task(task&& other) noexcept : h_(std::exchange(other.h_, nullptr)) {}
  task& operator=(task&& other) noexcept {
    if (this != &other) {
      reset();
      h_ = std::exchange(other.h_, nullptr);
    }
    return *this;
  }
  ~task() { reset(); }

  bool valid() const noexcept { return h_ != nullptr; }

  // Awaiting a task runs it inline on the awaiting task; the result (or exception) is returned.
  auto operator co_await() && noexcept {
    struct awaiter {
      detail::task_header* h;
      bool await_ready() const noexcept { return false; }
      void await_suspend(std::coroutine_handle<> parent) noexcept {
        h->continuation = parent;
        detail::tls.next = h->root();  // the trampoline starts the child once the parent suspended
      }
      T await_resume() { return detail::promise_impl<T>::promise_of(h)->take(); }
    };
    assert(h_ && "awaiting an empty task");
    return awaiter{h_};
  }

  // Hands the frame (and the creator's reference to its header) to the caller: used by spawn.
  detail::task_header* release_header() noexcept { return std::exchange(h_, nullptr); }

 private:
  friend struct detail::promise_impl<T>;
  explicit task(detail::task_header* h) noexcept : h_(h) {}
  void reset() noexcept {
    if (h_) std::exchange(h_, nullptr)->release();
  }

  detail::task_header* h_ = nullptr;
};

namespace detail {
template <class T>
task<T> promise_impl<T>::get_return_object() noexcept {
  return task<T>(
      task_header::of_frame(std::coroutine_handle<promise_impl>::from_promise(*this).address()));
}
}  // namespace detail

}  // namespace shoal::rt
