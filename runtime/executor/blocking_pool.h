// blocking_pool: the threads that run blocking closures for spawn_blocking. Internal; use
// rt::spawn_blocking (runtime/blocking.h).
//
// Threads are started on demand, up to a maximum, and leave after sitting idle for a while, as
// Tokio's blocking pool does. Jobs wait in a FIFO; the caller bounds how many may wait (the
// runtime admits them through a semaphore). At shutdown, jobs not yet started are dropped (their
// `drop` runs instead of `run`), running ones are waited for: a blocking call cannot be
// interrupted.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string>

namespace shoal::rt::detail {

struct blocking_job {
  void (*run)(blocking_job* self) noexcept;   // runs the closure and frees the job
  void (*drop)(blocking_job* self) noexcept;  // frees the job without running it
  blocking_job* next = nullptr;
};

class blocking_pool {
 public:
  blocking_pool(std::size_t max_threads, std::chrono::milliseconds keep_alive, std::string name);
  ~blocking_pool();
  blocking_pool(const blocking_pool&) = delete;
  blocking_pool& operator=(const blocking_pool&) = delete;

  // Queues the job; a thread runs it. After shutdown the job is dropped at once.
  void submit(blocking_job* job);
  // Drops queued jobs, waits for running ones, and lets every thread go. Idempotent.
  void shutdown();

  // Closures queued or running (any thread; a paused clock does not auto-advance while some are).
  std::size_t in_flight() const noexcept { return in_flight_.load(std::memory_order_acquire); }

  // Diagnostics and tests.
  std::size_t threads() const;
  std::size_t idle_threads() const;

 private:
  void thread_main();

  const std::size_t max_threads_;
  const std::chrono::milliseconds keep_alive_;
  const std::string name_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // a job arrived, or shutdown
  std::condition_variable gone_cv_;  // a thread left (shutdown waits for the last)
  blocking_job* head_ = nullptr;     // guarded by mu_
  blocking_job* tail_ = nullptr;     // guarded by mu_
  std::size_t queued_ = 0;           // guarded by mu_
  std::size_t threads_ = 0;          // guarded by mu_: alive
  std::size_t idle_ = 0;             // guarded by mu_: alive and waiting for a job
  bool shutdown_ = false;            // guarded by mu_
  std::atomic<std::size_t> in_flight_{0};
};

}  // namespace shoal::rt::detail
