// select, join, join_all and timeout: waiting on several things at once. Shoal's tokio::select!,
// tokio::join! and tokio::time::timeout.
//
// select polls its branches in place, in the awaiting task: no task is spawned for a branch that
// is a primitive's await (a receive, a permit, a change, a sleep, a notification, a join handle).
// The first branch to complete wins and yields its value; the others are dropped, which
// unregisters them from their primitives (each primitive's own cancel safety applies: a receive
// that lost takes no message, a permit granted to a lost branch goes back).
//
//   auto first = co_await rt::select(a.recv(), stop.changed(), rt::sleep(1s));
//   if (first.index() == 0) got.push_back(*std::get<0>(first));  // a std::variant
//   // loop until every channel is closed (the select's "else")
//   for (;;) {
//     auto r = co_await rt::select(rt::else_when_closed, a.recv(), b.recv());
//     if (r.index() == 2) break;  // rt::all_closed: both senders are gone
//     got.push_back(r.index() == 0 ? *std::get<0>(r) : *std::get<1>(r));
//   }
//
// (tests/runtime/header_examples_test.cc compiles and runs this example; void results are
// std::monostate in the variant.)
//
// Fairness: branches are polled from a random first one, so none is starved; `rt::biased` polls
// them in the order written (cheaper, and lets a shutdown branch always take precedence). With
// `rt::else_when_closed`, a branch whose result says "closed" (an empty optional, false, or an
// expected holding a closed error) does not win: it is set aside and the select waits on the
// others; once every branch is closed the result is `rt::all_closed`, the last alternative.
//
// A `task<T>` branch is spawned (a task cannot share its awaiter's suspension points), and if it
// loses it is cancelled and awaited until gone before select returns, so nothing of it outlives
// the call. An exception thrown by a winning task branch is rethrown. That wait is one more
// suspension: if the awaiting task is itself cancelled then, a value a winning primitive branch
// took (a received message) is dropped with it; where that matters, keep task branches and
// message branches in separate selects. A gRPC operation cannot be a branch (its tag must come
// back before its frame may go), nor can a select (put the branches in one select): wrap either
// in a task. else_when_closed takes no task branches (a task is never "closed").
//
// Cost: nothing allocated when a branch is ready at once; otherwise one block holding one small
// waker per branch (it outlives the call if a primitive is waking a losing branch at that moment),
// and one small frame that resumes the task when a branch fires. A select is one await for the
// cooperative budget.
//
// join/join_all run tasks concurrently (spawned) and yield all their values; timeout(d, t) fails
// with DEADLINE_EXCEEDED if `t` has not finished within `d`, and cancels it.
#pragma once

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
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
#include "runtime/expected.h"
#include "runtime/internal/coop.h"
#include "runtime/join_handle.h"
#include "runtime/runtime.h"
#include "runtime/time/sleep.h"

