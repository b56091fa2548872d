#include "clients/cpp/watcher.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "clients/cpp/calls.h"
#include "clients/cpp/client.h"

namespace shoal::client {

watcher::watcher(client* c, watch_options o) : client_(c), options_(std::move(o)) {
  // The first event wanted: the revision after last_revision_.
  if (options_.from_revision > 0) last_revision_ = options_.from_revision - 1;
}

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
  v1::WatchRequest req;
  req.set_key(options_.key);
  req.set_prefix(options_.prefix);
  req.set_prev_kv(options_.prev_kv);
  if (options_.no_put) req.add_filters(v1::NO_PUT);
  if (options_.no_delete) req.add_filters(v1::NO_DELETE);
  req.set_progress_interval_ms(options_.progress_interval_ms);
  // Resuming: from the revision after the last delivered one, in the store it came from.
  if (last_revision_ > 0 || options_.from_revision > 0) {
    req.set_start_revision(last_revision_ + 1);
    req.set_store_id(store_id_);
  }
  std::lock_guard lock(mu_);
  if (cancelled_) return absl::CancelledError("the watch was cancelled");
  context_ = std::make_unique<grpc::ClientContext>();  // no deadline: a watch lasts
  // A resumed watch waits for the channel to reconnect rather than failing at once; the first
  // open fails fast, so that a server that is down is reported.
  context_->set_wait_for_ready(reconnects_ > 0);
  reader_ = client_->kv_stub().Watch(context_.get(), req);
  return absl::OkStatus();
}

bool watcher::read() {
  v1::WatchResponse resp;
  if (!reader_->Read(&resp)) return false;
  if (store_id_.empty()) store_id_ = resp.header().store_id();
  if (resp.compacted()) {
    compacted_ = true;
    compact_revision_ = resp.compact_revision();
    return false;
  }
  for (auto& e : *resp.mutable_events()) {
    last_revision_ = e.revision();
    buffered_.push_back(std::move(e));
  }
  if (resp.progress()) last_revision_ = std::max(last_revision_, resp.header().revision());
  if (resp.canceled()) {
    // The server let the watcher go (it fell behind, or the server is draining): every revision
    // before resume_revision was delivered, so resuming there loses nothing.
    last_revision_ = std::max(last_revision_, resp.resume_revision() - 1);
    return false;
  }
  return true;
}

absl::StatusOr<v1::Event> watcher::next() {
  int failures = 0;
  while (buffered_.empty()) {
    if (compacted_) {
      return absl::OutOfRangeError(absl::StrCat(
          "watch compacted: revisions before ", compact_revision_,
          " are no longer kept (or the server restarted); Range again and watch from its "
          "revision + 1"));
    }
    if (!reader_) {
      if (auto s = open(); !s.ok()) return s;
    }
    if (read()) {
      failures = 0;
      continue;
    }
    if (!buffered_.empty() || compacted_) break;  // deliver what came before the end first
    const grpc::Status end = reader_->Finish();
    reader_.reset();
    {
      std::lock_guard lock(mu_);
      if (cancelled_) return absl::CancelledError("the watch was cancelled");
    }
    if (compacted_) continue;
    // Anything else is transient for a watch: reopen from where we are, with backoff while the
    // server stays unreachable.
    const auto code = end.error_code();
    if (code != grpc::StatusCode::OK && code != grpc::StatusCode::UNAVAILABLE &&
        code != grpc::StatusCode::CANCELLED && code != grpc::StatusCode::INTERNAL &&
        code != grpc::StatusCode::UNKNOWN) {
      return to_status(end);
    }
    if (++failures > client_->opts().max_attempts) return to_status(end);
    std::this_thread::sleep_for(detail::backoff(client_->opts(), failures - 1));
    ++reconnects_;
  }
  if (buffered_.empty()) return next();
  v1::Event e = std::move(buffered_.front());
  buffered_.pop_front();
  return e;
}

}  // namespace shoal::client
