#include "clients/cpp/pipeline.h"

#include <thread>
#include <utility>

#include "clients/cpp/calls.h"
#include "clients/cpp/client.h"

namespace shoal::client {
namespace {

// The leader a reply's refusal names (empty: none known), if its replica refused the request
// for not leading (nothing applied).
std::optional<std::string> refused_for_not_leading(const v1::PipelineResponse& r) {
  const v1::OpError* e = r.has_error()            ? &r.error()
                         : r.result().has_error() ? &r.result().error()
                                                  : nullptr;
  if (e == nullptr || !e->has_leader()) return std::nullopt;
  return e->leader();
}

bool writes(const v1::Op& op) { return op.has_put() || op.has_delete_() || op.has_increment(); }

}  // namespace

pipeline::pipeline(v1::KV::Stub& stub) { open(stub); }

pipeline::pipeline(client& owner) : owner_(&owner), replica_(owner.current_.load()) {
  open(*owner.endpoint_at(replica_).kv);
}

void pipeline::open(v1::KV::Stub& stub) {
  stream_.reset();  // it refers to the context
  ctx_ = std::make_unique<grpc::ClientContext>();
  stream_ = stub.Pipeline(ctx_.get());
  sent_ = 0;
  received_ = 0;
  closed_ = false;
  finished_ = false;
  final_ = absl::OkStatus();
  never_connected_ = false;
}

pipeline::~pipeline() {
  if (finished_) return;
  ctx_->TryCancel();  // abandoning a stream with replies pending must not wait for them
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
    const grpc::Status st = stream_->Finish();
    never_connected_ = client::never_sent(st);
    final_ = to_status(st);
  }
  return final_;
}

bool pipeline::may_move(int moves) const { return owner_ != nullptr && moves < owner_->attempts(); }

void pipeline::reopen(const std::optional<std::string>& leader, int* pauses) {
  std::chrono::milliseconds pause{0};
  if (leader) {
    pause = owner_->follow_leader(replica_, *leader, pauses);
  } else {
    owner_->move_past(replica_);
    pause = detail::backoff(owner_->opts(), (*pauses)++);
  }
  if (pause.count() > 0) std::this_thread::sleep_for(pause);
  replica_ = owner_->current_.load();
  open(*owner_->endpoint_at(replica_).kv);
}

absl::Status pipeline::run(const std::vector<v1::Op>& ops, std::size_t window,
                           const std::function<void(const v1::PipelineResponse&)>& on_reply) {
  if (window == 0) window = 1;
  std::size_t done = 0;  // operations whose reply the caller has
  int moves = 0;
  int pauses = 0;
  const auto hand_over = [&](v1::PipelineResponse& r) {
    r.set_id(++done);
    on_reply(r);
  };
  for (;;) {
    std::size_t next = done;  // the next operation to send on this stream
    std::optional<v1::PipelineResponse> refused;
    absl::Status broke;
    while (done < ops.size()) {
      while (next < ops.size() && next - done < window) {
        if (auto id = send(ops[next]); !id.ok()) {
          broke = id.status();
          break;
        }
        ++next;
      }
      if (!broke.ok()) break;
      auto r = receive();
      if (!r.ok()) {
        broke = r.status();
        break;
      }
      if (refused_for_not_leading(*r) && may_move(moves)) {
        refused = std::move(*r);
        break;
      }
      hand_over(*r);
    }
    if (!broke.ok()) {
      // No connection was made: nothing of this stream reached a server, so all of it may go to
      // the next replica. Any other break leaves writes whose outcome is unknown.
      if (!never_connected_ || !may_move(moves)) return broke;
      ++moves;
      reopen(std::nullopt, &pauses);
      continue;
    }
    if (!refused) return close();
    // The replica refused operation `done` for not leading. The replies to what was sent after
    // it come first: unless every write among them was refused so too (leadership may have moved
    // in mid-stream), sending the refused ones again could apply a write twice or out of order,
    // so every reply is handed over as it came.
    const std::optional<std::string> leader = refused_for_not_leading(*refused);
    closed_ = true;
    stream_->WritesDone();
    std::vector<v1::PipelineResponse> after;
    bool resend = true;
    absl::Status drained;
    while (outstanding() > 0) {
      auto r = receive();
      if (!r.ok()) {  // what was sent after these is unknown: the caller has what came
        drained = r.status();
        resend = false;
        break;
      }
      const v1::Op& op = ops[done + 1 + after.size()];
      if (writes(op) && !refused_for_not_leading(*r)) resend = false;
      after.push_back(std::move(*r));
    }
    (void)finish();  // every reply is read: how the refused stream ended changes nothing
    if (!resend) {
      hand_over(*refused);
      for (auto& r : after) hand_over(r);
    }
    if (!drained.ok()) return drained;
    if (done == ops.size()) return absl::OkStatus();
    ++moves;
    reopen(leader, &pauses);
  }
}

}  // namespace shoal::client