namespace shoal::rt {

template <class T>
using value_or_monostate = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

// Wraps any awaitable into a task.
template <class A>
auto to_task(A awaitable) -> task<decltype(std::declval<A&&>().await_resume())> {
  co_return co_await std::move(awaitable);
}

inline task<> sleep_for(clock::duration d) { co_await sleep(d); }

// select's modes and its "else" alternative.
struct biased_t {};
inline constexpr biased_t biased{};
struct else_when_closed_t {};
inline constexpr else_when_closed_t else_when_closed{};
struct all_closed {};

namespace detail {

template <class A>
struct is_budgeted : std::false_type {};
template <class I>
struct is_budgeted<coop::budgeted<I>> : std::true_type {};
template <class A>
struct is_task : std::false_type {};
template <class T>
struct is_task<task<T>> : std::true_type {};
template <class A>
struct is_expected : std::false_type {};
template <class T, class E>
struct is_expected<expected<T, E>> : std::true_type {};

// Does a branch's result mean "this source is closed"? An empty optional (a receive after every
// sender left), false (a watch whose sender left, a send whose receiver left), or an expected
// holding an error (a closed semaphore or oneshot); an error type may refine that with an
// `is_closed_error` overload found by ADL (broadcast: lagged is not closed).
template <class V>
bool is_closed_value(const V& v) {
  if constexpr (std::is_same_v<V, bool>) {
    return !v;
  } else if constexpr (requires {
                         v.has_value();
                         v == std::nullopt;
                       }) {
    return !v.has_value();
  } else if constexpr (is_expected<V>::value) {
    if (v.has_value()) return false;
    if constexpr (requires { is_closed_error(v.error()); }) {
      return is_closed_error(v.error());
    } else {
      return true;
    }
  } else {
    return false;
  }
}

// A task branch: the task is spawned; the branch waits on its join handle.
template <class T>
class join_branch {
 public:
  using value_type = T;
  explicit join_branch(task<T> t) : handle_(spawn(std::move(t))) { op_.emplace(handle_); }
  join_branch(join_branch&&) = delete;
  // Dropped without being reaped (the awaiting task was cancelled): the task is cancelled too.
  ~join_branch() {
    op_.reset();
    handle_.abort();
  }

  bool await_ready() { return op_->await_ready(); }
  bool await_suspend(std::coroutine_handle<> h) { return op_->await_suspend(h); }
  expected<T, join_error> await_resume() { return op_->await_resume(); }

  // A losing branch: cancel the task and give up the join registration, then await `gone()`.
  void cancel() {
    op_.reset();
    handle_.abort();
  }
  auto gone() { return handle_.operator co_await(); }

 private:
  struct op {
    explicit op(join_handle<T>& h) : a(h.operator co_await()) {}
    bool await_ready() { return a.inner().await_ready(); }
    bool await_suspend(std::coroutine_handle<> h) { return a.inner().await_suspend(h); }
    expected<T, join_error> await_resume() { return a.inner().await_resume(); }
    decltype(std::declval<join_handle<T>&>().operator co_await()) a;
  };
  join_handle<T> handle_;
  std::optional<op> op_;
};

// The awaiter that a select argument becomes.
template <class A>
struct branch_of {
  using type = A;
};
template <class I>
struct branch_of<coop::budgeted<I>> {
  using type = I;  // the select is one await for the budget; its branches do not spend
};
template <class T>
struct branch_of<task<T>> {
  using type = join_branch<T>;
};
template <class A>
using branch_t = typename branch_of<A>::type;

template <class B>
struct is_task_branch : std::false_type {};
template <class T>
struct is_task_branch<join_branch<T>> : std::true_type {};

template <bool Biased, bool Else, class... B>
class select_awaiter;
template <class B>
struct is_select : std::false_type {};
template <bool Biased, bool Else, class... B>
struct is_select<select_awaiter<Biased, Else, B...>> : std::true_type {};

// While a select polls and registers its branches, they may spend from the budget (an awaiter
// made of others, like a mutex's lock, has a budgeted part): they get a full one, and the task's
// own is restored after, so none of them takes the path that yields the task. The select itself
// is one await for the budget.

template <class B>
struct branch_value {
  using raw = decltype(std::declval<B&>().await_resume());
  using type = value_or_monostate<std::decay_t<raw>>;
};
template <class T>
struct branch_value<join_branch<T>> {
  using type = value_or_monostate<T>;
};
template <class B>
using branch_value_t = typename branch_value<B>::type;

inline uint32_t next_random() noexcept {
  thread_local uint64_t x = 0x9E3779B97F4A7C15ull ^ reinterpret_cast<uintptr_t>(&x);
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return static_cast<uint32_t>(x >> 32);
}

// Suspends the running task with this frame as its resume point.
struct park_here {
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const noexcept {
    current_task_or_die()->resume_point = h;
  }
  void await_resume() const noexcept {}
};

// The wakers of a select's branches, and the word they report in: bit i = branch i fired,
// k_parked = the task sleeps and the first waker to clear the bit wakes it (and owns the
// reference the task took on itself). Freed when the last waker reference goes.
template <std::size_t N>
struct select_wakers {
  static constexpr uint32_t k_parked = 1u << 31;

