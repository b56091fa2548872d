// pipeline: one KV/Pipeline stream — many requests sent without waiting, replies in order.
//
//   shoal::client::pipeline p = kv.open_pipeline();
//   p.send(op);                         // an operation or a Batch; returns its id (1, 2, ...)
//   auto reply = p.receive();           // the oldest unanswered request's reply
//   p.close();                          // no more requests; then the stream's status
//
//   kv.open_pipeline().run(ops, 64, [](const v1::PipelineResponse& r) { ... });
//
// Sending blocks while the stream's flow control holds it back (the server reads at most
// live.max_pipeline_depth requests ahead of its replies), so a caller that sends without ever
// receiving can stall: keep a window, as run() does. One thread may send while another
// receives (each side on one thread at a time); close() once both are done.
//
// On a replicated store, send() and receive() stay on the replica the stream opened on: a
// follower refuses each write (UNAVAILABLE, nothing applied, OpError.leader naming the leader).
// run() follows instead (for a pipeline from client::open_pipeline()): from the first refused
// request on, it sends the rest to the leader on a new stream, and likewise when the stream could
// not connect at all. It does so only when every write sent after that request was refused for
// not leading too; otherwise (leadership moved in mid-stream, or another error) it hands every
// reply over as it came and goes on from the next request.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "shoal/v1/kv.grpc.pb.h"

namespace shoal::client {

class client;

class pipeline {
 public:
  // One stream on `stub`'s server, which run() does not leave.
  explicit pipeline(v1::KV::Stub& stub);
  ~pipeline();
  pipeline(const pipeline&) = delete;
  pipeline& operator=(const pipeline&) = delete;

  // Sends one request with the next id and returns that id.
  absl::StatusOr<uint64_t> send(const v1::Op& op);
  absl::StatusOr<uint64_t> send(const v1::BatchRequest& batch);
  // The next reply, in the order the requests were sent. FAILED_PRECONDITION when nothing is
  // outstanding; the stream's error if it broke.
  absl::StatusOr<v1::PipelineResponse> receive();
  // Requests sent and not yet received.
  std::size_t outstanding() const { return sent_.load() - received_.load(); }
  // Says that no more requests come, drops the replies not yet received, and returns how the
  // stream ended.
  absl::Status close();

  // Sends every operation with at most `window` unanswered, and hands each reply to `on_reply`
  // in order, its id the operation's place in `ops` (from 1), following the leader (above).
  // Returns the first stream error (per-operation errors are in the replies).
  absl::Status run(const std::vector<v1::Op>& ops, std::size_t window,
                   const std::function<void(const v1::PipelineResponse&)>& on_reply);

 private:
  friend class client;
  // A stream on the replica `owner` calls from now, which run() may leave for the leader.
  explicit pipeline(client& owner);
  // A new stream on `stub`'s server; the one before is finished.
  void open(v1::KV::Stub& stub);
  absl::StatusOr<uint64_t> send_request(v1::PipelineRequest& req);
  absl::Status finish();
  // Whether run() may leave this stream for another replica (`moves` left it already).
  bool may_move(int moves) const;
  // After a refusal naming `leader` (empty: none known), or a stream that never connected
  // (`leader` nothing): a stream where the client calls now, once its pause is over.
  void reopen(const std::optional<std::string>& leader, int* pauses);

  client* owner_ = nullptr;  // null: a stream on one stub
  std::size_t replica_ = 0;  // owner_'s endpoint this stream is on
  std::unique_ptr<grpc::ClientContext> ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::PipelineRequest, v1::PipelineResponse>> stream_;
  std::atomic<uint64_t> sent_{0};
  std::atomic<uint64_t> received_{0};
  std::atomic<bool> closed_{false};
  std::atomic<bool> finished_{false};
  absl::Status final_;            // set once, by whichever side finishes the stream
  bool never_connected_ = false;  // final_ says no connection was made: nothing was sent
};

}  // namespace shoal::client
