// driver: what a worker parks on when it has no task to run, and where I/O completions come from.
//
// The scheduler core only needs three things from it: block until woken or a deadline, poll without
// blocking, and wake from another thread. `plain_driver` parks on a condition variable (tests,
// benchmarks, programs without gRPC); `grpc::completion_queue_driver` parks in a completion queue
// and dispatches its tags, which is how gRPC operations resume tasks.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>

namespace shoal::rt {

class driver {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  virtual ~driver() = default;

  // Blocks until unpark(), an event, or `deadline` (none: no limit). Dispatches ready events; an
  // event typically wakes a task, which lands in the calling worker's run queue.
  virtual void park(std::optional<time_point> deadline) = 0;
  // Dispatches events that are ready now. Returns true if it dispatched any.
  virtual bool poll() = 0;
  // Any thread: makes the current or next park() return promptly.
  virtual void unpark() = 0;
  // Called on the thread that is about to run the worker's tasks (the worker thread, or a
  // current_thread runtime's block_on caller), and on that thread when it stops.
  virtual void attach() {}
  virtual void detach() {}
  // Called by the worker thread once no task is left: release what the driver holds.
  virtual void shutdown() {}
};

// Makes worker i's driver. Called once per worker, before the workers start.
using driver_factory = std::function<std::unique_ptr<driver>(int worker_index)>;

}  // namespace shoal::rt