  struct proxy : waker_proxy {
    proxy() noexcept : waker_proxy(&k_ops) {}
    select_wakers* owner = nullptr;
    uint32_t bit = 0;
  };

  explicit select_wakers(task_header* p) : parent(p) {
    for (std::size_t i = 0; i < N; ++i) {
      proxies[i].owner = this;
      proxies[i].bit = 1u << i;
    }
  }

  static void on_wake(waker_proxy* w) noexcept {
    auto* p = static_cast<proxy*>(w);
    select_wakers* s = p->owner;
    if (!(s->word.fetch_or(p->bit, std::memory_order_acq_rel) & k_parked)) return;
    if (!(s->word.fetch_and(~k_parked, std::memory_order_acq_rel) & k_parked)) return;
    task_header* parent = s->parent;
    wake(parent);
    parent->release();
  }
  static void on_last_release(waker_proxy* w) noexcept {
    select_wakers* s = static_cast<proxy*>(w)->owner;
    if (s->live.fetch_sub(1, std::memory_order_acq_rel) == 1) delete s;
  }
  static constexpr waker_proxy::ops k_ops{&on_wake, &on_last_release};

  // The select's own references, one per waker; the block goes when the last is dropped.
  void release_all() noexcept {
    for (auto& p : proxies) p.release();
  }

  std::atomic<uint32_t> word{0};
  task_header* const parent;
  std::atomic<int> live{static_cast<int>(N)};
  proxy proxies[N];
};

template <bool Biased, bool Else, class... B>
class select_awaiter {
 public:
  static constexpr std::size_t N = sizeof...(B);
  static_assert(N >= 1 && N <= 31, "a select has 1 to 31 branches");
  static_assert(!(is_select<B>::value || ...),
                "a select cannot be a branch of another select: put all the branches in one, or "
                "wrap the inner select in a task");
  static_assert(!Else || !(is_task_branch<B>::value || ...),
                "else_when_closed takes no task branches (a task is never closed)");
  using result_type = std::conditional_t<Else, std::variant<branch_value_t<B>..., all_closed>,
                                         std::variant<branch_value_t<B>...>>;

  template <class... A>
  explicit select_awaiter(A&&... args) {
    init(std::index_sequence_for<B...>{}, std::forward<A>(args)...);
  }
  select_awaiter(const select_awaiter&) = delete;
  select_awaiter& operator=(const select_awaiter&) = delete;
  ~select_awaiter() {
    if (wakers_ == nullptr) return;
    // Destroyed while waiting: the task was cancelled.
    if (wakers_->word.fetch_and(~wakers_t::k_parked, std::memory_order_acq_rel) &
        wakers_t::k_parked) {
      wakers_->parent->release();
    }
    if (driver_) driver_.destroy();
    finish();
  }

  bool await_ready() {
    if constexpr (!Biased) first_ = next_random() % N;
    if constexpr (k_has_tasks) {
      return false;  // a losing task must be reaped, which takes a suspension
    } else {
      coop::full_budget polling;
      for (std::size_t k = 0; k < N; ++k) {
        const std::size_t i = order(k);
        if (enabled(i) && ready(i) && take(i)) return true;
      }
      if constexpr (Else) {
        if (all_disabled()) return decide_all_closed();
      }
      return false;
    }
  }

  bool await_suspend(std::coroutine_handle<> h) {
    task_header* self = current_task_or_die();
    wakers_ = new wakers_t(self);
    bool decided = register_branches(h) || arm_or_settle();
    if (decided && !k_has_tasks) {
      finish();
      return false;
    }
    // Parked until a branch fires, or decided with losing tasks to reap: the driver goes on.
    driver_ = drive(this, h).handle;
    self->resume_point = driver_;
    if (decided) tls.yielded = true;  // run the driver at once, from the back of the queue
    return true;
  }

