// select, join, join_all and timeout: waiting on several things at once.
//
//   // first wins; the others are cancelled and awaited until they are gone
//   auto r = co_await rt::select(rx.recv_task(), rt::sleep_for(1s));
//   if (r.index() == 1) ...                         // std::variant, void results as monostate
//   auto [a, b] = co_await rt::join(fetch(x), fetch(y));
//   std::vector<int> all = co_await rt::join_all(std::move(tasks));
//   absl::StatusOr<int> v = co_await rt::timeout(250ms, fetch(x));   // DEADLINE_EXCEEDED
//
// Each branch runs as a spawned task, so branches may run in parallel on a multi-thread runtime.
// Losers are cancelled the Tokio way (their frames are destroyed at a suspension point), and
// select returns only once they are gone, so nothing of theirs outlives the call. An exception in
// the winning branch is rethrown; join/join_all rethrow the first exception after all finished.
#pragma once

#include <atomic>
#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "runtime/runtime.h"
#include "runtime/time/sleep.h"

namespace shoal::rt {

template <class T>
using value_or_monostate = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

// Wraps any awaitable into a task (needed to run it as a select branch).
template <class A>
auto to_task(A awaitable) -> task<decltype(std::declval<A&&>().await_resume())> {
  co_return co_await std::move(awaitable);
}

inline task<> sleep_for(clock::duration d) { co_await sleep(d); }

namespace detail {

// The parent parks here until the first branch finishes. `state_`: -1 open, -2 parent parked,
// -3 parent gone, >= 0 the winning branch. Whoever moves it out of -2 owns the parent's reference.
class race {
 public:
  bool claim(int index) {
    int s = state_.load(std::memory_order_acquire);
    for (;;) {
      if (s >= 0 || s == -3) return false;
      if (state_.compare_exchange_weak(s, index, std::memory_order_acq_rel)) break;
    }
    if (s == -2) {
      wake(parent_);
      parent_->release();
    }
    return true;
  }
  int winner() const { return state_.load(std::memory_order_acquire); }

  struct awaiter {
    race* r;
    bool parked = false;
    bool await_ready() const { return r->winner() >= 0; }
    bool await_suspend(std::coroutine_handle<> h) {
      task_header* self = suspend_current(h);
      self->add_ref();
      r->parent_ = self;
      int expected = -1;
      if (r->state_.compare_exchange_strong(expected, -2, std::memory_order_acq_rel)) {
        parked = true;
        return true;
      }
      self->release();
      return false;
    }
    int await_resume() {
      parked = false;
      return r->winner();
    }
    ~awaiter() {
      int expected = -2;
      if (parked && r->state_.compare_exchange_strong(expected, -3)) r->parent_->release();
    }
  };
  awaiter wait() { return awaiter{this}; }

 private:
  std::atomic<int> state_{-1};
  task_header* parent_ = nullptr;
};

template <class... Ts>
struct select_state {
  race r;
  std::tuple<std::optional<value_or_monostate<Ts>>...> values;
  std::exception_ptr error;  // written by the winner only
};

template <std::size_t I, class T, class State>
task<> select_branch(task<T> t, std::shared_ptr<State> st) {
  std::optional<value_or_monostate<T>> v;
  std::exception_ptr e;
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(t);
      v.emplace();
    } else {
      v.emplace(co_await std::move(t));
    }
  } catch (...) {
    e = std::current_exception();
  }
  if (st->r.claim(static_cast<int>(I))) {
    std::get<I>(st->values) = std::move(v);
    st->error = e;
  }
}

// Aborts the tasks it holds if the awaiting task itself is cancelled.
template <class T>
struct abort_on_drop {
  std::vector<join_handle<T>> handles;
  ~abort_on_drop() {
    for (auto& h : handles) h.abort();
  }
};

template <class Variant, std::size_t I = 0, class Tuple>
Variant take_winner(Tuple& values, int winner) {
  if constexpr (I < std::tuple_size_v<Tuple>) {
    if (static_cast<int>(I) == winner)
      return Variant(std::in_place_index<I>, std::move(*std::get<I>(values)));
    return take_winner<Variant, I + 1>(values, winner);
  } else {
    std::terminate();  // unreachable: the winner index is always a branch
  }
}

