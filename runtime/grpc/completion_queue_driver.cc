#include "runtime/grpc/completion_queue_driver.h"

#include <grpc/support/time.h>
#include <grpcpp/server_builder.h>

#include <chrono>
#include <utility>

namespace shoal::rt::grpc {
namespace {

// Events handled per poll() before the worker goes back to its tasks.
constexpr int k_max_events_per_poll = 64;

thread_local completion_queue_driver* tls_driver = nullptr;

// How often a worker makes the extra call that reads its sockets. gRPC's AsyncNext returns a
// queued completion without polling the network, and a completion queued while nobody polls
// "kicks" the queue, so that the next zero-deadline AsyncNext takes the kick and returns without
// polling either. A task whose operations keep completing at once (a Pipeline stream whose
// requests are already buffered, writing replies that are accepted at once) queues such a
// completion between every two polls, so the worker read no other connection until the stream's
// burst ran dry: a concurrent Get waited behind a whole burst of 16 Batches (p99 3x-5x of quiet).
// Each poll() that drains the queue now makes one more call, which reads the sockets; at most
// once per interval, which costs nothing measurable (docs/benchmarks.md). A queue that still holds
// completions after k_max_events_per_poll is drained on the worker's next poll.
constexpr std::chrono::microseconds k_io_poll_interval{25};

gpr_timespec to_gpr(std::optional<driver::time_point> deadline) {
  if (!deadline) return gpr_inf_future(GPR_CLOCK_MONOTONIC);
  auto left = *deadline - std::chrono::steady_clock::now();
  if (left <= decltype(left)::zero()) return gpr_time_0(GPR_CLOCK_MONOTONIC);
  return gpr_time_add(
      gpr_now(GPR_CLOCK_MONOTONIC),
      gpr_time_from_nanos(std::chrono::duration_cast<std::chrono::nanoseconds>(left).count(),
                          GPR_TIMESPAN));
}

}  // namespace

completion_queue_driver::completion_queue_driver(std::unique_ptr<::grpc::CompletionQueue> cq,
                                                 bool server)
    : cq_(std::move(cq)), server_(server) {
  wake_op_.on_complete = &on_wake;
  wake_op_.driver = this;
}

std::unique_ptr<completion_queue_driver> completion_queue_driver::adopt(
    std::unique_ptr<::grpc::CompletionQueue> cq) {
  const bool server = dynamic_cast<::grpc::ServerCompletionQueue*>(cq.get()) != nullptr;
  return std::unique_ptr<completion_queue_driver>(
      new completion_queue_driver(std::move(cq), server));
}

std::unique_ptr<completion_queue_driver> completion_queue_driver::create() {
  return adopt(std::make_unique<::grpc::CompletionQueue>());
}

completion_queue_driver::~completion_queue_driver() = default;

void completion_queue_driver::attach() { previous_ = std::exchange(tls_driver, this); }
void completion_queue_driver::detach() { tls_driver = std::exchange(previous_, nullptr); }

::grpc::CompletionQueue* completion_queue_driver::current_queue() {
  return tls_driver ? tls_driver->cq_.get() : nullptr;
}

::grpc::ServerCompletionQueue* completion_queue_driver::current_server_queue() {
  if (tls_driver == nullptr || !tls_driver->server_) return nullptr;
  return static_cast<::grpc::ServerCompletionQueue*>(tls_driver->cq_.get());
}

void completion_queue_driver::on_wake(operation* op, bool) {
  auto* self = static_cast<wake_operation*>(op)->driver;
  self->alarm_pending_.store(false, std::memory_order_seq_cst);
}

bool completion_queue_driver::next(gpr_timespec deadline, bool* got_event) {
  void* tag = nullptr;
  bool ok = false;
  switch (cq_->AsyncNext(&tag, &ok, deadline)) {
    case ::grpc::CompletionQueue::GOT_EVENT:
      dispatch(tag, ok);
      *got_event = true;
      return true;
    case ::grpc::CompletionQueue::TIMEOUT:
      *got_event = false;
      return true;
    case ::grpc::CompletionQueue::SHUTDOWN:
      *got_event = false;
      return false;
  }
  return false;
}

void completion_queue_driver::park(std::optional<time_point> deadline) {
  bool got = false;
  if (!next(to_gpr(deadline), &got) || !got) return;
  poll();  // take whatever else is ready before going back to the tasks
}

bool completion_queue_driver::poll() {
  bool any = false;
  for (int i = 0; i < k_max_events_per_poll; ++i) {
    bool got = false;
    if (!next(gpr_time_0(GPR_CLOCK_MONOTONIC), &got)) break;
    if (got) {
      any = true;
      continue;
    }
    // The queue is empty, but that call may only have taken a kick: a second one polls the
    // network, at most once per interval.
    const auto now = std::chrono::steady_clock::now();
    if (now - last_io_poll_ < k_io_poll_interval) break;
    last_io_poll_ = now;
    if (!next(gpr_time_0(GPR_CLOCK_MONOTONIC), &got) || !got) break;
    any = true;
  }
  return any;
}

void completion_queue_driver::unpark() {
  // One alarm at a time: the flag is cleared when the alarm's tag is dequeued, after which the
  // worker re-checks its queues, so a wake-up skipped here is never lost.
  if (alarm_pending_.exchange(true, std::memory_order_seq_cst)) return;
  plain_lock lock(closing_mu_);
  if (closed_) return;  // the worker is gone; nothing to wake
  operation* tag = &wake_op_;
  SHOAL_TSAN_RELEASE(tag);
  alarm_.Set(cq_.get(), gpr_time_0(GPR_CLOCK_MONOTONIC), tag);
}

void completion_queue_driver::shutdown() {
  // No task is left. Whatever comes out of the queue now is our wake-up alarm (or, for a server
  // queue, nothing that still has an owner).
  {
    plain_lock lock(closing_mu_);
    closed_ = true;
  }
  cq_->Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq_->Next(&tag, &ok)) {
    if (tag == &wake_op_) on_wake(&wake_op_, ok);
  }
  tls_driver = nullptr;
}

}  // namespace shoal::rt::grpc