  result_type await_resume() {
    if (error_) std::rethrow_exception(error_);
    return std::move(*result_);
  }

 private:
  using wakers_t = select_wakers<N>;
  static constexpr bool k_has_tasks = (is_task_branch<B>::value || ...);

  template <std::size_t... I, class... A>
  void init(std::index_sequence<I...>, A&&... args) {
    (emplace<I>(std::forward<A>(args)), ...);
  }
  template <std::size_t I, class A>
  void emplace(A&& a) {
    if constexpr (is_budgeted<std::decay_t<A>>::value) {
      std::get<I>(branches_).emplace(std::move(a.inner()));
    } else {
      std::get<I>(branches_).emplace(std::forward<A>(a));
    }
  }

  std::size_t order(std::size_t k) const { return Biased ? k : (first_ + k) % N; }
  bool enabled(std::size_t i) const { return !(disabled_ & (1u << i)); }
  bool all_disabled() const { return disabled_ == (1u << N) - 1; }
  bool decided() const { return result_.has_value() || error_ != nullptr; }

  // Calls f(integral_constant<I>) for the branch at run-time index i; f yields a bool.
  template <class F>
  bool at(std::size_t i, F&& f) {
    return at_impl(i, f, std::index_sequence_for<B...>{});
  }
  template <class F, std::size_t... I>
  bool at_impl(std::size_t i, F& f, std::index_sequence<I...>) {
    bool r = false;
    (void)((i == I && ((r = f(std::integral_constant<std::size_t, I>{})), true)) || ...);
    return r;
  }

  bool ready(std::size_t i) {
    return at(i, [&](auto I) { return std::get<I()>(branches_)->await_ready(); });
  }
  bool suspend_branch(std::size_t i, std::coroutine_handle<> h) {
    return at(i, [&](auto I) { return coop::suspend(*std::get<I()>(branches_), h); });
  }

  // Branch i completed: its result wins, or (else mode, a closed result) the branch is set aside.
  bool take(std::size_t i) {
    return at(i, [&](auto I) { return take_at<I()>(); });
  }
  template <std::size_t I>
  bool take_at() {
    auto& b = *std::get<I>(branches_);
    using branch = std::tuple_element_t<I, std::tuple<B...>>;
    if constexpr (is_task_branch<branch>::value) {
      auto r = b.await_resume();
      if (!r) {
        error_ = r.error().is_panic() ? r.error().panic() : std::make_exception_ptr(r.error());
      } else if constexpr (std::is_void_v<typename branch::value_type>) {
        result_.emplace(std::in_place_index<I>);
      } else {
        result_.emplace(std::in_place_index<I>, std::move(*r));
      }
    } else if constexpr (std::is_void_v<decltype(b.await_resume())>) {
      b.await_resume();
      result_.emplace(std::in_place_index<I>);
    } else {
      auto v = b.await_resume();
      if constexpr (Else) {
        if (is_closed_value(v)) {
          disabled_ |= 1u << I;
          std::get<I>(branches_).reset();
          return false;
        }
      }
      result_.emplace(std::in_place_index<I>, std::move(v));
    }
    winner_ = static_cast<int>(I);
    return true;
  }
  bool decide_all_closed() {
    if constexpr (Else) result_.emplace(std::in_place_index<N>);
    return true;
  }

  // Registers every branch with its own waker; true if one completed meanwhile and won.
  bool register_branches(std::coroutine_handle<> h) {
    coop::full_budget registering;
    for (std::size_t k = 0; k < N; ++k) {
      const std::size_t i = order(k);
      if (!enabled(i)) continue;
      tls.waker_override = &wakers_->proxies[i];
      const bool completed = ready(i) || !suspend_branch(i, h);
      tls.waker_override = nullptr;
      if (completed && take(i)) return true;
    }
    if constexpr (Else) {
      if (all_disabled()) return decide_all_closed();
    }
    return false;
  }

