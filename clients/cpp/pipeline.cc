#include "clients/cpp/pipeline.h"

#include "clients/cpp/client.h"

namespace shoal::client {

pipeline::pipeline(v1::KV::Stub& stub) : stream_(stub.Pipeline(&ctx_)) {}

pipeline::~pipeline() {
  if (finished_) return;
  ctx_.TryCancel();  // abandoning a stream with replies pending must not wait for them
  (void)finish();
}

absl::StatusOr<uint64_t> pipeline::send(const v1::Op& op) {
  v1::PipelineRequest req;
  *req.mutable_op() = op;
  return send_request(req);
}

absl::StatusOr<uint64_t> pipeline::send(const v1::BatchRequest& batch) {
  v1::PipelineRequest req;
  *req.mutable_batch() = batch;
  return send_request(req);
}

absl::StatusOr<uint64_t> pipeline::send_request(v1::PipelineRequest& req) {
  if (closed_) return absl::FailedPreconditionError("the pipeline is closed for sending");
  const uint64_t id = sent_.load() + 1;
  req.set_id(id);
  if (!stream_->Write(req)) {
    // The stream broke: its status says why.
    absl::Status st = finish();
    return st.ok() ? absl::UnavailableError("the pipeline stream ended") : st;
  }
  sent_.store(id);
  return id;
}

absl::StatusOr<v1::PipelineResponse> pipeline::receive() {
  if (outstanding() == 0) return absl::FailedPreconditionError("no request is waiting for a reply");
  v1::PipelineResponse resp;
  if (!stream_->Read(&resp)) {
    absl::Status st = finish();
    return st.ok() ? absl::DataLossError("the stream ended before every reply came") : st;
  }
  received_.fetch_add(1);
  if (resp.id() != received_.load()) {
    return absl::InternalError("a reply came out of order");
  }
  return resp;
}

absl::Status pipeline::close() {
  if (!closed_.exchange(true)) stream_->WritesDone();
  // Replies nobody will read: drain them, so the stream can end.
  v1::PipelineResponse drop;
  while (!finished_ && stream_->Read(&drop)) received_.fetch_add(1);
  return finish();
}

absl::Status pipeline::finish() {
  if (!finished_.exchange(true)) {
    closed_ = true;
    final_ = to_status(stream_->Finish());
  }
  return final_;
}

absl::Status pipeline::run(const std::vector<v1::Op>& ops, std::size_t window,
                           const std::function<void(const v1::PipelineResponse&)>& on_reply) {
  if (window == 0) window = 1;
  for (const v1::Op& op : ops) {
    if (outstanding() >= window) {
      auto r = receive();
      if (!r.ok()) return r.status();
      on_reply(*r);
    }
    if (auto id = send(op); !id.ok()) return id.status();
  }
  while (outstanding() > 0) {
    auto r = receive();
    if (!r.ok()) return r.status();
    on_reply(*r);
  }
  return close();
}

}  // namespace shoal::client
