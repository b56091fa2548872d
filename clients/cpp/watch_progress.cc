#include "clients/cpp/watch_progress.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace shoal::client::detail {

watch_progress::watch_progress(watch_options o) : options_(std::move(o)) {
  if (options_.from_revision > 0) last_revision_ = options_.from_revision - 1;
}

v1::WatchRequest watch_progress::request() const {
  v1::WatchRequest req;
  req.set_key(options_.key);
  req.set_prefix(options_.prefix);
  req.set_prev_kv(options_.prev_kv);
  if (options_.no_put) req.add_filters(v1::NO_PUT);
  if (options_.no_delete) req.add_filters(v1::NO_DELETE);
  req.set_progress_interval_ms(options_.progress_interval_ms);
  if (last_revision_ > 0 || options_.from_revision > 0) {
    req.set_start_revision(last_revision_ + 1);
    req.set_store_id(store_id_);
  }
  return req;
}

bool watch_progress::absorb(v1::WatchResponse& r) {
  if (store_id_.empty()) store_id_ = r.header().store_id();
  if (r.compacted()) {
    compacted_ = true;
    compact_revision_ = r.compact_revision();
    return false;
  }
  for (auto& e : *r.mutable_events()) {
    last_revision_ = e.revision();
    events_.push_back(std::move(e));
  }
  if (r.progress()) last_revision_ = std::max(last_revision_, r.header().revision());
  if (r.canceled()) {
    // Every revision before resume_revision has been delivered.
    last_revision_ = std::max(last_revision_, r.resume_revision() - 1);
    return false;
  }
  return true;
}

bool watch_progress::resumable(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::OK:           // the server ended the stream (it let the watcher go)
    case grpc::StatusCode::UNAVAILABLE:  // the connection dropped, or the server is draining
    case grpc::StatusCode::ABORTED:      // the watcher fell behind
    case grpc::StatusCode::CANCELLED:    // a proxy or the transport gave up on the stream
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::UNKNOWN:
      return true;
    default:
      return false;
  }
}

v1::Event watch_progress::take_event() {
  v1::Event e = std::move(events_.front());
  events_.pop_front();
  return e;
}

absl::Status watch_progress::compacted_error() const {
  return absl::OutOfRangeError(
      absl::StrCat("watch compacted: revisions before ", compact_revision_,
                   " are no longer kept (or the server restarted); Range again and watch from its "
                   "revision + 1"));
}

}  // namespace shoal::client::detail
