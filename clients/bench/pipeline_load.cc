#include "clients/bench/pipeline_load.h"

#include <memory>
#include <optional>
#include <random>

#include "google/protobuf/arena.h"
#include "runtime/grpc/completion_queue_driver.h"
#include "runtime/grpc/operation.h"
#include "runtime/sync/mpsc.h"
#include "runtime/sync/select.h"
#include "runtime/sync/semaphore.h"

namespace shoal::bench {
namespace {

namespace rtg = rt::grpc;

// Pipeline mode: one stream, --depth Batches of --batch operations in flight. The writer sends
// while fewer than `depth` are unanswered; the reader matches each reply to its send time (replies
// come in order) and counts its operations. Latency is per Batch.
using pipeline_rpc = grpc::ClientAsyncReaderWriter<v1::PipelineRequest, v1::PipelineResponse>;

struct pipeline_stream {
  grpc::ClientContext ctx;
  std::unique_ptr<pipeline_rpc> rpc;
  rt::semaphore window;
  explicit pipeline_stream(int depth) : window(depth) {}
};

rt::task<> send_batches(shared_state* s, pipeline_stream* p, int index, bool is_get, int batch,
                        int keys, std::string value, rt::mpsc::sender<clk::time_point> sent) {
  std::mt19937_64 rng(index * 7919 + 1);
  v1::PipelineRequest req;
  auto* ops = req.mutable_batch()->mutable_ops();
  for (int i = 0; i < batch; ++i) {
    v1::Op* op = ops->Add();
    if (is_get) {
      op->mutable_get();
    } else {
      op->mutable_put()->set_value(value);
    }
  }
  // Formatting a key per operation would cost the client more than the server spends on it.
  std::vector<std::string> names(keys);
  for (int i = 0; i < keys; ++i) names[i] = key_of(i);
  for (uint64_t id = 0; !s->stop.load(std::memory_order_relaxed); ++id) {
    auto permit = co_await p->window.acquire();
    if (!permit) break;
    permit->forget();  // the reader returns it when the reply comes
    req.set_id(id);
    for (v1::Op& op : *ops) {
      const std::string& key = names[rng() % static_cast<uint64_t>(keys)];
      if (is_get) {
        op.mutable_get()->set_key(key);
      } else {
        op.mutable_put()->set_key(key);
      }
    }
    const clk::time_point t0 = clk::now();
    const bool ok = co_await rtg::async_op(&p->ctx, [&](void* tag) { p->rpc->Write(req, tag); });
    if (!ok) break;
    const bool queued = co_await sent.send(t0);
    if (!queued) break;
  }
  // The server answers what it has, then ends the stream: the reader sees the end.
  (void)co_await rtg::async_op(&p->ctx, [&](void* tag) { p->rpc->WritesDone(tag); });
}

rt::task<> receive_replies(shared_state* s, pipeline_stream* p,
                           rt::mpsc::receiver<clk::time_point> sent) {
  histogram local;
  merge_on_exit merge{s, &local};
  // Each reply is parsed into an arena reset before the next: protobuf frees and allocates a
  // oneof's message on every parse otherwise.
  constexpr std::size_t k_block = 16384;
  auto block = std::make_unique<char[]>(k_block);
  google::protobuf::ArenaOptions options;
  options.initial_block = block.get();
  options.initial_block_size = k_block;
  google::protobuf::Arena arena(options);
  for (;;) {
    arena.Reset();
    auto& resp = *google::protobuf::Arena::CreateMessage<v1::PipelineResponse>(&arena);
    const bool ok = co_await rtg::async_op(&p->ctx, [&](void* tag) { p->rpc->Read(&resp, tag); });
    if (!ok) break;
    std::optional<clk::time_point> t0 = co_await sent.recv();
    if (!t0) break;
    p->window.release(1);
    bool failed = resp.has_error();
    for (const v1::OpResult& r : resp.batch().results()) failed = failed || r.has_error();
    if (!s->measuring.load(std::memory_order_relaxed)) continue;
    if (failed) {
      s->errors.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    local.record(std::chrono::duration_cast<std::chrono::nanoseconds>(clk::now() - *t0).count());
    s->ops.fetch_add(resp.batch().results_size(), std::memory_order_relaxed);
  }
}

}  // namespace

rt::task<> pipeline_loop(shared_state* s, int index, bool is_get, int batch, int depth, int keys,
                         std::string value) {
  v1::KV::Stub* stub = s->stubs[index % s->stubs.size()].get();
  pipeline_stream p(depth);
  p.rpc = stub->PrepareAsyncPipeline(&p.ctx, rtg::completion_queue_driver::current_queue());
  const bool started = co_await rtg::async_op(&p.ctx, [&](void* tag) { p.rpc->StartCall(tag); });
  if (started) {
    auto [tx, rx] = rt::mpsc::channel<clk::time_point>(depth);
    (void)co_await rt::join(send_batches(s, &p, index, is_get, batch, keys, value, std::move(tx)),
                            receive_replies(s, &p, std::move(rx)));
  }
  grpc::Status st;
  (void)co_await rtg::async_op(&p.ctx, [&](void* tag) { p.rpc->Finish(&st, tag); });
  if (!st.ok() && !s->stop.load()) {
    std::fprintf(stderr, "pipeline stream %d ended: %s\n", index, st.error_message().c_str());
  }
}

}  // namespace shoal::bench
