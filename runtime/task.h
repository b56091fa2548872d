// task<T>: a lazily started coroutine, the unit of asynchronous work in Shoal's runtime.
//
// A task does nothing until it is awaited (it then runs inline, on the awaiting task) or spawned
// (it then runs on the runtime, concurrently, and spawn returns a join_handle). Like a Tokio future:
// it is a value you can move around, and destroying it before it runs simply frees it.
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

struct promise_base {
  // The frame and its header are one allocation; see task_header.h.
  static void* operator new(std::size_t size) {
    const std::size_t bytes = sizeof(task_header) + size;
    const uint32_t size_class = block_class_for(bytes);
    void* block = allocate_block(bytes, size_class);
    return static_cast<task_header*>(new (block) task_header(size_class))->frame();
  }
  // Runs after the frame is destroyed. A cancelled task's frame is destroyed while references to
  // its header remain: the block is then freed by the last task_header::release().
  static void operator delete(void* frame, std::size_t) noexcept {
    task_header* h = task_header::of_frame(frame);
    if (h->refs.load(std::memory_order_acquire) == 0) {
      h->free_block();
    } else if (tls.finishing_frame != frame) {  // a finished frame: complete() sets the bits
      h->state.fetch_or(k_frame_gone, std::memory_order_release);
    }
  }

  std::suspend_always initial_suspend() noexcept { return {}; }

  struct final_awaiter {
    bool await_ready() noexcept { return false; }
    template <class P>
    void await_suspend(std::coroutine_handle<P> h) noexcept {
      task_header* hd = task_header::of_frame(h.address());
      if (hd->sched == nullptr) {
        tls.next = hd->continuation;  // awaited inline: continue the awaiting coroutine
      } else {
        P::store_result_and_destroy(h);  // spawned: the frame goes now, the result stays
        tls.finished = true;             // the worker completes the task
      }
    }
    void await_resume() noexcept {}
  };
  final_awaiter final_suspend() noexcept { return {}; }
};

template <class T>
using result_variant =
    std::variant<std::monostate, std::conditional_t<std::is_void_v<T>, std::monostate, T>,
                 std::exception_ptr>;

template <class T>
struct result_cell final : result_cell_base {
  result_variant<T> result;
  explicit result_cell(result_variant<T>&& r)
      : result_cell_base{&destroy}, result(std::move(r)) {}
  static void destroy(result_cell_base* c) noexcept { static_cast<result_cell*>(c)->~result_cell(); }
};

// Runs in the final awaiter of a spawned task: moves the result out of the promise, destroys the
// frame (the caller must not touch it afterwards), and constructs the result in its memory.
template <class P, class Result>
void move_result_into_dead_frame(std::coroutine_handle<P> h, Result&& r) noexcept {
  // A frame starts with two function pointers, then the promise, which holds the result.
  static_assert(sizeof(result_cell<typename P::value_type>) <= 2 * sizeof(void*) + sizeof(P));
  task_header* hd = task_header::of_frame(h.address());
  Result moved(std::move(r));
  tls.finishing_frame = h.address();  // complete() sets k_frame_gone | k_result_stored
  h.destroy();  // operator delete sees the runtime's reference: the block stays
  tls.finishing_frame = nullptr;
  new (hd->frame()) result_cell<typename P::value_type>(std::move(moved));
}

template <class T>
struct promise final : promise_base {
  using value_type = T;
  std::variant<std::monostate, T, std::exception_ptr> result;

  static void store_result_and_destroy(std::coroutine_handle<promise> h) noexcept {
    move_result_into_dead_frame(h, std::move(h.promise().result));
  }

  task<T> get_return_object() noexcept;
  template <class U>
  void return_value(U&& v) {
    result.template emplace<1>(std::forward<U>(v));
  }
  void unhandled_exception() noexcept { result.template emplace<2>(std::current_exception()); }
  bool panicked() const noexcept { return result.index() == 2; }
  std::exception_ptr exception() const noexcept { return std::get<2>(result); }
  T take() {
    if (result.index() == 2) std::rethrow_exception(std::get<2>(result));
    return std::move(std::get<1>(result));
  }
};

template <>
struct promise<void> final : promise_base {
  using value_type = void;
  std::exception_ptr error;

  static void store_result_and_destroy(std::coroutine_handle<promise> h) noexcept {
    std::variant<std::monostate, std::monostate, std::exception_ptr> r;
    if (h.promise().error) r.emplace<2>(std::move(h.promise().error));
    move_result_into_dead_frame(h, std::move(r));
  }

  task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void unhandled_exception() noexcept { error = std::current_exception(); }
  bool panicked() const noexcept { return error != nullptr; }
  std::exception_ptr exception() const noexcept { return error; }
  void take() {
    if (error) std::rethrow_exception(error);
  }
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
      std::coroutine_handle<promise_type> h;
      bool await_ready() const noexcept { return false; }
      void await_suspend(std::coroutine_handle<> parent) noexcept {
        detail::task_header::of_frame(h.address())->continuation = parent;
        detail::tls.next = h;  // the trampoline starts the child once the parent has suspended
      }
      T await_resume() { return h.promise().take(); }
    };
    assert(h_ && "awaiting an empty task");
    return awaiter{h_};
  }

  // Hands the frame (and the creator's reference to its header) to the caller: used by spawn.
  detail::task_header* release_header() noexcept {
    return detail::task_header::of_frame(std::exchange(h_, nullptr).address());
  }

 private:
  friend struct detail::promise<T>;
  explicit task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  void reset() noexcept {
    if (h_) detail::task_header::of_frame(std::exchange(h_, nullptr).address())->release();
  }

  std::coroutine_handle<promise_type> h_ = nullptr;
};

namespace detail {
template <class T>
task<T> promise<T>::get_return_object() noexcept {
  return task<T>(std::coroutine_handle<promise<T>>::from_promise(*this));
}
inline task<void> promise<void>::get_return_object() noexcept {
  return task<void>(std::coroutine_handle<promise<void>>::from_promise(*this));
}
}  // namespace detail

}  // namespace shoal::rt
