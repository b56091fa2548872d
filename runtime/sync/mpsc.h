// mpsc: multi-producer, single-consumer channels. Shoal's tokio::sync::mpsc.
//
// channel<T>(capacity) is bounded: send() waits while the channel is full, try_send() reports full
// or closed at once. recv() yields std::nullopt once every sender is gone and the buffer is
// drained. unbounded_channel<T>() never waits to send; prefer the bounded one (Shoal's rule: every
// queue has an explicit bound).
//
//   auto [tx, rx] = rt::mpsc::channel<request>(1024);
//   co_await tx.send(req);                          // false once the receiver is gone
//   while (std::optional<request> r = co_await rx.recv()) handle(*r);
//
// Cancel safety: a task cancelled in recv() loses no message (a message is only taken when the
// receiving task runs); a task cancelled in send() either has sent its message or drops it, never
// both, and leaves no waiter behind.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <new>
#include <optional>
#include <utility>

#include "runtime/internal/coop.h"
#include "runtime/internal/spin_lock.h"
#include "runtime/internal/task_header.h"
#include "runtime/internal/waiter_list.h"
#include "runtime/internal/wake_list.h"

namespace shoal::rt::mpsc {

enum class try_send_error { full, closed };
enum class try_recv_error { empty, disconnected };

namespace detail {
using rt::detail::task_header;

// The receiving task parks through `rx_waiting`: it stores its task, sets the flag, then looks at
// the buffer again; a producer publishes its message, then takes the flag. Both sides use seq_cst
// for the flag and for the slot stamps, so at least one of them sees the other (a Dekker pair): the
// receiver finds the message, or a producer finds the flag. Whoever clears the flag owns the
// reference the receiver took on its task.
//
// A producer that takes the flag wakes the receiver only if a message is at the head (or the
// channel closed): its own message may already have been received before the receiver parked.
// Otherwise it hands the flag back and looks once more (the same Dekker pair, the other way), so a
// parked receiver is never resumed with nothing to receive, and never left parked with something.
//
// A producer holds `waking` from taking the flag until it has woken the receiver or handed the
// flag back. A receive abandoned while parked (its task cancelled, or a select took another
// branch) waits out a producer in that window before it takes its registration back: otherwise a
// handed-back flag would outlive the receive, and the next one would overwrite its reference.
class rx_parking {
 public:
  // Receiver: registers `self` and returns how many senders were blocked at that instant (one
  // read-modify-write does both: the Dekker half for the receiver, and the check that lets blocked
  // senders in before it sleeps). No registration is left from an earlier receive (see withdraw).
  uint64_t prepare(task_header* self) noexcept {
    self->add_ref();
    task_ = self;
    return word_.fetch_or(k_rx_waiting, std::memory_order_seq_cst) / k_one_sender;
  }
  // Receiver, when its re-check found something: true if it took the flag back (do not suspend),
  // false if a producer took it (suspend: that producer wakes it, since something is there).
  bool cancel() noexcept {
    if (!(word_.fetch_and(~k_rx_waiting, std::memory_order_seq_cst) & k_rx_waiting)) return false;
    task_->release();
    return true;
  }
  // Receiver, for a receive abandoned while parked: takes its registration back, or lets the
  // producer that took it finish (it wakes the abandoned task or its select branch, harmlessly).
  void withdraw() noexcept {
    for (int spins = 0;;) {
      uint64_t w = word_.load(std::memory_order_seq_cst);
      if (w & k_waking) {
        rt::detail::spin_backoff(spins);
        continue;
      }
      if (!(w & k_rx_waiting)) return;  // a producer took it and woke us
      if (word_.compare_exchange_weak(w, w & ~k_rx_waiting, std::memory_order_seq_cst)) {
        task_->release();
        return;
      }
    }
  }
  // Producer, after publishing. `can_complete` says whether a parked receiver would find work.
  template <class Pred>
  void wake_if_waiting(Pred can_complete) noexcept {
    uint64_t w = word_.load(std::memory_order_seq_cst);
    for (;;) {
      // Take the flag, marking the decision as under way.
      do {
        if (!(w & k_rx_waiting)) return;
      } while (!word_.compare_exchange_weak(w, (w & ~k_rx_waiting) | k_waking,
                                            std::memory_order_seq_cst));
      if (can_complete()) {
        task_header* t = task_;
        rt::detail::wake(t);
        t->release();
        word_.fetch_and(~k_waking, std::memory_order_seq_cst);
        return;
      }
      // Hand the flag back: waking -> rx_waiting in one step (bit 1 set, bit 0 clear: minus one).
      w = word_.fetch_sub(k_waking - k_rx_waiting, std::memory_order_seq_cst) -
          (k_waking - k_rx_waiting);
      if (!can_complete()) return;
    }
  }

