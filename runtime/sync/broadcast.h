// broadcast: multi-producer, multi-consumer; every receiver sees every value. Shoal's
// tokio::sync::broadcast.
//
// A ring of `capacity` values (rounded up to a power of two). A receiver that falls more than the
// capacity behind gets recv_error{lagged, n}: n values were overwritten before it read them, and it
// continues from the oldest value still retained. Once every sender is gone, receivers drain what
// is left and then get recv_error{closed}. send() returns how many receivers will see the value (0:
// nobody is subscribed, and the value is dropped).
//
//   auto [tx, rx] = rt::broadcast::channel<event>(1024);
//   auto rx2 = tx.subscribe();                        // sees values sent from now on
//   tx.send(ev);
//   auto r = co_await rx.recv();                      // expected<event, recv_error>
//   if (!r && r.error().kind == rt::broadcast::recv_error::lagged) { /* resync */ }
//
// Values are copied out to each receiver: broadcast something cheap to copy (a shared_ptr to an
// immutable event), not the event itself.
//
// Bounded by bytes too: channel<T>(capacity, max_bytes, weigh) also lets the oldest values go
// once the values it holds weigh more than max_bytes in all (the newest always stays, however
// large). The ring holds a value until it is overwritten, whether or not every receiver has read
// it, so a channel of large values needs this bound. A receiver behind a value let go lags, as
// if it had been overwritten.
//
//   auto [tx, rx] = rt::broadcast::channel<event_ptr>(4096, 64 << 20,
//                                                     [](const event_ptr& e) { return e->bytes();
//                                                     });
#pragma once

#include <algorithm>
#include <atomic>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

#include "runtime/expected.h"
#include "runtime/internal/coop.h"
#include "runtime/internal/spin_lock.h"
#include "runtime/internal/task_header.h"
#include "runtime/internal/waiter_list.h"
#include "runtime/internal/wake_list.h"

namespace shoal::rt::broadcast {

struct recv_error {
  enum kind_t { lagged, closed } kind;
  uint64_t skipped = 0;  // lagged: how many values this receiver missed
};
// For select's else_when_closed: falling behind is news, not the end of the channel.
inline bool is_closed_error(const recv_error& e) { return e.kind == recv_error::closed; }

namespace detail {
using rt::detail::task_header;

struct rx_waiter : rt::detail::waiter_link {
  task_header* task = nullptr;
};

template <class T>
using weigh_fn = std::size_t (*)(const T&);

template <class T>
class shared {
 public:
  explicit shared(std::size_t capacity, std::size_t max_bytes = SIZE_MAX,
                  weigh_fn<T> weigh = nullptr)
      : max_bytes_(max_bytes), weigh_(weigh) {
    std::size_t n = 1;
    while (n < capacity) n <<= 1;
    mask_ = n - 1;
    slots_ = std::make_unique<slot[]>(n);
  }

  // Returns the number of receivers, 0 if nobody listens (the value is dropped).
  std::size_t send(T&& v) {
    rt::detail::wake_list wakes;
    rt::detail::spin_guard lock(tail_mu_);
    std::size_t receivers = receivers_.load(std::memory_order_acquire);
    if (receivers == 0) return 0;
    const uint64_t pos = tail_pos_++;
    slot& s = slots_[pos & mask_];
    const std::size_t weight = weigh_ != nullptr ? weigh_(v) : 0;
    s.write_lock();
    s.value = std::move(v);
    s.pos = pos;
    s.evicted = false;
    bytes_ += weight - s.weight;  // the overwritten value's weight goes with it
    s.weight = weight;
    s.write_unlock();
    head_pos_ = std::max(head_pos_, tail_pos_ - std::min<uint64_t>(tail_pos_, mask_ + 1));
    while (bytes_ > max_bytes_ && tail_pos_ - head_pos_ > 1) evict_oldest();
    while (rx_waiter* w = waiting_.pop_front()) wakes.push(w->task);
    return receivers;
  }

  enum class read_status { value, empty, lagged, closed };

  // Receiver: reads position `next` into `out`; on lagged, `skipped` says how many were lost.
  read_status try_read(uint64_t& next, std::optional<T>& out, uint64_t& skipped) {
    slot& s = slots_[next & mask_];
    s.read_lock();
    const uint64_t pos = s.pos;
    const bool evicted = s.evicted;
    if (pos == next && !evicted) {
      out.emplace(s.value);
      s.read_unlock();
      ++next;
      return read_status::value;
    }
    s.read_unlock();
    rt::detail::spin_guard lock(tail_mu_);
    if (pos == k_empty || pos < next) {                  // nothing new at our position
      if (tail_pos_ != next) return read_status::empty;  // written since we looked: retry
      return closed_ ? read_status::closed : read_status::empty;
    }
    // Overwritten, or let go for the byte bound: skip to the oldest value still in the ring.
    const uint64_t oldest = head_pos_;
    skipped = oldest - next;
    next = oldest;
    return read_status::lagged;
  }

