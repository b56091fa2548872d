// watch_progress: what a watch has delivered and where it resumes — the part of a watch that does
// not depend on how the stream is read (blocking or from a task).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"
#include "shoal/v1/kv.pb.h"

namespace shoal::client {

struct watch_options {
  std::string key;
  bool prefix = false;
  uint64_t from_revision = 0;  // 0: from the next change
  bool prev_kv = false;
  bool no_put = false;
  bool no_delete = false;
  uint32_t progress_interval_ms = 0;
  // Called before each wait to reopen a broken stream: why it broke, and the wait (a CLI says
  // it is retrying; a service may log or count it). On the watcher's thread; must not block.
  std::function<void(const absl::Status& why, std::chrono::milliseconds delay)> on_retry;
};

namespace detail {

class watch_progress {
 public:
  explicit watch_progress(watch_options o);

  // The request for a new stream: from the revision after the last one delivered, in the store it
  // came from (a restarted server then answers compacted instead of replaying another history).
  v1::WatchRequest request() const;
  // Takes one response's events. False when the response ends the stream (compacted, or the
  // server let the watcher go: then resuming loses nothing).
  bool absorb(v1::WatchResponse& r);
  // Whether a stream that ended with this status is worth reopening.
  static bool resumable(const grpc::Status& s);

  bool has_event() const { return !events_.empty(); }
  v1::Event take_event();
  bool compacted() const { return compacted_; }
  uint64_t compact_revision() const { return compact_revision_; }
  absl::Status compacted_error() const;
  uint64_t last_revision() const { return last_revision_; }
  const watch_options& options() const { return options_; }

 private:
  watch_options options_;
  std::deque<v1::Event> events_;
  std::string store_id_;
  uint64_t last_revision_ = 0;
  bool compacted_ = false;
  uint64_t compact_revision_ = 0;
};

}  // namespace detail
}  // namespace shoal::client
