// runtime_core: the scheduler behind rt::runtime. Internal; use runtime.h.
//
// N workers, each with a bounded local run queue, a LIFO slot (the task it just woke runs next,
// which keeps request/reply pairs on one core), and a driver to park on. Tasks scheduled from
// outside a worker go through the shared inject queue. Idle workers steal half of a busy worker's
// queue; a parked worker is woken only when no other worker is already searching (see idle.h).
//
// Task lifecycle (state bits in task_header.h):
//   spawn            -> scheduled
//   worker picks it  -> running, resumes task->resume_point through the trampoline
//   it suspends      -> idle (or scheduled again if it was woken meanwhile or yielded)
//   it finishes      -> complete; the join waiter is woken
//   abort            -> cancelled; the worker that next owns it destroys the frame (unless a gRPC
//                       operation holds it: then the operation is cancelled first)
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/executor/blocking_pool.h"
#include "runtime/executor/driver.h"
#include "runtime/executor/idle.h"
#include "runtime/executor/inject_queue.h"
#include "runtime/executor/local_queue.h"
#include "runtime/internal/spin_lock.h"
#include "runtime/internal/task_header.h"
#include "runtime/plain_mutex.h"
#include "runtime/sync/semaphore.h"
#include "runtime/time/clock.h"
#include "runtime/time/timer_queue.h"

namespace shoal::rt {

class runtime_core;

namespace detail {

class worker {
 public:
  worker(runtime_core& core, int index, std::unique_ptr<driver> drv);

  void start(const std::string& name);
  void join();
  void unpark() { driver_->unpark(); }
  // current_thread: runs the worker's loop on the calling thread until `t` completes (block_on).
  void serve_caller_until(task_header* t);
  // current_thread: block_on asks the worker thread to leave its loop (and the seat) for a while.
  void request_seat() {
    seat_wanted_.store(true, std::memory_order_release);
    unpark();
  }
  void release_seat() { seat_wanted_.store(false, std::memory_order_release); }
  // Any thread: the clock time (ns) this worker is parked until; below every deadline when it is
  // not parked, above every deadline when it is parked without one.
  int64_t parked_until() const { return parked_until_.load(std::memory_order_seq_cst); }

  // On this worker's thread only.
  void schedule_local(task_header* t, bool yielded);
  runtime_core& core() { return core_; }
  driver& io() { return *driver_; }
  int index() const { return index_; }

  local_queue& queue() { return queue_; }

 private:
  void run();
  // The scheduling loop, on whichever thread holds the worker: until the runtime exits, or until
  // `until` completes (a block_on caller), or until a block_on caller wants the seat.
  void serve(task_header* until);
  bool should_leave() const;
  void run_task(task_header* t);
  void after_suspend(task_header* t, bool yielded);
  void cancel(task_header* t);
  task_header* next_task();
  std::size_t fire_timers();
  task_header* steal_work();
  // Half of another worker's queue, or the task in its LIFO slot; null if they have none.
  task_header* steal_from_others();
  task_header* take_from_inject();
  void park();
  bool poll_driver();
  void notify_if_surplus();
  void push_back(task_header* t);
  void maintenance();
  bool has_local_work() const {
    return lifo_.load(std::memory_order_relaxed) != nullptr || !queue_.empty();
  }

  runtime_core& core_;
  const int index_;
  std::unique_ptr<driver> driver_;
  local_queue queue_;
  // The task woken last by this worker's running task: it runs next, on this core. An idle worker
  // may take it (steal_work), so both sides exchange.
  std::atomic<task_header*> lifo_{nullptr};
  int lifo_streak_ = 0;
  bool searching_ = false;
  bool in_driver_ = false;      // tasks woken now are notified once, after the driver returns
  bool yielded_alone_ = false;  // the last task yielded, and it is all the local queue holds
  uint32_t tick_ = 0;
  static constexpr int64_t k_not_parked = std::numeric_limits<int64_t>::min();
  static constexpr int64_t k_parked_without_deadline = std::numeric_limits<int64_t>::max();
  std::atomic<int64_t> parked_until_{k_not_parked};
  task_header* until_ = nullptr;          // what the thread in serve() waits for, if a caller
  std::atomic<bool> seat_wanted_{false};  // a block_on caller waits for the worker thread to leave
  uint64_t rng_;
  std::thread thread_;
};

// Live spawned tasks, so that shutdown can cancel the ones that are idle. Sharded by address.
class owned_tasks {
 public:
  // Returns false if the runtime is shutting down (the task must be cancelled at once).
  bool insert(task_header* t);
  // Returns true if the registry is closed and now empty (shutdown may finish).
  bool remove(task_header* t);
  // Closes the registry and aborts every task in it.
  void close_and_abort_all();
  bool empty();

