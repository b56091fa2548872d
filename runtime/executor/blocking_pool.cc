#include "runtime/executor/blocking_pool.h"

#include <pthread.h>

#include <thread>
#include <utility>

namespace shoal::rt::detail {

blocking_pool::blocking_pool(std::size_t max_threads, std::chrono::milliseconds keep_alive,
                             std::string name)
    : max_threads_(max_threads == 0 ? 1 : max_threads),
      keep_alive_(keep_alive),
      name_(std::move(name)) {}

blocking_pool::~blocking_pool() { shutdown(); }

void blocking_pool::submit(blocking_job* job) {
  std::unique_lock lock(mu_);
  if (shutdown_) {
    lock.unlock();
    job->drop(job);
    return;
  }
  in_flight_.fetch_add(1, std::memory_order_acq_rel);
  job->next = nullptr;
  if (tail_ != nullptr) {
    tail_->next = job;
  } else {
    head_ = job;
  }
  tail_ = job;
  ++queued_;
  // An idle thread takes it; when there are more jobs than idle threads, start one more, unless the
  // pool has all it may have (then the job waits for the first thread to finish).
  if (idle_ > 0) work_cv_.notify_one();
  if (idle_ < queued_ && threads_ < max_threads_) {
    ++threads_;
    try {
      std::thread(&blocking_pool::thread_main, this).detach();
    } catch (...) {
      --threads_;  // no thread after all: the job waits for one that exists, or for the next submit
    }
  }
}

void blocking_pool::thread_main() {
  {
    const std::string n = name_.substr(0, 15);
    pthread_setname_np(pthread_self(), n.c_str());
  }
  std::unique_lock lock(mu_);
  for (;;) {
    if (head_ != nullptr) {
      blocking_job* job = head_;
      head_ = job->next;
      if (head_ == nullptr) tail_ = nullptr;
      --queued_;
      lock.unlock();
      job->run(job);
      in_flight_.fetch_sub(1, std::memory_order_acq_rel);
      lock.lock();
      continue;
    }
    if (shutdown_) break;
    ++idle_;
    const bool woke =
        work_cv_.wait_for(lock, keep_alive_, [&] { return head_ != nullptr || shutdown_; });
    --idle_;
    if (!woke) break;  // idle for keep_alive: leave
  }
  // The last touch of the pool: shutdown waits for this, under the same lock.
  --threads_;
  gone_cv_.notify_all();
}

void blocking_pool::shutdown() {
  blocking_job* dropped = nullptr;
  {
    std::unique_lock lock(mu_);
    shutdown_ = true;
    dropped = std::exchange(head_, nullptr);
    tail_ = nullptr;
    queued_ = 0;
    work_cv_.notify_all();
  }
  while (dropped != nullptr) {
    blocking_job* next = dropped->next;
    dropped->drop(dropped);
    in_flight_.fetch_sub(1, std::memory_order_acq_rel);
    dropped = next;
  }
  std::unique_lock lock(mu_);
  gone_cv_.wait(lock, [&] { return threads_ == 0; });
}

std::size_t blocking_pool::threads() const {
  std::lock_guard lock(mu_);
  return threads_;
}

std::size_t blocking_pool::idle_threads() const {
  std::lock_guard lock(mu_);
  return idle_;
}

}  // namespace shoal::rt::detail