template <class... Ts, std::size_t... I>
task<std::variant<value_or_monostate<Ts>...>> select_impl(std::index_sequence<I...>,
                                                          task<Ts>... branches) {
  using state = select_state<Ts...>;
  auto st = std::make_shared<state>();
  abort_on_drop<void> running;
  (running.handles.push_back(spawn(select_branch<I, Ts, state>(std::move(branches), st))), ...);
  int winner = co_await st->r.wait();
  // The winner's branch task may still be finishing (it is past its claim); the losers are
  // cancelled. Await all of them, so that nothing of theirs outlives this call.
  for (auto& h : running.handles) h.abort();
  for (auto& h : running.handles) (void)co_await h;
  running.handles.clear();
  if (st->error) std::rethrow_exception(st->error);
  co_return take_winner<std::variant<value_or_monostate<Ts>...>>(st->values, winner);
}

}  // namespace detail

// The first branch to finish wins; the rest are cancelled. Yields the winner's value; use
// .index() to tell which.
template <class... Ts>
task<std::variant<value_or_monostate<Ts>...>> select(task<Ts>... branches) {
  return detail::select_impl(std::index_sequence_for<Ts...>{}, std::move(branches)...);
}

// Runs all tasks concurrently and yields their values in order.
template <class T>
task<std::vector<value_or_monostate<T>>> join_all(std::vector<task<T>> tasks) {
  detail::abort_on_drop<T> running;
  running.handles.reserve(tasks.size());
  for (auto& t : tasks) running.handles.push_back(spawn(std::move(t)));
  std::vector<value_or_monostate<T>> out;
  out.reserve(tasks.size());
  std::exception_ptr first_error;
  for (auto& h : running.handles) {
    auto r = co_await h;
    if (!r) {
      if (!first_error) first_error = r.error().panic();
      if constexpr (!std::is_void_v<T>) out.emplace_back();
      continue;
    }
    if constexpr (std::is_void_v<T>) {
      out.emplace_back();
    } else {
      out.push_back(std::move(*r));
    }
  }
  running.handles.clear();
  if (first_error) std::rethrow_exception(first_error);
  co_return out;
}

namespace detail {
template <class T>
task<value_or_monostate<T>> as_value(task<T> t) {
  if constexpr (std::is_void_v<T>) {
    co_await std::move(t);
    co_return std::monostate{};
  } else {
    co_return co_await std::move(t);
  }
}

// A join handle that cancels its task when dropped: if the awaiting task is itself cancelled,
// the work it started does not run on unattended.
template <class T>
struct scoped_handle {
  explicit scoped_handle(join_handle<T> handle) : h(std::move(handle)) {}
  scoped_handle(scoped_handle&&) noexcept = default;
  ~scoped_handle() { h.abort(); }
  join_handle<T> h;
};

template <class... Ts, std::size_t... I>
task<std::tuple<value_or_monostate<Ts>...>> join_impl(std::index_sequence<I...>, task<Ts>... ts) {
  std::tuple<scoped_handle<value_or_monostate<Ts>>...> handles{
      scoped_handle<value_or_monostate<Ts>>(spawn(as_value(std::move(ts))))...};
  std::tuple<std::optional<expected<value_or_monostate<Ts>, join_error>>...> results;
  ((std::get<I>(results).emplace(co_await std::get<I>(handles).h)), ...);
  std::exception_ptr first;
  ((first =
        first ? first : (*std::get<I>(results) ? nullptr : std::get<I>(results)->error().panic())),
   ...);
  if (first) std::rethrow_exception(first);
  co_return std::tuple<value_or_monostate<Ts>...>(std::move(**std::get<I>(results))...);
}
}  // namespace detail

// Runs the tasks concurrently; yields a tuple of their values (void as monostate).
template <class... Ts>
task<std::tuple<value_or_monostate<Ts>...>> join(task<Ts>... ts) {
  return detail::join_impl(std::index_sequence_for<Ts...>{}, std::move(ts)...);
}

// Fails with DEADLINE_EXCEEDED if `t` has not finished within `d`; `t` is then cancelled.
template <class T>
task<std::conditional_t<std::is_void_v<T>, absl::Status, absl::StatusOr<value_or_monostate<T>>>>
timeout(clock::duration d, task<T> t) {
  auto r = co_await select(std::move(t), sleep_for(d));
  if (r.index() == 1) {
    co_return absl::DeadlineExceededError(
        absl::StrCat("timed out after ",
                     std::chrono::duration_cast<std::chrono::milliseconds>(d).count(), " ms"));
  }
  if constexpr (std::is_void_v<T>) {
    co_return absl::OkStatus();
  } else {
    co_return std::move(std::get<0>(r));
  }
}

}  // namespace shoal::rt
