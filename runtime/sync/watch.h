// watch: one producer publishes the latest value; many receivers see the newest one. Shoal's
// tokio::sync::watch. No history is kept: a receiver may skip intermediate values.
//
//   auto [tx, rx] = rt::watch::channel<config>(initial);
//   tx.send(next);                                      // false if every receiver is gone
//   for (;;) {
//     bool changed = co_await rx.changed();   // not in a loop condition: see task.h (g++ 12)
//     if (!changed) break;
//     config c = *rx.borrow_and_update();
//   }
//
// changed() completes when a value newer than the last one this receiver marked seen exists, and
// fails once the sender is gone (after the last value has been seen). borrow() holds a read lock:
// keep it short, never across co_await.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <utility>

#include "runtime/internal/coop.h"
#include "runtime/internal/spin_lock.h"
#include "runtime/internal/task_header.h"
#include "runtime/internal/waiter_list.h"
#include "runtime/internal/wake_list.h"
#include "runtime/sync/notify.h"

namespace shoal::rt::watch {

namespace detail {
template <class T>
struct shared {
  explicit shared(T v) : value(std::move(v)) {}
  rt::detail::rw_spin_lock mu;
  T value ABSL_GUARDED_BY(mu);
  std::atomic<uint64_t> version{0};
  std::atomic<bool> closed{false};
  std::atomic<std::size_t> receivers{1};
  std::atomic<int> refs{2};
  rt::notify rx_gone;  // last receiver dropped

  // Receivers waiting in changed(). A waiter registers (under waiters_mu) only after seeing
  // version == its seen version; send() bumps the version, then wakes under waiters_mu exactly the
  // waiters whose seen version is now stale. A bump that a receiver already saw before registering
  // therefore does not wake it: a task is resumed only when changed() can complete.
  struct waiter : rt::detail::waiter_link {
    rt::detail::task_header* task = nullptr;
    uint64_t seen = 0;
  };
  rt::detail::spin_lock waiters_mu;
  rt::detail::waiter_list<waiter> waiters ABSL_GUARDED_BY(waiters_mu);

  void wake_all() {
    rt::detail::wake_list wakes;
    rt::detail::spin_guard lock(waiters_mu);
    const uint64_t v = version.load(std::memory_order_acquire);
    const bool is_closed = closed.load(std::memory_order_acquire);
    rt::detail::waiter_list<waiter> keep;
    while (waiter* w = waiters.pop_front()) {
      if (is_closed || w->seen != v) {
        wakes.push(w->task);
      } else {
        keep.push_back(w);
      }
    }
    while (waiter* w = keep.pop_front()) waiters.push_back(w);
  }
  void release() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
};
}  // namespace detail

// A read view of the current value; holds the channel's read lock.
template <class T>
class ref {
 public:
  const T& operator*() const ABSL_NO_THREAD_SAFETY_ANALYSIS { return s_->value; }
  const T* operator->() const ABSL_NO_THREAD_SAFETY_ANALYSIS { return &s_->value; }
  // True if this value had not been marked seen by the receiver that borrowed it.
  bool has_changed() const { return changed_; }

