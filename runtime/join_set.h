// join_set<T>: a set of spawned tasks, joined in the order they finish. Shoal's
// tokio::task::JoinSet.
//
// Spawn many, then take each result as soon as its task is done, whatever the order they were
// spawned in; dropping the set aborts every task still in it, so work started for a request does
// not outlive the request.
//
//   rt::join_set<int> set;
//   for (auto& k : keys) set.spawn(fetch(k));
//   for (;;) {
//     auto r = co_await set.join_next();  // optional<expected<int, join_error>>
//     if (!r) break;                      // the set is empty
//     if (*r) total += **r;
//   }
//
// (tests/runtime/header_examples_test.cc compiles and runs this example.)
//
// join_next() is for one task at a time (the set's owner). Cancel safety: a cancelled join_next
// takes no result (the next one gets it). abort_all() cancels every task (each still comes out of
// join_next, as cancelled); detach_all() lets them run on, forgotten. Cost per task: the task,
// and one entry (a waker the runtime calls when the task finishes, and the links of two lists).
#pragma once

#include <coroutine>
#include <cstddef>
#include <optional>
#include <utility>
#include <vector>

#include "runtime/internal/coop.h"
#include "runtime/internal/spin_lock.h"
#include "runtime/join_handle.h"
#include "runtime/runtime.h"

namespace shoal::rt {

template <class T>
class join_set {
  struct shared;

 public:
  using result_type = expected<T, join_error>;

  join_set() : s_(new shared()) {}
  join_set(const join_set&) = delete;
  join_set& operator=(const join_set&) = delete;
  ~join_set() {
    abort_all();
    detach_all();
    s_->release();
  }

  // Spawns `t` on the calling task's runtime and adds it to the set.
  rt::abort_handle spawn(task<T> t) { return add(rt::spawn(std::move(t))); }
  // Spawns `t` on `r` (from any thread) and adds it to the set.
  rt::abort_handle spawn(runtime& r, task<T> t) { return add(r.spawn(std::move(t))); }

  // Tasks in the set: running, or finished and not joined yet.
  std::size_t size() const {
    detail::spin_guard lock(s_->mu);
    return s_->count;
  }
  bool empty() const { return size() == 0; }

  class join_next_awaiter {
   public:
    bool await_ready() { return s_->has_result_or_is_empty(); }
    bool await_suspend(std::coroutine_handle<> h) {
      detail::spin_guard lock(s_->mu);
      if (s_->done.head != nullptr || s_->running.head == nullptr) return false;
      detail::task_header* self = detail::suspend_current(h);
      self->add_ref();  // owned by whoever clears `waiter`
      s_->waiter = self;
      parked_ = true;
      return true;
    }
    std::optional<result_type> await_resume() {
      parked_ = false;
      return s_->take_one();
    }
    join_next_awaiter(join_next_awaiter&& o) noexcept : s_(o.s_) {}
    ~join_next_awaiter() {
      if (!parked_) return;
      // Cancelled while waiting: withdraw, unless a finishing task already took our task to wake.
      detail::task_header* mine = nullptr;
      {
        detail::spin_guard lock(s_->mu);
        mine = std::exchange(s_->waiter, nullptr);
      }
      if (mine != nullptr) mine->release();
    }

   private:
    friend class join_set;
    explicit join_next_awaiter(typename join_set::shared* s) noexcept : s_(s) {}
    typename join_set::shared* s_;
    bool parked_ = false;
  };

  // `co_await` yields the result of the next task to finish, or nullopt once the set is empty.
  detail::coop::budgeted<join_next_awaiter> join_next() {
    return detail::coop::budgeted<join_next_awaiter>(join_next_awaiter(s_));
  }
  // A finished task's result, if one is waiting.
  std::optional<result_type> try_join_next() { return s_->take_one(); }

  // Cancels every task in the set; each still comes out of join_next(), as cancelled.
  void abort_all() {
    std::vector<rt::abort_handle> handles;
    {
      detail::spin_guard lock(s_->mu);
      for (entry* e = s_->running.head; e != nullptr; e = e->next) {
        handles.push_back(e->handle.abort_handle());
      }
    }
    for (auto& h : handles) h.abort();
  }

