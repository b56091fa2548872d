// completion_queue_driver: a worker that parks in a gRPC completion queue.
//
// Each worker owns one queue and is its only poller. Parking is `AsyncNext(deadline)` (the deadline
// is the runtime's next timer), so completions wake the worker directly and the tasks they resume
// run on the worker that polled them. Wake-ups from other threads are posted with a grpc::Alarm set
// in the past, at most one outstanding per queue.
//
// Server calls need grpc::ServerCompletionQueues, which only ServerBuilder::AddCompletionQueue()
// creates, before the server starts; the driver adopts such a queue:
//
//   std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs = ...;  // from the builder
//   rt::runtime_options o;
//   o.workers = cqs.size();
//   o.make_driver = [&](int i) { return
//   rt::grpc::completion_queue_driver::adopt(std::move(cqs[i])); };
//
// Order at shutdown: Server::Shutdown() (from a thread that is not a worker), then the runtime's
// shutdown (it cancels what is left and waits for every tag), then each driver shuts its queue down
// and drains it on its own worker thread.
#pragma once

#include <grpcpp/alarm.h>
#include <grpcpp/completion_queue.h>

#include <atomic>
#include <chrono>
#include <memory>

#include "runtime/executor/driver.h"
#include "runtime/grpc/operation.h"
#include "runtime/plain_mutex.h"

namespace shoal::rt::grpc {

class completion_queue_driver final : public driver {
 public:
  static std::unique_ptr<completion_queue_driver> adopt(
      std::unique_ptr<::grpc::CompletionQueue> cq);
  // A fresh (client-side) queue.
  static std::unique_ptr<completion_queue_driver> create();

  ~completion_queue_driver() override;

  void attach() override;
  void detach() override;
  void park(std::optional<time_point> deadline) override;
  bool poll() override;
  void unpark() override;
  void shutdown() override;

  ::grpc::CompletionQueue* queue() const { return cq_.get(); }
  // The queue of the worker running the calling task, or null off a completion-queue worker.
  static ::grpc::CompletionQueue* current_queue();
  // As above, when that queue is a server queue (it was adopted from a ServerBuilder).
  static ::grpc::ServerCompletionQueue* current_server_queue();

 private:
  explicit completion_queue_driver(std::unique_ptr<::grpc::CompletionQueue> cq, bool server);
  static void on_wake(operation* op, bool ok);
  // Handles one event. Returns false once the queue is shut down and drained.
  bool next(gpr_timespec deadline, bool* got_event);

  std::unique_ptr<::grpc::CompletionQueue> cq_;
  const bool server_;
  completion_queue_driver* previous_ = nullptr;           // the thread's driver before attach()
  std::chrono::steady_clock::time_point last_io_poll_{};  // see k_io_poll_interval
  ::grpc::Alarm alarm_;
  std::atomic<bool> alarm_pending_{false};
  plain_mutex closing_mu_;  // orders a late unpark() against the queue's shutdown
  bool closed_ ABSL_GUARDED_BY(closing_mu_) = false;
  struct wake_operation : operation {
    completion_queue_driver* driver;
  } wake_op_;
};

}  // namespace shoal::rt::grpc