  // Blocked senders, counted in the same word.
  void add_blocked_sender() noexcept { word_.fetch_add(k_one_sender, std::memory_order_seq_cst); }
  void remove_blocked_sender() noexcept {
    word_.fetch_sub(k_one_sender, std::memory_order_relaxed);
  }
  uint64_t blocked_senders_relaxed() const noexcept {
    return word_.load(std::memory_order_relaxed) / k_one_sender;
  }
  uint64_t blocked_senders_certain() noexcept {
    return word_.fetch_add(0, std::memory_order_seq_cst) / k_one_sender;
  }

 private:
  static constexpr uint64_t k_rx_waiting = 1;
  static constexpr uint64_t k_waking = 2;
  static constexpr uint64_t k_one_sender = 4;
  std::atomic<uint64_t> word_{0};
  task_header* task_ = nullptr;
};

template <class T>
class send_waiter;

// Bounded ring with exact capacity. Positions encode (lap, index): index in the low bits, lap in
// multiples of one_lap (the next power of two above capacity), so no division is needed. A slot's
// stamp equals the position that may write it next, or that position + 1 once it holds a value.
template <class T>
class bounded_chan {
 public:
  explicit bounded_chan(std::size_t capacity) : cap_(capacity), one_lap_(lap_for(capacity)) {
    slots_ = std::make_unique<slot[]>(cap_);
    for (std::size_t i = 0; i < cap_; ++i) slots_[i].stamp.store(i, std::memory_order_relaxed);
  }
  ~bounded_chan() {
    std::optional<T> v;
    while (try_pop(v, std::memory_order_acquire)) v.reset();
  }

  // Any thread. Moves from `v` only on success.
  bool try_push(T& v) noexcept(std::is_nothrow_move_constructible_v<T>) {
    uint64_t tail = tail_.load(std::memory_order_relaxed);
    for (;;) {
      const uint64_t index = tail & (one_lap_ - 1);
      const uint64_t lap = tail & ~(one_lap_ - 1);
      const uint64_t next = index + 1 < cap_ ? tail + 1 : lap + one_lap_;
      slot& s = slots_[index];
      const uint64_t stamp = s.stamp.load(std::memory_order_acquire);
      if (stamp == tail) {
        if (tail_.compare_exchange_weak(tail, next, std::memory_order_seq_cst,
                                        std::memory_order_relaxed)) {
          new (s.storage) T(std::move(v));
          s.stamp.store(tail + 1, std::memory_order_seq_cst);  // Dekker with rx_parking
          rx_.wake_if_waiting([this] { return receiver_can_complete(); });
          return true;
        }
      } else if (stamp + one_lap_ == tail + 1) {
        // The slot still holds last lap's message: full, unless the receiver has just moved on.
        if (head_.load(std::memory_order_seq_cst) + one_lap_ == tail) return false;
        tail = tail_.load(std::memory_order_relaxed);
      } else {
        tail = tail_.load(std::memory_order_relaxed);  // another producer took this position
      }
    }
  }

