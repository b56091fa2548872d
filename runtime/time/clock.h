// clock: the runtime's notion of "now", which tests can pause and advance.
//
// While paused, time stands still until advance() (or, when the runtime is idle and auto-advance is
// on, until the next timer is due), so expiry logic is tested deterministically, without sleeping:
//
//   rt::runtime rt({.start_paused = true});
//   rt.block_on(expire_after(std::chrono::hours(1)));   // returns at once, the clock jumped an
//   hour
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace shoal::rt {

class clock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  using duration = std::chrono::steady_clock::duration;

  time_point now() const noexcept {
    if (paused_.load(std::memory_order_acquire)) {
      return time_point(duration(frozen_.load(std::memory_order_acquire)));
    }
    return std::chrono::steady_clock::now() + duration(offset_.load(std::memory_order_relaxed));
  }

  bool paused() const noexcept { return paused_.load(std::memory_order_acquire); }

  void pause() noexcept {
    frozen_.store(now().time_since_epoch().count(), std::memory_order_release);
    paused_.store(true, std::memory_order_release);
  }
  // Time flows again from where it stood.
  void resume() noexcept {
    offset_.store(frozen_.load() - std::chrono::steady_clock::now().time_since_epoch().count(),
                  std::memory_order_relaxed);
    paused_.store(false, std::memory_order_release);
  }
  // Paused clocks only. Returns the new now.
  time_point advance(duration d) noexcept {
    return time_point(
        duration(frozen_.fetch_add(d.count(), std::memory_order_acq_rel) + d.count()));
  }
  // Paused clocks only: moves forward to `t` if it is later than now.
  void advance_to(time_point t) noexcept {
    int64_t target = t.time_since_epoch().count();
    int64_t cur = frozen_.load(std::memory_order_acquire);
    while (cur < target && !frozen_.compare_exchange_weak(cur, target)) {
    }
  }

 private:
  std::atomic<bool> paused_{false};
  std::atomic<int64_t> frozen_{0};
  std::atomic<int64_t> offset_{0};
};

}  // namespace shoal::rt
