#include "runtime/executor/runtime_core.h"

#include <pthread.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "runtime/executor/plain_driver.h"
#include "runtime/internal/coop.h"

namespace shoal::rt {
namespace detail {
namespace {

// Every 61 scheduling ticks a worker looks at the inject queue, timers and its driver even when its
// own queue is busy, so that none of them starves (the same interval as Tokio's).
constexpr uint32_t k_maintenance_interval = 61;
// A LIFO-slot task that keeps waking a partner would otherwise starve the rest of the queue.
constexpr int k_max_lifo_streak = 3;
constexpr uint32_t k_max_steal = local_queue::k_capacity / 2;

int worker_count_of(const runtime_options& o) {
  if (o.kind == runtime_options::flavor::current_thread) return 1;
  if (o.workers > 0) return o.workers;
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

}  // namespace

task_header* current_task_or_die() noexcept {
  task_header* t = tls.current_task;
  if (t == nullptr) {
    std::fprintf(stderr, "shoal::rt: awaited a runtime primitive outside of a runtime task\n");
    std::abort();
  }
  return t;
}

void wake(task_header* t) noexcept {
  uint32_t s = t->state.load(std::memory_order_acquire);
  if (s & k_proxy) {
    auto* p = static_cast<waker_proxy*>(t);
    p->vtable->wake(p);
    return;
  }
  uint32_t ns;
  do {
    if (s & (k_complete | k_scheduled | k_notified)) return;
    ns = s | ((s & k_running) ? k_notified : k_scheduled);
  } while (
      !t->state.compare_exchange_weak(s, ns, std::memory_order_acq_rel, std::memory_order_acquire));
  if (!(s & k_running)) t->sched->schedule(t, false);
}

void abort_task(task_header* t) noexcept {
  uint32_t s = t->state.load(std::memory_order_acquire);
  uint32_t ns;
  do {
    if (s & (k_complete | k_cancelled)) return;
    ns = s | k_cancelled;
    if (!(s & (k_running | k_scheduled))) ns |= k_scheduled;  // idle: someone must run the cancel
  } while (
      !t->state.compare_exchange_weak(s, ns, std::memory_order_acq_rel, std::memory_order_acquire));
  if (!(s & (k_running | k_scheduled))) t->sched->schedule(t, false);
}

void drop_join_handle(task_header* t) noexcept { t->release(); }

bool register_join_waiter(task_header* t, task_header* waiter) noexcept {
  waiter->add_ref();
  t->join_waiter = waiter;
  uint32_t s = t->state.load(std::memory_order_acquire);
  do {
    if (s & k_complete) {
      waiter->release();
      return false;
    }
  } while (!t->state.compare_exchange_weak(s, s | k_join_waiter, std::memory_order_acq_rel,
                                           std::memory_order_acquire));
  return true;
}

void unregister_join_waiter(task_header* t) noexcept {
  uint32_t s = t->state.load(std::memory_order_acquire);
  do {
    if (s & k_complete) return;  // the completer wakes the waiter and drops its reference
  } while (!t->state.compare_exchange_weak(s, s & ~k_join_waiter, std::memory_order_acq_rel,
                                           std::memory_order_acquire));
  t->join_waiter->release();
}

// ---------------------------------------------------------------------------------- owned_tasks

bool owned_tasks::insert(task_header* t) {
  shard& s = shard_of(t);
  spin_guard lock(s.mu);
  t->owned_prev = nullptr;
  t->owned_next = s.head;
  if (s.head) s.head->owned_prev = t;
  s.head = t;
  return !s.closed;
}

bool owned_tasks::remove(task_header* t) {
  shard& s = shard_of(t);
  spin_guard lock(s.mu);
  if (t->owned_prev) {
    t->owned_prev->owned_next = t->owned_next;
  } else {
    s.head = t->owned_next;
  }
  if (t->owned_next) t->owned_next->owned_prev = t->owned_prev;
  t->owned_prev = t->owned_next = nullptr;
  return s.closed && s.head == nullptr;
}

bool owned_tasks::empty() {
  for (shard& s : shards_) {
    spin_guard lock(s.mu);
    if (s.head != nullptr) return false;
  }
  return true;
}

void owned_tasks::close_and_abort_all() {
  for (shard& s : shards_) {
    spin_guard lock(s.mu);
    s.closed = true;
    // A task stays in its shard until it completes, so every header here is alive.
    for (task_header* t = s.head; t; t = t->owned_next) abort_task(t);
  }
}

// --------------------------------------------------------------------------------------- worker

worker::worker(runtime_core& core, int index, std::unique_ptr<driver> drv)
    : core_(core),
      index_(index),
      driver_(std::move(drv)),
      rng_(0x9E3779B97F4A7C15ull * static_cast<uint64_t>(index + 1)) {}

void worker::start(const std::string& name) {
  thread_ = std::thread([this, name] {
    std::string n = name.substr(0, 11) + "-" + std::to_string(index_);
    pthread_setname_np(pthread_self(), n.c_str());
    run();
  });
}

void worker::join() {
  if (thread_.joinable()) thread_.join();
}

void worker::run() {
  for (;;) {
    tls.current_worker = this;
    driver_->attach();
    serve(nullptr);
    driver_->detach();
    tls.current_worker = nullptr;
    if (core_.exiting()) break;
    core_.lend_seat();  // a block_on caller runs the tasks until it gives the seat back
  }
  driver_->shutdown();
}

void worker::serve_caller_until(task_header* t) {
  // The caller may be a worker of another runtime, or inside nothing: save what it had.
  thread_context saved = tls;
  tls = thread_context{};
  tls.current_worker = this;
  driver_->attach();
  serve(t);
  driver_->detach();
  tls = saved;
}

bool worker::should_leave() const {
  if (until_ != nullptr) return until_->state.load(std::memory_order_acquire) & k_complete;
  return seat_wanted_.load(std::memory_order_acquire);
}

void worker::serve(task_header* until) {
  until_ = until;
  while (!core_.exiting() && !should_leave()) {
    ++tick_;
    if (tick_ % k_maintenance_interval == 0) maintenance();
    if (yielded_alone_) {
      // The task that just yielded is all this worker has: let it wait behind work queued on
      // another worker (in its LIFO slot too) rather than run it again at once; that worker may
      // itself be busy, or not running at all.
      yielded_alone_ = false;
      if (task_header* t = steal_from_others()) {
        run_task(t);
        continue;
      }
    }
    if (task_header* t = next_task()) {
      run_task(t);
      continue;
    }
    // Due timers before the shared backlog: a task whose deadline passed has waited its turn
    // already, while one in the inject queue may not have started yet.
    if (fire_timers() > 0) continue;
    if (task_header* t = take_from_inject()) {
      run_task(t);
      continue;
    }
    // Our own completion queue before other workers' tasks: a task woken by this worker's driver
    // stays here, next to its call's completions, instead of migrating to whichever worker steals
    // it (gRPC then offloads work to its executor thread when calls bounce between cores).
    if (poll_driver()) continue;
    if (task_header* t = steal_work()) {
      run_task(t);
      continue;
    }
    park();
  }
  until_ = nullptr;
}

void worker::maintenance() {
  fire_timers();
  poll_driver();
}

std::size_t worker::fire_timers() {
  // Only as many as the local queue has room for: the rest stay due (and first in line) rather
  // than overflow to the back of the inject queue, behind work that has not started yet.
  // Like a driver poll, a batch of timers wakes many tasks at once: one notification for all.
  const uint32_t room = local_queue::k_capacity - queue_.size();
  in_driver_ = true;
  const std::size_t fired = core_.timers_.fire_due(core_.clock_.now(), room > 1 ? room - 1 : 1);
  in_driver_ = false;
  if (fired > 0) notify_if_surplus();
  return fired;
}

bool worker::poll_driver() {
  in_driver_ = true;
  bool got = driver_->poll();
  in_driver_ = false;
  notify_if_surplus();
  return got;
}

void worker::notify_if_surplus() {
  // A driver poll can wake many tasks at once: one notification for the batch, and only when
  // there is more than this worker will run next (as Tokio does after its driver).
  if (searching_ || core_.worker_count() == 1) return;
  if ((lifo_.load(std::memory_order_relaxed) != nullptr ? 1u : 0u) + queue_.size() > 1) {
    core_.notify_parked();
  }
}

task_header* worker::next_task() {
  if (tick_ % k_maintenance_interval == 0) {
    if (task_header* t = core_.inject_.pop()) return t;
  }
  if (lifo_.load(std::memory_order_relaxed) != nullptr) {
    // An idle worker may have taken it since: the exchange decides.
    if (task_header* t = lifo_.exchange(nullptr, std::memory_order_acquire)) {
      if (lifo_streak_ < k_max_lifo_streak) {
        ++lifo_streak_;
        return t;
      }
      push_back(t);
    }
  }
  lifo_streak_ = 0;
  return core_.worker_count() == 1 ? queue_.pop_unshared() : queue_.pop();
}

task_header* worker::take_from_inject() {
  // One lock for a batch: the first runs now, the rest go to the local queue (a fair share when
  // there are several workers).
  const std::size_t share =
      core_.inject_.size() / static_cast<std::size_t>(core_.worker_count()) + 1;
  std::size_t taken = 0;
  task_header* first = core_.inject_.pop_batch(std::min<std::size_t>(share, k_max_steal), &taken);
  if (first == nullptr) return nullptr;
  for (task_header* t = first->next; t != nullptr;) {
    task_header* next = t->next;
    t->next = nullptr;
    push_back(t);
    t = next;
  }
  first->next = nullptr;
  return first;
}

task_header* worker::steal_work() {
  // Every worker passes through "searching" before it parks, even a lone one: the last searcher
  // to park re-checks the queues, which is what closes the race with a concurrent inject.
  if (!searching_) {
    if (!core_.idle_.transition_to_searching()) return nullptr;
    searching_ = true;
  }
  if (task_header* t = steal_from_others()) return t;
  return take_from_inject();
}

task_header* worker::steal_from_others() {
  const int n = core_.worker_count();
  if (n > 1) {
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    const int start = static_cast<int>(rng_ % static_cast<uint64_t>(n));
    task_header* buf[k_max_steal];
    for (int i = 0; i < n; ++i) {
      int victim = (start + i) % n;
      if (victim == index_) continue;
      worker& w = *core_.workers_[victim];
      uint32_t got = w.queue_.steal(buf, k_max_steal);
      if (got == 0) {
        // A task in the LIFO slot of a worker that is busy with something else would otherwise
        // wait until that worker's current task suspends, however long that takes.
        if (w.lifo_.load(std::memory_order_relaxed) == nullptr) continue;
        if (task_header* t = w.lifo_.exchange(nullptr, std::memory_order_acquire)) return t;
        continue;
      }
      for (uint32_t j = 1; j < got; ++j) push_back(buf[j]);
      return buf[0];
    }
  }
  return nullptr;
}

void worker::push_back(task_header* t) {
  if (queue_.push(t)) return;
  // Full: move half of the queue, plus t, to the inject queue in one batch.
  task_header* buf[k_max_steal];
  uint32_t n = queue_.steal(buf, k_max_steal);
  for (uint32_t i = 0; i + 1 < n; ++i) buf[i]->next = buf[i + 1];
  if (n > 0) {
    buf[n - 1]->next = t;
    core_.inject_.push_batch(buf[0], t, n + 1);
  } else {
    core_.inject_.push(t);
  }
}

void worker::schedule_local(task_header* t, bool yielded) {
  if (core_.worker_count() == 1) {
    // A lone worker runs strictly in FIFO order, like Tokio's current_thread scheduler: there is
    // no other core to keep warm, and a LIFO slot would make a joining task ping-pong with every
    // task it joins.
    push_back(t);
    return;
  }
  bool should_notify;
  if (yielded) {
    push_back(t);
    should_notify = true;
  } else {
    task_header* prev = lifo_.exchange(t, std::memory_order_acq_rel);
    should_notify = prev != nullptr;
    if (prev) push_back(prev);
  }
  if (should_notify && !in_driver_) core_.notify_parked();
}

void worker::run_task(task_header* t) {
  if (searching_) {
    searching_ = false;
    // The last searcher found work: there may be more, so let another worker look.
    if (core_.idle_.transition_from_searching()) core_.notify_parked();
  }
  uint32_t s = t->state.load(std::memory_order_acquire);
  uint32_t ns;
  do {
    ns = (s & ~k_scheduled) | k_running;
  } while (
      !t->state.compare_exchange_weak(s, ns, std::memory_order_acq_rel, std::memory_order_acquire));
  if (ns & k_cancelled) {
    cancel(t);
    return;
  }
  tls.current_task = t;
  coop::refill();
  resume_chain(t->resume_point);
  tls.current_task = nullptr;
  if (tls.finished) {
    tls.finished = false;
    core_.complete(t, k_frame_gone | k_result_stored);
    return;
  }
  const bool yielded = std::exchange(tls.yielded, false);
  after_suspend(t, yielded);
  yielded_alone_ = yielded && core_.worker_count() > 1 && queue_.size() == 1 &&
                   lifo_.load(std::memory_order_relaxed) == nullptr;
}

void worker::after_suspend(task_header* t, bool yielded) {
  uint32_t s = t->state.load(std::memory_order_acquire);
  uint32_t ns;
  do {
    if (s & k_cancelled) {
      cancel(t);
      return;
    }
    ns = (s & k_notified) || yielded ? (s & ~(k_running | k_notified)) | k_scheduled
                                     : s & ~k_running;
  } while (
      !t->state.compare_exchange_weak(s, ns, std::memory_order_acq_rel, std::memory_order_acquire));
  if (ns & k_scheduled) schedule_local(t, true);
}

void worker::cancel(task_header* t) {
  // We own t (it is marked running). A gRPC operation that still holds the frame must finish
  // first: ask it to, and wait for its completion to wake the task again.
  if (cancel_hook* hook = t->hook.load(std::memory_order_acquire)) {
    if (!(t->state.fetch_or(k_cancel_hooked, std::memory_order_acq_rel) & k_cancel_hooked)) {
      hook->request_cancel(hook);
    }
    uint32_t s = t->state.load(std::memory_order_acquire);
    uint32_t ns;
    do {
      ns = (s & k_notified) ? (s & ~(k_running | k_notified)) | k_scheduled : s & ~k_running;
    } while (!t->state.compare_exchange_weak(s, ns, std::memory_order_acq_rel,
                                             std::memory_order_acquire));
    if (ns & k_scheduled) schedule_local(t, true);
    return;
  }
  // Destroying the frame runs the destructors of every suspended awaiter: they unregister from
  // their primitives and give back what they held. The header survives (the runtime's reference).
  task_header* saved = std::exchange(tls.current_task, t);
  t->root().destroy();
  tls.current_task = saved;
  core_.complete(t, 0);
}

void worker::park() {
  // Under load, the driver usually has events ready: take them without the parking protocol.
  if (poll_driver() && has_local_work()) return;
  if (has_local_work()) return;
  bool last_searcher = core_.idle_.transition_to_parked(index_, searching_);
  searching_ = false;
  if (last_searcher) core_.notify_if_work_pending();
  for (;;) {
    if (core_.exiting() || should_leave()) {
      core_.idle_.unpark_self(index_);
      return;
    }
    if (!core_.try_auto_advance(index_)) {
      // Announce the deadline before reading the timers: an insert that publishes an earlier one
      // after our read then finds us parked with a later one, and wakes us (timer_inserted).
      parked_until_.store(k_parked_without_deadline, std::memory_order_seq_cst);
      const std::optional<clock::time_point> deadline = core_.park_deadline();
      if (deadline) parked_until_.store(deadline->time_since_epoch().count());
      in_driver_ = true;
      driver_->park(core_.steady_deadline(deadline));
      in_driver_ = false;
      parked_until_.store(k_not_parked, std::memory_order_relaxed);
    }
    fire_timers();
    if (has_local_work()) {
      if (!core_.idle_.unpark_self(index_)) searching_ = true;
      notify_if_surplus();
      return;
    }
    if (!core_.idle_.is_parked(index_)) {
      searching_ = true;  // another worker woke us to look for work
      return;
    }
  }
}

}  // namespace detail

// --------------------------------------------------------------------------------- runtime_core

runtime_core::runtime_core(runtime_options options)
    : options_(std::move(options)),
      idle_(detail::worker_count_of(options_)),
      blocking_(options_.max_blocking_threads, options_.blocking_keep_alive,
                options_.thread_name.substr(0, 11) + "-blk"),
      blocking_admission_(options_.max_blocking_threads + options_.blocking_queue) {
  if (options_.start_paused) clock_.pause();
  const int n = detail::worker_count_of(options_);
  workers_.reserve(n);
  for (int i = 0; i < n; ++i) {
    std::unique_ptr<driver> d =
        options_.make_driver ? options_.make_driver(i) : std::make_unique<plain_driver>();
    workers_.push_back(std::make_unique<detail::worker>(*this, i, std::move(d)));
  }
}

runtime_core::~runtime_core() { shutdown(); }

void runtime_core::start() {
  for (auto& w : workers_) w->start(options_.thread_name);
}

void runtime_core::lend_seat() {
  std::unique_lock lock(seat_mu_);
  seat_lent_ = true;
  seat_cv_.notify_all();
  // Until the caller gives it back, even at shutdown: the caller leaves its loop once the runtime
  // exits, and the worker must not run beside it meanwhile.
  seat_cv_.wait(lock, [&] { return !seat_lent_; });
}

bool runtime_core::take_seat() {
  caller_mu_.lock();  // until give_seat_back, or released here on failure
  workers_[0]->request_seat();
  std::unique_lock lock(seat_mu_);
  seat_cv_.wait(lock, [&] { return seat_lent_ || exiting(); });
  if (seat_lent_) return true;
  workers_[0]->release_seat();  // the runtime has exited: nobody is left to lend it
  lock.unlock();
  caller_mu_.unlock();
  return false;
}

void runtime_core::give_seat_back() {
  {
    std::lock_guard lock(seat_mu_);
    workers_[0]->release_seat();
    seat_lent_ = false;
  }
  seat_cv_.notify_all();
  caller_mu_.unlock();
}

bool runtime_core::is_current() const {
  return detail::tls.current_worker != nullptr && &detail::tls.current_worker->core() == this;
}

void runtime_core::spawn(detail::task_header* t) {
  t->sched = this;
  t->resume_point = t->root();
  // Not yet visible to any other thread: plain stores. The creator's reference becomes the
  // runtime's; the second is the join handle's.
  t->refs.store(2, std::memory_order_relaxed);
  t->state.store((t->state.load(std::memory_order_relaxed) & detail::k_immutable_bits) |
                     detail::k_scheduled | detail::k_join_interest,
                 std::memory_order_relaxed);
  if (!owned_.insert(t)) t->state.fetch_or(detail::k_cancelled, std::memory_order_relaxed);
  schedule(t, false);
}

void runtime_core::schedule(detail::task_header* t, bool yielded) {
  detail::worker* w = detail::tls.current_worker;
  if (w != nullptr && &w->core() == this) {
    w->schedule_local(t, yielded);
    return;
  }
  inject_.push(t);
  notify_parked();
}

void runtime_core::complete(detail::task_header* t, uint32_t outcome_bits) {
  const bool last_at_shutdown = owned_.remove(t);
  uint32_t s = t->state.load(std::memory_order_acquire);
  uint32_t ns;
  do {
    ns = (s & ~(detail::k_running | detail::k_notified | detail::k_scheduled)) |
         detail::k_complete | outcome_bits;
  } while (
      !t->state.compare_exchange_weak(s, ns, std::memory_order_acq_rel, std::memory_order_acquire));
  if (s & detail::k_join_waiter) {
    detail::task_header* waiter = t->join_waiter;
    detail::wake(waiter);
    waiter->release();
  }
  t->release();  // the runtime's reference; frees the task if the handle is gone
  if (last_at_shutdown) {
    std::lock_guard lock(done_mu_);
    done_cv_.notify_all();
  }
}

void runtime_core::notify_parked() {
  int id = idle_.worker_to_notify();
  if (id >= 0) workers_[id]->unpark();
}

void runtime_core::notify_if_work_pending() {
  for (auto& w : workers_) {
    if (!w->queue().empty()) {
      notify_parked();
      return;
    }
  }
  if (!inject_.empty()) notify_parked();
}

std::optional<clock::time_point> runtime_core::park_deadline() const {
  if (clock_.paused()) return std::nullopt;  // a paused clock moves only by advance()
  return timers_.next_deadline();
}

std::optional<driver::time_point> runtime_core::steady_deadline(
    std::optional<clock::time_point> deadline) const {
  if (!deadline) return std::nullopt;
  // Timer deadlines are in clock time, which may be offset from the steady clock after a resume.
  return std::chrono::steady_clock::now() + (*deadline - clock_.now());
}

void runtime_core::timer_inserted(clock::time_point deadline) {
  // The new earliest deadline: a worker parked until later would sleep through it.
  const int64_t at = deadline.time_since_epoch().count();
  for (auto& w : workers_) {
    if (w->parked_until() > at) w->unpark();
  }
}

bool runtime_core::try_auto_advance(int worker) {
  if (!clock_.paused() || !options_.auto_advance) return false;
  // One advance at a time, and none while the tasks an advance woke have not run: every worker
  // still counts as parked until the one that fired them returns to its queue, and a second
  // advance meanwhile would jump the clock past deadlines those tasks are about to set.
  std::lock_guard lock(advance_mu_);
  if (advancing_worker_ != -1 && advancing_worker_ != worker) return false;
  advancing_worker_ = -1;  // the worker that advanced is back: its woken tasks have run
  // Nothing to run is not yet "idle" while a blocking closure may still wake a task (Tokio's rule).
  if (idle_.unparked() != 0 || blocking_.in_flight() != 0) return false;
  auto next = timers_.next_deadline();
  if (!next) return false;
  clock_.advance_to(*next);
  if (timers_.fire_due(clock_.now()) == 0) return false;
  advancing_worker_ = worker;
  return true;
}

std::size_t runtime_core::advance_clock(clock::duration d) {
  clock_.advance(d);
  return timers_.fire_due(clock_.now());
}

void runtime_core::shutdown() {
  if (is_current()) {
    std::fprintf(stderr, "shoal::rt: runtime shutdown called from one of its own workers\n");
    std::abort();
  }
  {
    std::unique_lock lock(done_mu_);
    if (stopped_) return;
    if (!shutting_down_.exchange(true)) {
      lock.unlock();
      owned_.close_and_abort_all();
      lock.lock();
    }
    done_cv_.wait(lock, [&] { return owned_.empty(); });
    if (stopped_) return;
    stopped_ = true;
  }
  // Every task is gone, so no one awaits a blocking closure any more: those not started are
  // dropped; running ones are waited for (a blocking call cannot be interrupted).
  blocking_admission_.close();
  blocking_.shutdown();
  {
    std::lock_guard lock(seat_mu_);
    exiting_.store(true, std::memory_order_release);
  }
  seat_cv_.notify_all();
  for (auto& w : workers_) w->unpark();
  for (auto& w : workers_) w->join();
}

}  // namespace shoal::rt