  // Receiver only.
  bool try_pop(std::optional<T>& out, std::memory_order order) {
    const uint64_t head = head_.load(std::memory_order_relaxed);
    const uint64_t index = head & (one_lap_ - 1);
    slot& s = slots_[index];
    if (s.stamp.load(order) != head + 1) return false;
    T* p = std::launder(reinterpret_cast<T*>(s.storage));
    out.emplace(std::move(*p));
    p->~T();
    const uint64_t lap = head & ~(one_lap_ - 1);
    s.stamp.store(head + one_lap_, std::memory_order_release);
    head_.store(index + 1 < cap_ ? head + 1 : lap + one_lap_, std::memory_order_release);
    return true;
  }

  // Is a published message waiting at the head? (Any thread; exact for the receiver.)
  bool ready(std::memory_order order) const noexcept {
    const uint64_t head = head_.load(std::memory_order_seq_cst);
    return slots_[head & (one_lap_ - 1)].stamp.load(order) == head + 1;
  }
  bool receiver_can_complete() const noexcept {
    return ready(std::memory_order_seq_cst) || closed_.load(std::memory_order_seq_cst);
  }

  // Receiver, after taking a message: let blocked senders in. A relaxed look at the counter catches
  // them almost always; every 64 messages (and before parking) a seq_cst read-modify-write makes it
  // certain, so a blocked sender waits at most 64 messages or until the buffer drains.
  void after_pop() {
    if (++pops_since_check_ >= 64) {
      pops_since_check_ = 0;
      if (rx_.blocked_senders_certain() == 0) return;
    } else if (rx_.blocked_senders_relaxed() == 0) {
      return;
    }
    serve_blocked_senders();
  }
  void serve_blocked_senders();

  // Sender slow path: registers `w` unless the message fits after all. True if it must wait.
  bool block_sender(send_waiter<T>* w);
  void unblock_cancelled_sender(send_waiter<T>* w);

  void close_rx();   // the receiver closed or went away: fail every blocked sender
  void close_tx() {  // the last sender went away
    closed_.store(true, std::memory_order_seq_cst);
    rx_.wake_if_waiting([this] { return receiver_can_complete(); });
  }
  bool tx_closed() const noexcept { return closed_.load(std::memory_order_seq_cst); }
  bool rx_closed() const noexcept { return rx_closed_.load(std::memory_order_acquire); }

  rx_parking& parking() noexcept { return rx_; }
  std::size_t capacity() const noexcept { return cap_; }

  std::atomic<std::size_t> senders{1};
  std::atomic<int> refs{2};
  void release() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

 private:
  struct slot {
    std::atomic<uint64_t> stamp;
    alignas(T) unsigned char storage[sizeof(T)];
  };
  static uint64_t lap_for(std::size_t cap) {
    uint64_t l = 1;
    while (l <= cap) l <<= 1;
    return l;
  }