  std::optional<expected<T, recv_error>> try_recv(uint64_t& next) {
    std::optional<T> v;
    uint64_t skipped = 0;
    switch (try_read(next, v, skipped)) {
      case read_status::value:
        return expected<T, recv_error>(std::move(*v));
      case read_status::lagged:
        return expected<T, recv_error>(unexpected(recv_error{recv_error::lagged, skipped}));
      case read_status::closed:
        return expected<T, recv_error>(unexpected(recv_error{recv_error::closed}));
      case read_status::empty:
        break;
    }
    return std::nullopt;
  }

  // Receiver about to sleep at `next`: false if it must not (something arrived or closed).
  bool park(rx_waiter* w, uint64_t next) {
    rt::detail::spin_guard lock(tail_mu_);
    if (tail_pos_ != next || closed_) return false;
    waiting_.push_back(w);
    return true;
  }
  void unpark_cancelled(rx_waiter* w) {
    rt::detail::spin_guard lock(tail_mu_);
    if (w->linked) waiting_.remove(w);
  }

  uint64_t subscribe() {
    rt::detail::spin_guard lock(tail_mu_);
    receivers_.fetch_add(1, std::memory_order_acq_rel);
    refs.fetch_add(1, std::memory_order_relaxed);
    return tail_pos_;
  }
  void unsubscribe() {
    receivers_.fetch_sub(1, std::memory_order_acq_rel);
    release();
  }
  void close() {
    rt::detail::wake_list wakes;
    rt::detail::spin_guard lock(tail_mu_);
    closed_ = true;
    while (rx_waiter* w = waiting_.pop_front()) wakes.push(w->task);
  }
  std::size_t receiver_count() const { return receivers_.load(std::memory_order_acquire); }

  std::atomic<std::size_t> senders{1};
  std::atomic<int> refs{1};
  void release() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

 private:
  static constexpr uint64_t k_empty = ~uint64_t{0};

  // Each slot has a tiny reader-writer lock: readers copy the value out while the single writer
  // (holding tail_mu_) waits for them to leave before overwriting.
  struct slot {
    static constexpr uint32_t k_writer = 1u << 31;
    std::atomic<uint32_t> guard{0};
    uint64_t pos = k_empty;
    bool evicted = false;    // let go for the byte bound: `value` is empty
    std::size_t weight = 0;  // what `value` counts toward the bound
    T value{};

    void read_lock() {
      for (int spins = 0;; ++spins) {
        if (!(guard.fetch_add(1, std::memory_order_acquire) & k_writer)) return;
        guard.fetch_sub(1, std::memory_order_relaxed);
        backoff(spins);
      }
    }
    void read_unlock() { guard.fetch_sub(1, std::memory_order_release); }
    void write_lock() {
      for (int spins = 0;; ++spins) {
        uint32_t expected = 0;
        if (guard.compare_exchange_weak(expected, k_writer, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
          return;
        }
        backoff(spins);
      }
    }
    void write_unlock() { guard.fetch_sub(k_writer, std::memory_order_release); }
    static void backoff(int spins) {
      if (spins > 64) std::this_thread::yield();
    }
  };

  // Lets the oldest retained value go (its slot keeps its position, marked evicted).
  void evict_oldest() ABSL_EXCLUSIVE_LOCKS_REQUIRED(tail_mu_) {
    slot& s = slots_[head_pos_ & mask_];
    T gone{};
    s.write_lock();
    std::swap(gone, s.value);  // destroyed after the slot is unlocked
    s.evicted = true;
    bytes_ -= s.weight;
    s.weight = 0;
    s.write_unlock();
    ++head_pos_;
  }