 private:
  template <class>
  friend class receiver;
  template <class>
  friend class sender;
  ref(detail::shared<T>* s, bool changed) : s_(s), lock_(s->mu), changed_(changed) {}
  detail::shared<T>* s_;
  rt::detail::read_guard lock_;
  bool changed_;
};

template <class T>
class receiver;

template <class T>
class sender {
 public:
  sender(sender&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  sender(const sender&) = delete;
  ~sender() {
    if (!s_) return;
    s_->closed.store(true, std::memory_order_release);
    s_->wake_all();
    s_->release();
  }

  // Replaces the value and notifies receivers. False (value not stored) if no receiver is left.
  bool send(T v) {
    if (s_->receivers.load(std::memory_order_acquire) == 0) return false;
    send_replace(std::move(v));
    return true;
  }
  // Replaces the value whether or not anyone listens; returns the previous one.
  T send_replace(T v) {
    {
      rt::detail::write_guard lock(s_->mu);
      std::swap(s_->value, v);
      s_->version.fetch_add(1, std::memory_order_release);
    }
    s_->wake_all();
    return v;
  }
  // Modifies the value in place, then notifies.
  template <class F>
  void send_modify(F&& modify) {
    {
      rt::detail::write_guard lock(s_->mu);
      modify(s_->value);
      s_->version.fetch_add(1, std::memory_order_release);
    }
    s_->wake_all();
  }
  ref<T> borrow() const { return ref<T>(s_, false); }
  receiver<T> subscribe() const { return receiver<T>(s_); }
  std::size_t receiver_count() const { return s_->receivers.load(std::memory_order_acquire); }
  bool is_closed() const { return receiver_count() == 0; }

  // Completes once every receiver is gone.
  class closed_awaiter {
   public:
    bool await_ready() { return gone() || n_.await_ready(); }
    bool await_suspend(std::coroutine_handle<> h) { return !gone() && n_.await_suspend(h); }
    void await_resume() { n_.await_resume(); }

   private:
    friend class sender;
    explicit closed_awaiter(detail::shared<T>* s) : s_(s), n_(s->rx_gone.notified()) {}
    bool gone() const { return s_->receivers.load(std::memory_order_acquire) == 0; }
    detail::shared<T>* s_;
    rt::detail::coop::budgeted<notify::notified_awaiter> n_;
  };
  closed_awaiter closed() { return closed_awaiter(s_); }

 private:
  template <class U>
  friend std::pair<sender<U>, receiver<U>> channel(U);
  explicit sender(detail::shared<T>* s) : s_(s) {}
  detail::shared<T>* s_;
};

template <class T>
class receiver {
 public:
  receiver(const receiver& o) : s_(o.s_), seen_(o.seen_) {
    s_->receivers.fetch_add(1, std::memory_order_relaxed);
    s_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  receiver(receiver&& o) noexcept : s_(std::exchange(o.s_, nullptr)), seen_(o.seen_) {}
  ~receiver() {
    if (!s_) return;
    if (s_->receivers.fetch_sub(1, std::memory_order_acq_rel) == 1) s_->rx_gone.notify_waiters();
    s_->release();
  }

  ref<T> borrow() const { return ref<T>(s_, version() != seen_); }
  ref<T> borrow_and_update() {
    ref<T> r(s_, false);
    // Under the read lock, version and value agree.
    uint64_t v = version();
    r.changed_ = v != seen_;
    seen_ = v;
    return r;
  }
  bool has_changed() const { return version() != seen_; }
  void mark_changed() { seen_ = ~uint64_t{0}; }

  // `co_await` yields true when a value newer than the last seen one exists (and marks it seen);
  // false once the sender is gone and nothing new remains.
  class changed_awaiter {
   public:
    bool await_ready() { return ready(); }
    bool await_suspend(std::coroutine_handle<> h) {
      rt::detail::spin_guard lock(r_->s_->waiters_mu);
      if (ready()) return false;
      w_.task = rt::detail::suspend_current(h);
      w_.seen = r_->seen_;
      r_->s_->waiters.push_back(&w_);
      return true;
    }
    bool await_resume() {
      resumed_ = true;
      uint64_t v = r_->version();
      if (v != r_->seen_) {
        r_->seen_ = v;
        return true;
      }
      return false;  // the sender is gone
    }
    changed_awaiter(changed_awaiter&& o) noexcept : r_(o.r_) {}
    ~changed_awaiter() {
      if (w_.task == nullptr || resumed_) return;
      rt::detail::spin_guard lock(r_->s_->waiters_mu);  // cancelled while waiting
      if (w_.linked) r_->s_->waiters.remove(&w_);
    }

   private:
    friend class receiver;
    explicit changed_awaiter(receiver* r) : r_(r) {}
    bool ready() const {
      return r_->version() != r_->seen_ || r_->s_->closed.load(std::memory_order_acquire);
    }
    receiver* r_;
    typename detail::shared<T>::waiter w_;
    bool resumed_ = false;
  };
  rt::detail::coop::budgeted<changed_awaiter> changed() {
    return rt::detail::coop::budgeted<changed_awaiter>(changed_awaiter(this));
  }

 private:
  friend class sender<T>;
  template <class U>
  friend std::pair<sender<U>, receiver<U>> channel(U);
  explicit receiver(detail::shared<T>* s) : s_(s), seen_(version_of(s)) {
    s_->receivers.fetch_add(1, std::memory_order_relaxed);
    s_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  struct first_tag {};
  receiver(detail::shared<T>* s, first_tag) : s_(s), seen_(0) {}
  static uint64_t version_of(detail::shared<T>* s) {
    return s->version.load(std::memory_order_acquire);
  }
  uint64_t version() const { return s_->version.load(std::memory_order_acquire); }
  detail::shared<T>* s_;
  uint64_t seen_;
};

template <class T>
std::pair<sender<T>, receiver<T>> channel(T initial) {
  auto* s = new detail::shared<T>(std::move(initial));
  return {sender<T>(s), receiver<T>(s, typename receiver<T>::first_tag{})};
}

}  // namespace shoal::rt::watch