  const uint64_t cap_;
  const uint64_t one_lap_;
  std::unique_ptr<slot[]> slots_;
  alignas(64) std::atomic<uint64_t> head_{0};
  uint32_t pops_since_check_ = 0;
  alignas(64) std::atomic<uint64_t> tail_{0};
  alignas(64) rx_parking rx_;
  std::atomic<bool> closed_{false};
  std::atomic<bool> rx_closed_{false};
  rt::detail::spin_lock mu_;
  rt::detail::waiter_list<send_waiter<T>> blocked_ ABSL_GUARDED_BY(mu_);
};

// A sender waiting for room. The receiver pushes the message on its behalf when room appears, so
// a woken sender never has to compete again.
template <class T>
class send_waiter : public rt::detail::waiter_link {
 public:
  enum class outcome { pending, sent, closed };
  std::optional<T> value;
  task_header* task = nullptr;
  outcome result = outcome::pending;  // guarded by the channel's mutex while linked
};

template <class T>
void bounded_chan<T>::serve_blocked_senders() {
  rt::detail::wake_list wakes;
  rt::detail::spin_guard lock(mu_);
  while (send_waiter<T>* w = blocked_.front()) {
    if (!try_push(*w->value)) break;
    blocked_.pop_front();
    rx_.remove_blocked_sender();
    w->result = send_waiter<T>::outcome::sent;
    wakes.push(w->task);
  }
}

template <class T>
bool bounded_chan<T>::block_sender(send_waiter<T>* w) {
  rt::detail::spin_guard lock(mu_);
  rx_.add_blocked_sender();
  // FIFO among blocked senders: only the first in line may take room that appears now.
  if (blocked_.empty() && !rx_closed() && try_push(*w->value)) {
    rx_.remove_blocked_sender();
    w->result = send_waiter<T>::outcome::sent;
    return false;
  }
  if (rx_closed()) {
    rx_.remove_blocked_sender();
    w->result = send_waiter<T>::outcome::closed;
    return false;
  }
  blocked_.push_back(w);
  return true;
}

template <class T>
void bounded_chan<T>::unblock_cancelled_sender(send_waiter<T>* w) {
  rt::detail::spin_guard lock(mu_);
  if (!w->linked) return;  // already sent (or failed) on our behalf
  blocked_.remove(w);
  rx_.remove_blocked_sender();
}

template <class T>
void bounded_chan<T>::close_rx() {
  rx_closed_.store(true, std::memory_order_seq_cst);
  rt::detail::wake_list wakes;
  rt::detail::spin_guard lock(mu_);
  while (send_waiter<T>* w = blocked_.pop_front()) {
    rx_.remove_blocked_sender();
    w->result = send_waiter<T>::outcome::closed;
    wakes.push(w->task);
  }
}

}  // namespace detail

template <class T>
class receiver;

template <class T>
class sender {
 public:
  sender(const sender& o) noexcept : ch_(o.ch_) {
    if (ch_) {
      ch_->senders.fetch_add(1, std::memory_order_relaxed);
      ch_->refs.fetch_add(1, std::memory_order_relaxed);
    }
  }
  sender(sender&& o) noexcept : ch_(std::exchange(o.ch_, nullptr)) {}
  sender& operator=(sender o) noexcept {
    std::swap(ch_, o.ch_);
    return *this;
  }
  ~sender() {
    if (!ch_) return;
    if (ch_->senders.fetch_sub(1, std::memory_order_acq_rel) == 1) ch_->close_tx();
    ch_->release();
  }

  class send_awaiter {
   public:
    bool await_ready() {
      if (ch_->rx_closed()) {
        w_.result = waiter::outcome::closed;
        return true;
      }
      if (ch_->try_push(*w_.value)) {
        w_.result = waiter::outcome::sent;
        return true;
      }
      return false;
    }
    bool await_suspend(std::coroutine_handle<> h) {
      w_.task = rt::detail::suspend_current(h);
      return ch_->block_sender(&w_);
    }
    // True if the message was sent; false if the receiver is gone (the message is dropped).
    bool await_resume() noexcept {
      resumed_ = true;
      return w_.result == waiter::outcome::sent;
    }
    send_awaiter(send_awaiter&& o) noexcept : ch_(o.ch_) { w_.value = std::move(o.w_.value); }
    ~send_awaiter() {
      if (w_.task != nullptr && !resumed_) ch_->unblock_cancelled_sender(&w_);
    }

   private:
    friend class sender;
    using waiter = detail::send_waiter<T>;
    send_awaiter(detail::bounded_chan<T>* ch, T v) : ch_(ch) { w_.value.emplace(std::move(v)); }
    detail::bounded_chan<T>* ch_;
    waiter w_;
    bool resumed_ = false;
  };

  // Waits for room; `co_await` yields true once sent, false if the receiver is gone.
  rt::detail::coop::budgeted<send_awaiter> send(T value) {
    return rt::detail::coop::budgeted<send_awaiter>(send_awaiter(ch_, std::move(value)));
  }

  // Never waits. On failure the value is dropped (keep a copy if you need to retry).
  std::optional<try_send_error> try_send(T value) {
    if (ch_->rx_closed()) return try_send_error::closed;
    if (ch_->try_push(value)) return std::nullopt;
    return ch_->rx_closed() ? try_send_error::closed : try_send_error::full;
  }

  bool is_closed() const noexcept { return ch_->rx_closed(); }
  std::size_t capacity() const noexcept { return ch_->capacity(); }