 private:
  static constexpr int k_shards = 16;
  struct alignas(64) shard {
    spin_lock mu;
    task_header* head ABSL_GUARDED_BY(mu) = nullptr;
    bool closed ABSL_GUARDED_BY(mu) = false;
  };
  shard& shard_of(task_header* t) {
    return shards_[(reinterpret_cast<uintptr_t>(t) >> 6) % k_shards];
  }
  shard shards_[k_shards];
};

}  // namespace detail

struct runtime_options {
  enum class flavor { current_thread, multi_thread };
  flavor kind = flavor::multi_thread;
  int workers = 0;             // multi_thread: 0 = one per core; current_thread: always 1
  driver_factory make_driver;  // default: a plain parker per worker (no I/O)
  bool start_paused = false;   // the test clock starts paused
  bool auto_advance = true;    // a paused clock jumps to the next timer when all workers idle
  std::string thread_name = "shoal-rt";
  // spawn_blocking's pool (Tokio's defaults): threads started on demand up to this many, each
  // leaving after this long idle; at most `blocking_queue` closures wait for a thread (more
  // spawn_blocking calls wait, asynchronously, for room).
  std::size_t max_blocking_threads = 512;
  std::chrono::milliseconds blocking_keep_alive{10'000};
  std::size_t blocking_queue = 4096;
};

class runtime_core {
 public:
  explicit runtime_core(runtime_options options);
  ~runtime_core();
  runtime_core(const runtime_core&) = delete;
  runtime_core& operator=(const runtime_core&) = delete;

  void start();
  bool single_threaded() const { return options_.kind == runtime_options::flavor::current_thread; }
  // current_thread: block_on runs every task of the runtime on the calling thread, as Tokio's
  // does. The caller takes the seat (the worker thread steps aside; one caller at a time), spawns
  // its task, serves until that task completes, and gives the seat back.
  // False if the runtime has already exited (then there is nothing to serve).
  bool take_seat();
  void serve_on_caller_until(detail::task_header* t) { workers_[0]->serve_caller_until(t); }
  void give_seat_back();
  // Takes a freshly created task (refs = 1, the creator's) and schedules it. Adds the join handle's
  // reference.
  void spawn(detail::task_header* t);
  // `t` moved to scheduled: put it in a run queue.
  void schedule(detail::task_header* t, bool yielded);
  // Cancels every task, waits until none is left, stops the workers. Idempotent; not from a worker.
  void shutdown();
  bool is_current() const;

  clock& time() { return clock_; }
  detail::timer_queue& timers() { return timers_; }
  // A timer just became the earliest (timer_queue::insert returned true): wake a worker parked
  // until later, so that it parks again with this deadline.
  void timer_inserted(clock::time_point deadline);
  // Fires due timers; for a paused clock, a manual advance.
  std::size_t advance_clock(clock::duration d);
  int worker_count() const { return static_cast<int>(workers_.size()); }
  detail::blocking_pool& blocking() { return blocking_; }
  // Admission to the blocking pool: a permit per closure queued or running.
  semaphore& blocking_admission() { return blocking_admission_; }
  detail::worker& worker_at(int i) { return *workers_[i]; }

 private:
  friend class detail::worker;
  // `outcome_bits`: k_frame_gone | k_result_stored for a finished task, 0 for a cancelled one
  // (whose frame destruction already set k_frame_gone).
  void complete(detail::task_header* t, uint32_t outcome_bits);
  void notify_parked();
  void notify_if_work_pending();
  bool exiting() const { return exiting_.load(std::memory_order_acquire); }
  // The earliest timer's deadline (none while the clock is paused), and that instant on the steady
  // clock that drivers park on.
  std::optional<clock::time_point> park_deadline() const;
  std::optional<driver::time_point> steady_deadline(std::optional<clock::time_point> d) const;
  // The last worker to go idle with a paused clock moves time to the next timer.
  bool try_auto_advance(int worker);

  const runtime_options options_;
  clock clock_;
  detail::timer_queue timers_;
  detail::inject_queue inject_;
  detail::idle idle_;
  detail::owned_tasks owned_;
  detail::blocking_pool blocking_;
  semaphore blocking_admission_;
  std::vector<std::unique_ptr<detail::worker>> workers_;
  std::atomic<bool> shutting_down_{false};
  std::atomic<bool> exiting_{false};
  // current_thread's seat: the worker thread lends it to a block_on caller.
  void lend_seat();
  std::mutex seat_mu_;
  std::condition_variable seat_cv_;
  bool seat_lent_ = false;  // guarded by seat_mu_
  std::mutex caller_mu_;    // one block_on caller at a time
  std::mutex advance_mu_;
  int advancing_worker_ = -1;  // guarded by advance_mu_: woke tasks with the last auto-advance
  std::mutex done_mu_;
  std::condition_variable done_cv_;
  bool stopped_ = false;  // guarded by done_mu_
};

namespace detail {
// The runtime of the calling task (or worker thread); aborts elsewhere.
inline runtime_core& current_core() {
  task_header* t = tls.current_task;
  if (t != nullptr && t->sched != nullptr) return *t->sched;
  if (tls.current_worker != nullptr) return tls.current_worker->core();
  std::fprintf(stderr, "shoal::rt: used a runtime facility outside of a runtime task\n");
  std::abort();
}
}  // namespace detail

}  // namespace shoal::rt
