// watcher and async_watcher: Watch streams that survive dropped connections.
//
// next() returns events in revision order. When the stream breaks (the connection drops, the
// server lags the watcher out or drains), the watcher opens a new one from the revision after the
// last it delivered, with the store id it saw: no gap, no duplicate. If the history no longer
// reaches back that far, or the server restarted with an empty store, next() fails with
// OUT_OF_RANGE and compacted() is true: Range again and watch from its revision + 1.
//
// watcher blocks its thread; async_watcher's next() is a task on the runtime (completion-queue
// driver), for coroutine code.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "absl/status/statusor.h"
#include "clients/cpp/watch_progress.h"
#include "runtime/task.h"
#include "shoal/v1/kv.grpc.pb.h"

namespace shoal::client {

class client;

class watcher {
 public:
  watcher(watcher&&) = delete;
  ~watcher();

  // Blocks for the next event. CANCELLED after cancel(); OUT_OF_RANGE when compacted.
  absl::StatusOr<v1::Event> next();
  // From any thread: ends the stream; next() returns CANCELLED.
  void cancel();

  bool compacted() const { return progress_.compacted(); }
  uint64_t compact_revision() const { return progress_.compact_revision(); }
  // Every revision up to this one has been delivered (events, or progress when idle).
  uint64_t last_revision() const { return progress_.last_revision(); }
  int reconnects() const { return reconnects_; }

 private:
  friend class client;
  watcher(client* c, watch_options o) : client_(c), progress_(std::move(o)) {}
  absl::Status open();
  // Waits `delay`, or until cancel(); false if cancelled.
  bool wait_unless_cancelled(std::chrono::milliseconds delay);

  client* client_;
  detail::watch_progress progress_;
  std::mutex mu_;  // guards context_ and cancelled_ against cancel() from another thread
  std::condition_variable cancelled_cv_;  // cancel() ends a backoff wait
  std::unique_ptr<grpc::ClientContext> context_;
  bool cancelled_ = false;
  std::unique_ptr<grpc::ClientReader<v1::WatchResponse>> reader_;
  std::size_t opened_on_ = 0;  // the replica the stream is on (client's index)
  int reconnects_ = 0;
};

class async_watcher {
 public:
  async_watcher(async_watcher&&) = default;
  ~async_watcher();

  // The next event. To stop early, abort the task awaiting it (or drop the watcher between
  // calls): the stream is cancelled.
  rt::task<absl::StatusOr<v1::Event>> next();

  bool compacted() const { return progress_.compacted(); }
  uint64_t last_revision() const { return progress_.last_revision(); }
  int reconnects() const { return reconnects_; }

 private:
  friend class client;
  async_watcher(client* c, watch_options o) : client_(c), progress_(std::move(o)) {}

  client* client_;
  detail::watch_progress progress_;
  // Per stream; replaced on every reconnect.
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientAsyncReader<v1::WatchResponse>> reader_;
  std::size_t opened_on_ = 0;  // the replica the stream is on (client's index)
  int reconnects_ = 0;
};

}  // namespace shoal::client
