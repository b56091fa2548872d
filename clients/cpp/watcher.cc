#include "clients/cpp/watcher.h"

#include <thread>

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
  if (context_) context_->TryCancel();
}

absl::Status watcher::open() {
  const v1::WatchRequest req = progress_.request();
  std::lock_guard lock(mu_);
  if (cancelled_) return absl::CancelledError("the watch was cancelled");
  context_ = std::make_unique<grpc::ClientContext>();  // no deadline: a watch lasts
  // A resumed watch waits for the channel to reconnect rather than failing at once; the first
  // open fails fast, so that a server that is down is reported.
  context_->set_wait_for_ready(reconnects_ > 0);
  reader_ = client_->kv_stub().Watch(context_.get(), req);
  return absl::OkStatus();
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
    std::this_thread::sleep_for(detail::backoff(client_->opts(), failures - 1));
    ++reconnects_;
  }
  return progress_.take_event();
}

}  // namespace shoal::client
