// watcher: a Watch stream that survives dropped connections.
//
// next() returns events in revision order. When the stream breaks (the connection drops, the
// server lags the watcher out, or a proxy restarts), the watcher opens a new one from the revision
// after the last it delivered, with the store id it saw: no gap, no duplicate. If the history no
// longer reaches back that far, or the server restarted with an empty store, next() fails with
// OUT_OF_RANGE and compacted() is true: Range again and watch from its revision + 1.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "shoal/v1/kv.grpc.pb.h"

namespace shoal::client {

class client;

struct watch_options {
  std::string key;
  bool prefix = false;
  uint64_t from_revision = 0;  // 0: from the next change
  bool prev_kv = false;
  bool no_put = false;
  bool no_delete = false;
  uint32_t progress_interval_ms = 0;
};

class watcher {
 public:
  watcher(watcher&&) = delete;
  ~watcher();

  // Blocks for the next event. CANCELLED after cancel(); OUT_OF_RANGE when compacted.
  absl::StatusOr<v1::Event> next();
  // From any thread: ends the stream; next() returns CANCELLED.
  void cancel();

  bool compacted() const { return compacted_; }
  uint64_t compact_revision() const { return compact_revision_; }
  // Every revision up to this one has been delivered (events, or progress when idle).
  uint64_t last_revision() const { return last_revision_; }
  int reconnects() const { return reconnects_; }

 private:
  friend class client;
  watcher(client* c, watch_options o);
  absl::Status open();
  // Reads one response; false when the stream ended (status_ says how).
  bool read();

  client* client_;
  watch_options options_;
  std::mutex mu_;  // guards context_ against cancel() from another thread
  std::unique_ptr<grpc::ClientContext> context_;
  bool cancelled_ = false;
  std::unique_ptr<grpc::ClientReader<v1::WatchResponse>> reader_;
  std::deque<v1::Event> buffered_;
  std::string store_id_;
  uint64_t last_revision_ = 0;
  bool compacted_ = false;
  uint64_t compact_revision_ = 0;
  int reconnects_ = 0;
};

}  // namespace shoal::client