  // Forgets every task: those running go on, unattended.
  void detach_all() {
    std::vector<entry*> dropped;
    {
      detail::spin_guard lock(s_->mu);
      for (list* l : {&s_->running, &s_->done}) {
        while (entry* e = l->pop_front()) {
          e->detached = true;
          dropped.push_back(e);
        }
      }
      s_->count = 0;
    }
    for (entry* e : dropped) e->release();  // the set's reference
  }

 private:
  // A task of the set, and the waker the runtime calls when it finishes.
  struct entry : detail::waker_proxy {
    entry(shared* s, join_handle<T> h) noexcept
        : detail::waker_proxy(&k_ops), owner(s), handle(std::move(h)) {}
    shared* owner;
    join_handle<T> handle;
    entry* prev = nullptr;
    entry* next = nullptr;
    bool detached = false;  // guarded by owner->mu
  };

  struct list {
    entry* head = nullptr;
    entry* tail = nullptr;
    void push_back(entry* e) {
      e->prev = tail;
      e->next = nullptr;
      (tail ? tail->next : head) = e;
      tail = e;
    }
    void remove(entry* e) {
      (e->prev ? e->prev->next : head) = e->next;
      (e->next ? e->next->prev : tail) = e->prev;
      e->prev = e->next = nullptr;
    }
    entry* pop_front() {
      entry* e = head;
      if (e != nullptr) remove(e);
      return e;
    }
  };

  struct shared {
    detail::spin_lock mu;
    list running ABSL_GUARDED_BY(mu);
    list done ABSL_GUARDED_BY(mu);
    std::size_t count ABSL_GUARDED_BY(mu) = 0;
    detail::task_header* waiter ABSL_GUARDED_BY(mu) = nullptr;  // join_next's task
    std::atomic<int> refs{1};                                   // the set, and each entry alive

    bool has_result_or_is_empty() {
      detail::spin_guard lock(mu);
      return done.head != nullptr || running.head == nullptr;
    }
    std::optional<result_type> take_one() {
      entry* e = nullptr;
      {
        detail::spin_guard lock(mu);
        e = done.pop_front();
        if (e == nullptr) return std::nullopt;
        --count;
        e->detached = true;
      }
      std::optional<result_type> r(join_handle<T>::take_result(e->handle.t_));
      e->release();  // the set's reference
      return r;
    }
    void release() {
      if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
    }
  };

  rt::abort_handle add(join_handle<T> h) {
    rt::abort_handle stop = h.abort_handle();
    s_->refs.fetch_add(1, std::memory_order_relaxed);
    auto* e = new entry(s_, std::move(h));
    {
      detail::spin_guard lock(s_->mu);
      s_->running.push_back(e);
      ++s_->count;
    }
    // The runtime holds a reference to `e` from here until it has woken it.
    if (!detail::register_join_waiter(e->handle.t_, e)) on_finished(e);
    return stop;
  }

  // The task of `e` finished: move it to the done list and wake join_next.
  static void on_finished(entry* e) noexcept {
    shared* s = e->owner;
    detail::task_header* wake_me = nullptr;
    {
      detail::spin_guard lock(s->mu);
      if (e->detached) return;
      s->running.remove(e);
      s->done.push_back(e);
      wake_me = std::exchange(s->waiter, nullptr);
    }
    if (wake_me != nullptr) {
      detail::wake(wake_me);
      wake_me->release();
    }
  }
  static void on_wake(detail::waker_proxy* p) noexcept { on_finished(static_cast<entry*>(p)); }
  static void on_last_release(detail::waker_proxy* p) noexcept {
    auto* e = static_cast<entry*>(p);
    shared* s = e->owner;
    delete e;
    s->release();
  }
  static constexpr detail::waker_proxy::ops k_ops{&on_wake, &on_last_release};

  shared* s_;
};

}  // namespace shoal::rt