 private:
  template <class U>
  friend std::pair<sender<U>, receiver<U>> channel(std::size_t);
  explicit sender(detail::bounded_chan<T>* ch) noexcept : ch_(ch) {}
  detail::bounded_chan<T>* ch_;
};

template <class T>
class receiver {
 public:
  receiver(receiver&& o) noexcept : ch_(std::exchange(o.ch_, nullptr)) {}
  receiver& operator=(receiver&& o) noexcept {
    std::swap(ch_, o.ch_);
    return *this;
  }
  receiver(const receiver&) = delete;
  ~receiver() {
    if (!ch_) return;
    ch_->close_rx();
    ch_->release();
  }

  class recv_awaiter {
   public:
    bool await_ready() {
      if (ch_->try_pop(value_, std::memory_order_acquire)) {
        ch_->after_pop();
        return true;
      }
      return ch_->tx_closed() && !ch_->ready(std::memory_order_seq_cst);
    }
    bool await_suspend(std::coroutine_handle<> h) {
      // About to sleep: make sure blocked senders are let in (they may be all that is left).
      if (ch_->parking().prepare(rt::detail::suspend_current(h)) != 0) {
        ch_->serve_blocked_senders();
      }
      if (ch_->ready(std::memory_order_seq_cst) || ch_->tx_closed()) {
        parked_ = ch_->parking().cancel() == false;  // a producer's wake-up is on its way
        return parked_;
      }
      parked_ = true;
      return true;
    }
    std::optional<T> await_resume() {
      parked_ = false;
      if (!value_ && ch_->try_pop(value_, std::memory_order_acquire)) ch_->after_pop();
      return std::move(value_);
    }
    recv_awaiter(recv_awaiter&& o) noexcept : ch_(o.ch_) {}
    // Destroyed while parked (the task was cancelled, or a select took another branch): take the
    // registration back, so that the next receive does not inherit it.
    ~recv_awaiter() {
      if (parked_) ch_->parking().withdraw();
    }

   private:
    friend class receiver;
    explicit recv_awaiter(detail::bounded_chan<T>* ch) : ch_(ch) {}
    detail::bounded_chan<T>* ch_;
    std::optional<T> value_;
    bool parked_ = false;
  };

  // `co_await` yields the next message, or std::nullopt once all senders are gone and it is empty.
  rt::detail::coop::budgeted<recv_awaiter> recv() noexcept {
    return rt::detail::coop::budgeted<recv_awaiter>(recv_awaiter(ch_));
  }

  std::optional<try_recv_error> try_recv(std::optional<T>& out) {
    if (ch_->try_pop(out, std::memory_order_acquire)) {
      ch_->after_pop();
      return std::nullopt;
    }
    if (ch_->tx_closed() && !ch_->ready(std::memory_order_seq_cst)) {
      return try_recv_error::disconnected;
    }
    return try_recv_error::empty;
  }

  // Stops accepting messages; those already buffered can still be received.
  void close() { ch_->close_rx(); }