  // Takes the branches that fired; if none wins, parks the task (false). True once decided.
  bool arm_or_settle() {
    for (;;) {
      const uint32_t fired = wakers_->word.exchange(0, std::memory_order_acq_rel);
      for (std::size_t k = 0; fired != 0 && k < N; ++k) {
        const std::size_t i = order(k);
        if ((fired & (1u << i)) && enabled(i) && take(i)) return true;
      }
      if constexpr (Else) {
        if (all_disabled()) return decide_all_closed();
      }
      wakers_->parent->add_ref();  // owned by whoever clears k_parked
      const uint32_t prev = wakers_->word.fetch_or(wakers_t::k_parked, std::memory_order_acq_rel);
      if (prev == 0) return false;
      if (!(wakers_->word.fetch_and(~wakers_t::k_parked, std::memory_order_acq_rel) &
            wakers_t::k_parked)) {
        return false;  // a waker took it: it wakes the task
      }
      wakers_->parent->release();
    }
  }

  // Runs in place of the awaiting coroutine each time the task is woken while the select waits.
  static coop::stand_in_frame drive(select_awaiter* self, std::coroutine_handle<> h) {
    while (!self->decided() && !self->arm_or_settle()) co_await park_here{};
    if constexpr (k_has_tasks) co_await self->template reap_from<0>();
    self->driver_ = {};
    self->finish();
    tls.next = h;
  }

  // Losing task branches: cancelled, and awaited until gone.
  template <std::size_t I>
  task<> reap_from() {
    if constexpr (I < N) {
      using branch = std::tuple_element_t<I, std::tuple<B...>>;
      if constexpr (is_task_branch<branch>::value) {
        if (winner_ != static_cast<int>(I) && std::get<I>(branches_)) {
          auto& b = *std::get<I>(branches_);
          b.cancel();
          (void)co_await b.gone();
        }
      }
      co_await reap_from<I + 1>();
    }
    co_return;
  }

  // Drops every branch (a registered one unregisters; a granted one gives back what it got), then
  // the select's references to its wakers.
  void finish() {
    std::apply([](auto&... b) { (b.reset(), ...); }, branches_);
    if (wakers_ != nullptr) std::exchange(wakers_, nullptr)->release_all();
  }

  std::tuple<std::optional<B>...> branches_;
  std::optional<result_type> result_;
  std::exception_ptr error_;
  wakers_t* wakers_ = nullptr;
  std::coroutine_handle<> driver_;
  uint32_t disabled_ = 0;
  int winner_ = -1;
  std::size_t first_ = 0;
};

template <bool Biased, bool Else, class... A>
auto make_select(A&&... args) {
  using awaiter = select_awaiter<Biased, Else, branch_t<std::decay_t<A>>...>;
  return coop::budgeted<awaiter>(std::in_place, std::forward<A>(args)...);
}

}  // namespace detail

// The first branch to complete wins; the rest are dropped. `co_await` yields a std::variant whose
// index says which branch won. Arguments are taken by value (g++ 12 destroys a temporary bound to a
// reference parameter inside a co_await twice).
template <class... A>
auto select(A... branches) {
  return detail::make_select<false, false>(std::move(branches)...);
}
template <class... A>
auto select(biased_t, A... branches) {
  return detail::make_select<true, false>(std::move(branches)...);
}
template <class... A>
auto select(else_when_closed_t, A... branches) {
  return detail::make_select<false, true>(std::move(branches)...);
}
template <class... A>
auto select(biased_t, else_when_closed_t, A... branches) {
  return detail::make_select<true, true>(std::move(branches)...);
}

namespace detail {
// Aborts the tasks it holds if the awaiting task itself is cancelled.
template <class T>
struct abort_on_drop {
  std::vector<join_handle<T>> handles;
  ~abort_on_drop() {
    for (auto& h : handles) h.abort();
  }
};
}  // namespace detail

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
  auto r = co_await select(biased, std::move(t), sleep(d));
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
