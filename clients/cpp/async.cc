// The coroutine API: each call is started on the current worker's completion queue and awaited,
// so the task is suspended (not the thread) while the call is in flight.
#include "clients/cpp/calls.h"
#include "clients/cpp/client.h"
#include "runtime/grpc/completion_queue_driver.h"
#include "runtime/grpc/operation.h"
#include "runtime/time/sleep.h"

namespace shoal::client {

namespace rtg = rt::grpc;

template <class Resp, class Prepare>
rt::task<grpc::Status> client::on_cluster_async(bool read, Prepare prepare, Resp* resp) {
  grpc::Status s;
  int pauses = 0;
  const int tries = attempts();
  for (int attempt = 0; attempt < tries; ++attempt) {
    const std::size_t i = current_.load();
    grpc::ClientContext ctx;
    detail::set_deadline(ctx, options_);
    auto rpc = prepare(endpoint_at(i), &ctx, rtg::completion_queue_driver::current_queue());
    rpc->StartCall();
    (void)co_await rtg::async_op(&ctx, [&](void* tag) { rpc->Finish(resp, &s, tag); });
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE) co_return s;
    const auto pause = after_unavailable(i, ctx, s, read, &pauses);
    if (!pause) co_return s;
    if (pause->count() > 0) co_await rt::sleep(*pause);
  }
  co_return s;
}

rt::task<absl::StatusOr<std::optional<v1::Entry>>> client::get_async(std::string key) {
  v1::GetRequest req;
  req.set_key(std::move(key));
  v1::GetResponse resp;
  const grpc::Status s = co_await on_cluster_async(
      true,
      [&](endpoint& e, grpc::ClientContext* c, grpc::CompletionQueue* cq) {
        return e.kv->PrepareAsyncGet(c, req, cq);
      },
      &resp);
  if (!s.ok()) co_return to_status(s);
  if (!resp.found()) co_return std::optional<v1::Entry>();
  co_return std::optional<v1::Entry>(std::move(*resp.mutable_entry()));
}

rt::task<absl::StatusOr<put_result>> client::put_async(std::string key, std::string value,
                                                       put_options o) {
  const v1::PutRequest req = detail::put_request(key, value, o);
  v1::PutResponse resp;
  const grpc::Status s = co_await on_cluster_async(
      false,
      [&](endpoint& e, grpc::ClientContext* c, grpc::CompletionQueue* cq) {
        return e.kv->PrepareAsyncPut(c, req, cq);
      },
      &resp);
  if (!s.ok()) co_return to_status(s);
  co_return detail::put_reply(resp);
}

rt::task<absl::StatusOr<delete_result>> client::remove_async(std::string key, delete_options o) {
  const v1::DeleteRequest req = detail::delete_request(key, o);
  v1::DeleteResponse resp;
  const grpc::Status s = co_await on_cluster_async(
      false,
      [&](endpoint& e, grpc::ClientContext* c, grpc::CompletionQueue* cq) {
        return e.kv->PrepareAsyncDelete(c, req, cq);
      },
      &resp);
  if (!s.ok()) co_return to_status(s);
  co_return detail::delete_reply(resp);
}

rt::task<absl::StatusOr<int64_t>> client::increment_async(std::string key, int64_t delta) {
  v1::IncrementRequest req;
  req.set_key(std::move(key));
  req.set_delta(delta);
  v1::IncrementResponse resp;
  const grpc::Status s = co_await on_cluster_async(
      false,
      [&](endpoint& e, grpc::ClientContext* c, grpc::CompletionQueue* cq) {
        return e.kv->PrepareAsyncIncrement(c, req, cq);
      },
      &resp);
  if (!s.ok()) co_return to_status(s);
  co_return resp.value();
}

rt::task<absl::StatusOr<v1::RangeResponse>> client::range_page_async(range_options o,
                                                                     std::string continuation) {
  const v1::RangeRequest req = detail::range_request(o, continuation);
  v1::RangeResponse resp;
  const grpc::Status s = co_await on_cluster_async(
      true,
      [&](endpoint& e, grpc::ClientContext* c, grpc::CompletionQueue* cq) {
        return e.kv->PrepareAsyncRange(c, req, cq);
      },
      &resp);
  if (!s.ok()) co_return to_status(s);
  co_return resp;
}

async_watcher::~async_watcher() {
  // No operation is pending between calls to next(): cancelling is enough to end the stream.
  if (context_) context_->TryCancel();
}

rt::task<absl::StatusOr<v1::Event>> async_watcher::next() {
  int failures = 0;
  while (!progress_.has_event()) {
    bool streaming = reader_ != nullptr;
    if (!streaming) {
      if (progress_.compacted()) co_return progress_.compacted_error();
      const v1::WatchRequest req = progress_.request();
      context_ = std::make_unique<grpc::ClientContext>();
      // As the blocking watcher does: a resumed watch on the only replica waits for it.
      context_->set_wait_for_ready(reconnects_ > 0 && client_->endpoint_count() == 1);
      opened_on_ = client_->current_.load();
      reader_ = client_->endpoint_at(opened_on_)
                    .kv->PrepareAsyncWatch(context_.get(), req,
                                           rtg::completion_queue_driver::current_queue());
      streaming =
          co_await rtg::async_op(context_.get(), [&](void* tag) { reader_->StartCall(tag); });
    }
    if (streaming) {
      v1::WatchResponse resp;
      const bool got =
          co_await rtg::async_op(context_.get(), [&](void* tag) { reader_->Read(&resp, tag); });
      if (got) {
        failures = 0;
        progress_.absorb(resp);
        continue;
      }
    }
    grpc::Status end;
    (void)co_await rtg::async_op(context_.get(), [&](void* tag) { reader_->Finish(&end, tag); });
    reader_.reset();
    context_.reset();
    if (progress_.compacted()) continue;
    if (!detail::watch_progress::resumable(end) || ++failures > client_->opts().max_attempts) {
      co_return to_status(end);
    }
    // Its replica went away: the next one serves the same revisions.
    if (end.error_code() == grpc::StatusCode::UNAVAILABLE) client_->move_past(opened_on_);
    const auto delay = detail::backoff(client_->opts(), failures - 1);
    if (progress_.options().on_retry) progress_.options().on_retry(to_status(end), delay);
    co_await rt::sleep(delay);
    ++reconnects_;
  }
  co_return progress_.take_event();
}

}  // namespace shoal::client