 private:
  template <class U>
  friend std::pair<sender<U>, receiver<U>> channel(std::size_t);
  explicit receiver(detail::bounded_chan<T>* ch) noexcept : ch_(ch) {}
  detail::bounded_chan<T>* ch_;
};

template <class T>
std::pair<sender<T>, receiver<T>> channel(std::size_t capacity) {
  auto* ch = new detail::bounded_chan<T>(capacity == 0 ? 1 : capacity);
  return {sender<T>(ch), receiver<T>(ch)};
}

// ------------------------------------------------------------------------------------ unbounded

namespace detail {
template <class T>
struct unbounded_chan {
  rt::detail::spin_lock mu;
  std::deque<T> queue ABSL_GUARDED_BY(mu);
  bool tx_closed ABSL_GUARDED_BY(mu) = false;
  bool rx_closed ABSL_GUARDED_BY(mu) = false;
  task_header* rx_task ABSL_GUARDED_BY(mu) = nullptr;  // registered receiver (holds a ref)
  std::atomic<std::size_t> senders{1};
  std::atomic<int> refs{2};
  void release() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  // Call with the lock held; the caller wakes `out` after unlocking.
  void take_rx(rt::detail::wake_list& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (rx_task) {
      out.push(rx_task);
      rx_task->release();
      rx_task = nullptr;
    }
  }
};
}  // namespace detail

template <class T>
class unbounded_receiver;

template <class T>
class unbounded_sender {
 public:
  unbounded_sender(const unbounded_sender& o) noexcept : ch_(o.ch_) {
    ch_->senders.fetch_add(1, std::memory_order_relaxed);
    ch_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  unbounded_sender(unbounded_sender&& o) noexcept : ch_(std::exchange(o.ch_, nullptr)) {}
  ~unbounded_sender() {
    if (!ch_) return;
    if (ch_->senders.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      rt::detail::wake_list wakes;
      rt::detail::spin_guard lock(ch_->mu);
      ch_->tx_closed = true;
      ch_->take_rx(wakes);
    }
    ch_->release();
  }
  // Never waits. False if the receiver is gone.
  bool send(T value) {
    rt::detail::wake_list wakes;
    rt::detail::spin_guard lock(ch_->mu);
    if (ch_->rx_closed) return false;
    ch_->queue.push_back(std::move(value));
    ch_->take_rx(wakes);
    return true;
  }

 private:
  template <class U>
  friend std::pair<unbounded_sender<U>, unbounded_receiver<U>> unbounded_channel();
  explicit unbounded_sender(detail::unbounded_chan<T>* ch) : ch_(ch) {}
  detail::unbounded_chan<T>* ch_;
};

template <class T>
class unbounded_receiver {
 public:
  unbounded_receiver(unbounded_receiver&& o) noexcept : ch_(std::exchange(o.ch_, nullptr)) {}
  ~unbounded_receiver() {
    if (!ch_) return;
    {
      rt::detail::spin_guard lock(ch_->mu);
      ch_->rx_closed = true;
    }
    ch_->release();
  }

  class recv_awaiter {
   public:
    bool await_ready() { return false; }
    bool await_suspend(std::coroutine_handle<> h) {
      rt::detail::spin_guard lock(ch_->mu);
      if (!ch_->queue.empty() || ch_->tx_closed) return false;
      rt::detail::task_header* t = rt::detail::suspend_current(h);
      t->add_ref();
      ch_->rx_task = t;
      registered_ = true;
      return true;
    }
    std::optional<T> await_resume() {
      registered_ = false;
      rt::detail::spin_guard lock(ch_->mu);
      if (ch_->queue.empty()) return std::nullopt;
      std::optional<T> v(std::move(ch_->queue.front()));
      ch_->queue.pop_front();
      return v;
    }
    recv_awaiter(recv_awaiter&& o) noexcept : ch_(o.ch_) {}
    ~recv_awaiter() {
      if (!registered_) return;
      rt::detail::spin_guard lock(
          ch_->mu);  // cancelled while waiting: drop the registration if still there
      if (ch_->rx_task) {
        ch_->rx_task->release();
        ch_->rx_task = nullptr;
      }
    }

   private:
    friend class unbounded_receiver;
    explicit recv_awaiter(detail::unbounded_chan<T>* ch) : ch_(ch) {}
    detail::unbounded_chan<T>* ch_;
    bool registered_ = false;
  };
  rt::detail::coop::budgeted<recv_awaiter> recv() noexcept {
    return rt::detail::coop::budgeted<recv_awaiter>(recv_awaiter(ch_));
  }

 private:
  template <class U>
  friend std::pair<unbounded_sender<U>, unbounded_receiver<U>> unbounded_channel();
  explicit unbounded_receiver(detail::unbounded_chan<T>* ch) : ch_(ch) {}
  detail::unbounded_chan<T>* ch_;
};

template <class T>
std::pair<unbounded_sender<T>, unbounded_receiver<T>> unbounded_channel() {
  auto* ch = new detail::unbounded_chan<T>();
  return {unbounded_sender<T>(ch), unbounded_receiver<T>(ch)};
}

}  // namespace shoal::rt::mpsc
