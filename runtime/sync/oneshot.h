// oneshot: a channel for exactly one value. Shoal's tokio::sync::oneshot.
//
// The reply path of the "manager task" pattern: a request carries a oneshot::sender, the manager
// answers through it, the requester awaits the receiver.
//
//   auto [reply_tx, reply_rx] = rt::oneshot::channel<int>();
//   co_await requests.send({key, std::move(reply_tx)});
//   rt::expected<int, rt::oneshot::recv_error> v = co_await std::move(reply_rx);
//
// send() fails (returns false) if the receiver is gone; awaiting the receiver fails with
// recv_error::closed if the sender was dropped without sending. One allocation per channel.
//
// channel<void>() carries no value, only "done": `tx.send()`, and the receiver yields
// expected<void, recv_error> (a completion signal that also says whether the sender gave up).
//
// Cancel safety: a cancelled await of the receiver takes nothing; awaiting it again (or try_recv)
// still gets the value.
#pragma once

#include <atomic>
#include <coroutine>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include "runtime/expected.h"
#include "runtime/internal/coop.h"
#include "runtime/internal/task_header.h"

namespace shoal::rt::oneshot {

enum class recv_error { closed };

namespace detail {
using rt::detail::task_header;

// One atomic word holds the whole protocol, so that each side usually pays one read-modify-write:
//  - a waiting receiver's task reference belongs to the sender once the sender has closed while
//    k_rx_waiting was set (it wakes the receiver); before that, the receiver may take it back;
//  - the shared state is freed by whichever end finishes second. A sender that closes with no
//    receiver parked is finished at once; one that must wake a parked receiver still reads
//    rx_task, and marks k_tx_released when done.
enum : uint32_t {
  k_value = 1,         // the value is stored
  k_tx_closed = 2,     // the sender closed (after sending, or without)
  k_rx_closed = 4,     // the receiver is gone
  k_rx_waiting = 8,    // rx_task is registered
  k_tx_released = 16,  // the sender finished waking the parked receiver
};

template <class T>
using stored_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

template <class T>
struct shared {
  std::atomic<uint32_t> state{0};
  task_header* rx_task = nullptr;
  std::optional<stored_t<T>> value;

