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
#pragma once

#include <atomic>
#include <coroutine>
#include <optional>
#include <utility>

#include "runtime/expected.h"
#include "runtime/internal/task_header.h"

namespace shoal::rt::oneshot {

enum class recv_error { closed };

namespace detail {
using rt::detail::task_header;

enum : uint32_t {
  k_value = 1,       // the value is stored
  k_tx_closed = 2,   // the sender is gone (after sending, or without)
  k_rx_closed = 4,   // the receiver is gone
  k_rx_waiting = 8,  // rx_task is registered; whoever clears this bit owns its reference
};

template <class T>
struct shared {
  std::atomic<uint32_t> state{0};
  std::atomic<int> refs{2};
  task_header* rx_task = nullptr;
  std::optional<T> value;

  void release() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  // Sets `bits`; wakes a registered receiver.
  uint32_t set_and_wake(uint32_t bits) {
    uint32_t prev = state.fetch_or(bits, std::memory_order_acq_rel);
    if (prev & k_rx_waiting) {
      uint32_t s = state.fetch_and(~k_rx_waiting, std::memory_order_acq_rel);
      if (s & k_rx_waiting) {
        task_header* t = rx_task;
        rt::detail::wake(t);
        t->release();
      }
    }
    return prev;
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
    if (!s_) return;
    s_->set_and_wake(detail::k_tx_closed);
    s_->release();
  }

  // Stores the value and wakes the receiver. False (value dropped) if the receiver is gone.
  bool send(T v) {
    auto* s = std::exchange(s_, nullptr);
    bool ok = !(s->state.load(std::memory_order_acquire) & detail::k_rx_closed);
    if (ok) {
      s->value.emplace(std::move(v));
      uint32_t prev = s->set_and_wake(detail::k_value | detail::k_tx_closed);
      ok = !(prev & detail::k_rx_closed);
    } else {
      s->set_and_wake(detail::k_tx_closed);
    }
    s->release();
    return ok;
  }
  bool is_closed() const noexcept {
    return s_->state.load(std::memory_order_acquire) & detail::k_rx_closed;
  }

 private:
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
    uint32_t prev = s_->state.fetch_or(detail::k_rx_closed, std::memory_order_acq_rel);
    if ((prev & detail::k_rx_waiting) &&
        (s_->state.fetch_and(~detail::k_rx_waiting) & detail::k_rx_waiting)) {
      s_->rx_task->release();
    }
    s_->release();
  }

  bool await_ready() const noexcept {
    return s_->state.load(std::memory_order_acquire) & detail::k_tx_closed;
  }
  bool await_suspend(std::coroutine_handle<> h) noexcept {
    rt::detail::task_header* t = rt::detail::suspend_current(h);
    t->add_ref();
    s_->rx_task = t;
    uint32_t s = s_->state.load(std::memory_order_acquire);
    do {
      if (s & detail::k_tx_closed) {
        t->release();
        return false;
      }
    } while (!s_->state.compare_exchange_weak(s, s | detail::k_rx_waiting,
                                              std::memory_order_acq_rel,
                                              std::memory_order_acquire));
    waiting_ = true;
    return true;
  }
  expected<T, recv_error> await_resume() {
    waiting_ = false;
    if (s_->state.load(std::memory_order_acquire) & detail::k_value) {
      return std::move(*s_->value);
    }
    return unexpected(recv_error::closed);
  }

  // Non-blocking: the value if it has arrived.
  std::optional<T> try_recv() {
    if (s_->state.load(std::memory_order_acquire) & detail::k_value) return std::move(*s_->value);
    return std::nullopt;
  }

 private:
  template <class U>
  friend std::pair<sender<U>, receiver<U>> channel();
  explicit receiver(detail::shared<T>* s) : s_(s) {}
  detail::shared<T>* s_;
  bool waiting_ = false;  // a suspension is registered (only read by the destructor)
};

template <class T>
std::pair<sender<T>, receiver<T>> channel() {
  auto* s = new detail::shared<T>();
  return {sender<T>(s), receiver<T>(s)};
}

}  // namespace shoal::rt::oneshot