  std::unique_ptr<slot[]> slots_;
  uint64_t mask_;
  const std::size_t max_bytes_;
  const weigh_fn<T> weigh_;
  rt::detail::spin_lock tail_mu_;
  uint64_t tail_pos_ ABSL_GUARDED_BY(tail_mu_) = 0;
  uint64_t head_pos_ ABSL_GUARDED_BY(tail_mu_) = 0;  // the oldest value still held
  std::size_t bytes_ ABSL_GUARDED_BY(tail_mu_) = 0;  // the weight of the values held
  bool closed_ ABSL_GUARDED_BY(tail_mu_) = false;
  rt::detail::waiter_list<rx_waiter> waiting_ ABSL_GUARDED_BY(tail_mu_);
  std::atomic<std::size_t> receivers_{0};
};
}  // namespace detail

template <class T>
class receiver;

template <class T>
class sender {
 public:
  sender(const sender& o) noexcept : s_(o.s_) {
    s_->senders.fetch_add(1, std::memory_order_relaxed);
    s_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  sender(sender&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  ~sender() {
    if (!s_) return;
    if (s_->senders.fetch_sub(1, std::memory_order_acq_rel) == 1) s_->close();
    s_->release();
  }

  std::size_t send(T v) { return s_->send(std::move(v)); }
  receiver<T> subscribe() { return receiver<T>(s_); }
  std::size_t receiver_count() const { return s_->receiver_count(); }

 private:
  template <class U>
  friend std::pair<sender<U>, receiver<U>> channel(std::size_t);
  template <class U>
  friend std::pair<sender<U>, receiver<U>> channel(std::size_t, std::size_t, detail::weigh_fn<U>);
  explicit sender(detail::shared<T>* s) : s_(s) {}
  detail::shared<T>* s_;
};

template <class T>
class receiver {
 public:
  receiver(receiver&& o) noexcept : s_(std::exchange(o.s_, nullptr)), next_(o.next_) {}
  receiver& operator=(receiver&& o) noexcept {
    std::swap(s_, o.s_);
    std::swap(next_, o.next_);
    return *this;
  }
  receiver(const receiver&) = delete;
  ~receiver() {
    if (s_) s_->unsubscribe();
  }

  class recv_awaiter {
   public:
    bool await_ready() { return read() != status::empty; }
    bool await_suspend(std::coroutine_handle<> h) {
      w_.task = rt::detail::suspend_current(h);
      return r_->s_->park(&w_, r_->next_);
    }
    expected<T, recv_error> await_resume() {
      resumed_ = true;
      // Woken by a send or by the close: the read succeeds (a sender still inside its critical
      // section can make it come back empty for an instant).
      while (status_ == status::empty && read() == status::empty) std::this_thread::yield();
      switch (status_) {
        case status::value:
          return std::move(*value_);
        case status::lagged:
          return unexpected(recv_error{recv_error::lagged, skipped_});
        default:
          return unexpected(recv_error{recv_error::closed});
      }
    }
    recv_awaiter(recv_awaiter&& o) noexcept : r_(o.r_) {}
    ~recv_awaiter() {
      if (w_.task && !resumed_) r_->s_->unpark_cancelled(&w_);
    }

   private:
    friend class receiver;
    using status = typename detail::shared<T>::read_status;
    explicit recv_awaiter(receiver* r) : r_(r) {}
    status read() { return status_ = r_->s_->try_read(r_->next_, value_, skipped_); }
    receiver* r_;
    detail::rx_waiter w_;
    std::optional<T> value_;
    uint64_t skipped_ = 0;
    status status_ = status::empty;
    bool resumed_ = false;
  };

  rt::detail::coop::budgeted<recv_awaiter> recv() {
    return rt::detail::coop::budgeted<recv_awaiter>(recv_awaiter(this));
  }
  // Non-blocking: nullopt if nothing new.
  std::optional<expected<T, recv_error>> try_recv() { return s_->try_recv(next_); }
  // A new receiver at the current tail (Tokio's resubscribe).
  receiver resubscribe() const { return receiver(s_); }

 private:
  friend class sender<T>;
  template <class U>
  friend std::pair<sender<U>, receiver<U>> channel(std::size_t);
  template <class U>
  friend std::pair<sender<U>, receiver<U>> channel(std::size_t, std::size_t, detail::weigh_fn<U>);
  explicit receiver(detail::shared<T>* s) : s_(s), next_(s->subscribe()) {}
  detail::shared<T>* s_;
  uint64_t next_;
};

template <class T>
std::pair<sender<T>, receiver<T>> channel(std::size_t capacity) {
  auto* s = new detail::shared<T>(capacity == 0 ? 1 : capacity);
  receiver<T> rx(s);
  return {sender<T>(s), std::move(rx)};
}

// Also bounded by bytes: `weigh` says what a value counts (a captureless function or lambda).
template <class T>
std::pair<sender<T>, receiver<T>> channel(std::size_t capacity, std::size_t max_bytes,
                                          detail::weigh_fn<T> weigh) {
  auto* s = new detail::shared<T>(capacity == 0 ? 1 : capacity, max_bytes, weigh);
  receiver<T> rx(s);
  return {sender<T>(s), std::move(rx)};
}

}  // namespace shoal::rt::broadcast