  // The sender closes (with or without a value). Frees the state if the receiver is gone.
  void close_tx(uint32_t bits) {
    uint32_t prev = state.fetch_or(bits | k_tx_closed, std::memory_order_acq_rel);
    if (!(prev & k_rx_waiting)) {
      if (prev & k_rx_closed) delete this;
      return;
    }
    task_header* t = rx_task;
    rt::detail::wake(t);
    t->release();
    prev = state.fetch_or(k_tx_released, std::memory_order_acq_rel);
    if (prev & k_rx_closed) delete this;
  }
};
}  // namespace detail

template <class T>
class receiver;

template <class T>
class sender {
 public:
  sender(sender&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  sender& operator=(sender&& o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  sender(const sender&) = delete;
  ~sender() {
    if (s_) s_->close_tx(0);
  }

  // Stores the value and wakes the receiver. False (value dropped) if the receiver is gone.
  template <class U = T>
  requires(!std::is_void_v<U>) bool send(U v) { return deliver(std::move(v)); }
  // channel<void>: signals completion.
  bool send() requires std::is_void_v<T> { return deliver(std::monostate{}); }
  bool is_closed() const noexcept {
    return s_->state.load(std::memory_order_acquire) & detail::k_rx_closed;
  }

 private:
  bool deliver(detail::stored_t<T> v) {
    auto* s = std::exchange(s_, nullptr);
    if (s->state.load(std::memory_order_acquire) & detail::k_rx_closed) {
      s->close_tx(0);
      return false;
    }
    s->value.emplace(std::move(v));
    s->close_tx(detail::k_value);  // if the receiver left meanwhile, the value goes with the state
    return true;
  }

  template <class U>
  friend std::pair<sender<U>, receiver<U>> channel();
  explicit sender(detail::shared<T>* s) : s_(s) {}
  detail::shared<T>* s_;
};

template <class T>
class receiver {
 public:
  receiver(receiver&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  receiver(const receiver&) = delete;
  ~receiver() {
    if (!s_) return;
    // Read before closing: once k_rx_closed is published the sender may free the state.
    rt::detail::task_header* const registered = s_->rx_task;
    uint32_t s = s_->state.load(std::memory_order_acquire);
    for (;;) {
      // Still registered (cancelled while waiting) and the sender has not taken over: take our
      // task's reference back. Otherwise the sender wakes us (harmlessly) and drops it.
      const bool take_back = (s & detail::k_rx_waiting) && !(s & detail::k_tx_closed);
      const uint32_t ns = (s | detail::k_rx_closed) & ~(take_back ? detail::k_rx_waiting : 0u);
      if (s_->state.compare_exchange_weak(s, ns, std::memory_order_acq_rel,
                                          std::memory_order_acquire)) {
        if (take_back) registered->release();
        break;
      }
    }
    // Free the state if the sender is finished with it; otherwise it frees it when it is.
    if ((s & detail::k_tx_closed) && (!(s & detail::k_rx_waiting) || (s & detail::k_tx_released))) {
      delete s_;
    }
  }

  // `co_await std::move(rx)` yields the value, or recv_error::closed if the sender went away
  // without sending. The receiver must outlive the await (it does when it is awaited in place).
  class recv_awaiter {
   public:
    bool await_ready() const noexcept {
      return r_->s_->state.load(std::memory_order_acquire) & detail::k_tx_closed;
    }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      detail::shared<T>* s = r_->s_;
      rt::detail::task_header* t = rt::detail::suspend_current(h);
      t->add_ref();
      s->rx_task = t;
      uint32_t st = s->state.load(std::memory_order_acquire);
      do {
        if (st & detail::k_tx_closed) {
          t->release();
          return false;
        }
      } while (!s->state.compare_exchange_weak(
          st, st | detail::k_rx_waiting, std::memory_order_acq_rel, std::memory_order_acquire));
      parked_ = true;
      return true;
    }
    recv_awaiter(recv_awaiter&& o) noexcept : r_(o.r_) {}
    // Destroyed while parked (cancelled, or a select took another branch) with the receiver still
    // alive: take the registration back unless the sender already owns it (it then wakes the
    // registered task, harmlessly, and drops its reference).
    ~recv_awaiter() {
      if (!parked_) return;
      detail::shared<T>* s = r_->s_;
      uint32_t st = s->state.load(std::memory_order_acquire);
      while ((st & detail::k_rx_waiting) && !(st & detail::k_tx_closed)) {
        if (s->state.compare_exchange_weak(st, st & ~detail::k_rx_waiting,
                                           std::memory_order_acq_rel, std::memory_order_acquire)) {
          s->rx_task->release();
          return;
        }
      }
    }
    expected<T, recv_error> await_resume() {
      parked_ = false;
      if (r_->s_->state.load(std::memory_order_acquire) & detail::k_value) {
        if constexpr (std::is_void_v<T>) {
          return {};
        } else {
          return std::move(*r_->s_->value);
        }
      }
      return unexpected(recv_error::closed);
    }

   private:
    friend class receiver;
    explicit recv_awaiter(receiver* r) noexcept : r_(r) {}
    receiver* r_;
    bool parked_ = false;
  };
  rt::detail::coop::budgeted<recv_awaiter> operator co_await() && noexcept {
    return rt::detail::coop::budgeted<recv_awaiter>(recv_awaiter(this));
  }

  // Non-blocking: the value if it has arrived (channel<void>: std::monostate).
  std::optional<detail::stored_t<T>> try_recv() {
    if (s_->state.load(std::memory_order_acquire) & detail::k_value) return std::move(*s_->value);
    return std::nullopt;
  }

 private:
  template <class U>
  friend std::pair<sender<U>, receiver<U>> channel();
  explicit receiver(detail::shared<T>* s) : s_(s) {}
  detail::shared<T>* s_;
};

template <class T>
std::pair<sender<T>, receiver<T>> channel() {
  auto* s = new detail::shared<T>();
  return {sender<T>(s), receiver<T>(s)};
}

}  // namespace shoal::rt::oneshot
