#include "clients/cpp/watcher.h"

#include "clients/cpp/calls.h"
#include "clients/cpp/client.h"

namespace shoal::client {

watcher::~watcher() {
  cancel();
  if (reader_) (void)reader_->Finish();
}

void watcher::cancel() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
  // Also before the call exists: gRPC then cancels it as it starts.
  if (context_) context_->TryCancel();
  cancelled_cv_.notify_all();
}

absl::Status watcher::open() {
  const v1::WatchRequest req = progress_.request();
  grpc::ClientContext* context = nullptr;
  {
    std::lock_guard lock(mu_);
    if (cancelled_) return absl::CancelledError("the watch was cancelled");
    context_ = std::make_unique<grpc::ClientContext>();  // no deadline: a watch lasts
    // A resumed watch waits for the channel to reconnect rather than failing at once; the first
    // open fails fast, so that a server that is down is reported.
    context_->set_wait_for_ready(reconnects_ > 0 && client_->endpoint_count() == 1);
    context = context_.get();
  }
  opened_on_ = client_->current_.load();
  // Not under the lock: opening blocks until the channel connects (wait-for-ready), and cancel()
  // must be able to take the lock and cancel the context meanwhile. Only this thread replaces
  // context_, so the pointer stays valid.
  reader_ = client_->endpoint_at(opened_on_).kv->Watch(context, req);
  return absl::OkStatus();
}

bool watcher::wait_unless_cancelled(std::chrono::milliseconds delay) {
  std::unique_lock lock(mu_);
  return !cancelled_cv_.wait_for(lock, delay, [this] { return cancelled_; });
}

absl::StatusOr<v1::Event> watcher::next() {
  int failures = 0;
  while (!progress_.has_event()) {
    if (!reader_) {
      if (progress_.compacted()) return progress_.compacted_error();
      if (auto s = open(); !s.ok()) return s;
    }
    v1::WatchResponse resp;
    if (reader_->Read(&resp)) {
      failures = 0;
      progress_.absorb(resp);  // a final response is followed by the stream's end
      continue;
    }
    const grpc::Status end = reader_->Finish();
    reader_.reset();
    {
      std::lock_guard lock(mu_);
      if (cancelled_) return absl::CancelledError("the watch was cancelled");
    }
    if (progress_.compacted()) continue;
    if (!detail::watch_progress::resumable(end) || ++failures > client_->opts().max_attempts) {
      return to_status(end);
    }
    // Its replica went away: the next one serves the same revisions.
    if (end.error_code() == grpc::StatusCode::UNAVAILABLE) client_->move_past(opened_on_);
    const auto delay = detail::backoff(client_->opts(), failures - 1);
    if (progress_.options().on_retry) progress_.options().on_retry(to_status(end), delay);
    if (!wait_unless_cancelled(delay)) return absl::CancelledError("the watch was cancelled");
    ++reconnects_;
  }
  return progress_.take_event();
}

}  // namespace shoal::client
