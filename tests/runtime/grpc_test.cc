// The completion-queue bridge: gRPC operations resume their tasks, cancellation waits for the tag.
// Uses gRPC's generic (byte-level) API, so the runtime's tests need no .proto.
#include "runtime/grpc/completion_queue_driver.h"

#include <grpcpp/alarm.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "runtime/grpc/operation.h"
#include "runtime/runtime.h"
#include "runtime/sync/select.h"

namespace shoal::rt {
namespace {

using namespace std::chrono_literals;
using grpc_driver = rt::grpc::completion_queue_driver;

runtime_options cq_options(flavor f) {
  runtime_options o;
  o.kind = f;
  o.workers = 2;
  o.make_driver = [](int) { return grpc_driver::create(); };
  return o;
}

// An alarm has Cancel(), not TryCancel(): adapt it to async_op's cancellation.
struct alarm_cancel {
  ::grpc::Alarm* alarm;
  void TryCancel() { alarm->Cancel(); }
};

// Alarms set by wait_alarm so far: tests wait for their tasks to be waiting on gRPC.
std::atomic<int> g_alarms_set{0};

task<bool> wait_alarm(std::chrono::milliseconds after) {
  ::grpc::Alarm alarm;
  alarm_cancel cancel{&alarm};
  ::grpc::CompletionQueue* cq = grpc_driver::current_queue();
  auto deadline = std::chrono::system_clock::now() + after;
  co_return co_await rt::grpc::async_op(&cancel, [&](void* tag) {
    alarm.Set(cq, deadline, tag);
    g_alarms_set.fetch_add(1);
  });
}

// Waits (on this test thread) until `done()` holds, for at most 10 s.
template <class Pred>
void wait_until(Pred done) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_TRUE(done());
}

class grpc_bridge_test : public ::testing::TestWithParam<flavor> {};
INSTANTIATE_TEST_SUITE_P(flavors, grpc_bridge_test,
                         ::testing::Values(flavor::current_thread, flavor::multi_thread),
                         [](const auto& i) {
                           return std::string(i.param == flavor::current_thread ? "current_thread"
                                                                                : "multi_thread");
                         });

TEST_P(grpc_bridge_test, a_completion_queue_operation_resumes_its_task) {
  runtime rt(cq_options(GetParam()));
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(rt.block_on(wait_alarm(20ms)));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms);
}

task<int> many_alarms(int n) {
  std::vector<task<bool>> ts;
  for (int i = 0; i < n; ++i) ts.push_back(wait_alarm(std::chrono::milliseconds(i % 7)));
  auto oks = co_await join_all(std::move(ts));
  int count = 0;
  for (bool ok : oks) count += ok;
  co_return count;
}

TEST_P(grpc_bridge_test, many_concurrent_operations_each_resume_their_own_task) {
  runtime rt(cq_options(GetParam()));
  EXPECT_EQ(rt.block_on(many_alarms(2000)), 2000);
}

TEST_P(grpc_bridge_test, aborting_a_task_waiting_on_grpc_cancels_the_operation_then_frees_it) {
  runtime rt(cq_options(GetParam()));
  const int before = g_alarms_set.load();
  auto h = rt.spawn(wait_alarm(std::chrono::hours(1)));
  wait_until([&] { return g_alarms_set.load() == before + 1; });  // the task waits on gRPC
  auto start = std::chrono::steady_clock::now();
  h.abort();
  auto r = rt.block_on([](join_handle<bool> h) -> task<expected<bool, join_error>> {
    co_return co_await h;
  }(std::move(h)));
  EXPECT_FALSE(r.has_value());
  EXPECT_TRUE(r.error().is_cancelled());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST_P(grpc_bridge_test, runtime_shutdown_cancels_tasks_waiting_on_grpc_and_waits_for_their_tags) {
  std::vector<join_handle<bool>> hs;
  {
    runtime rt(cq_options(GetParam()));
    const int before = g_alarms_set.load();
    for (int i = 0; i < 50; ++i) hs.push_back(rt.spawn(wait_alarm(std::chrono::hours(1))));
    wait_until([&] { return g_alarms_set.load() == before + 50; });
  }  // ~runtime: cancels, waits for each alarm's tag, drains the queues
  for (auto& h : hs) EXPECT_TRUE(h.is_finished());
}

// ---------------------------------------------------------------- a real server and client

::grpc::ByteBuffer to_buffer(const std::string& s) {
  ::grpc::Slice slice(s);
  return ::grpc::ByteBuffer(&slice, 1);
}

std::string from_buffer(const ::grpc::ByteBuffer& b) {
  std::vector<::grpc::Slice> slices;
  (void)b.Dump(&slices);
  std::string out;
  for (auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

struct echo_server {
  ::grpc::AsyncGenericService service;
  std::unique_ptr<::grpc::Server> server;
  std::vector<std::unique_ptr<::grpc::ServerCompletionQueue>> cqs;
  int port = 0;
  std::atomic<int> handlers_cancelled{0};
  std::atomic<int> handlers_hanging{0};  // "hang" calls waiting in their second read
};

struct count_on_destroy {
  std::atomic<int>* n;
  bool armed = true;
  ~count_on_destroy() {
    if (armed) n->fetch_add(1);
  }
};

// One posted call: accept, re-post, then echo the request (or wait forever for "hang").
task<> serve_one(echo_server* s, ::grpc::ServerCompletionQueue* cq) {
  ::grpc::GenericServerContext ctx;
  ::grpc::GenericServerAsyncReaderWriter stream(&ctx);
  bool ok = co_await rt::grpc::uncancellable_op(
      [&](void* tag) { s->service.RequestCall(&ctx, &stream, cq, cq, tag); });
  if (!ok) co_return;  // server shutting down
  spawn(serve_one(s, cq)).detach();
  ::grpc::ByteBuffer request;
  ok = co_await rt::grpc::async_op(&ctx, [&](void* tag) { stream.Read(&request, tag); });
  if (!ok) co_return;
  if (ctx.method() == "/test.Echo/Hang") {
    count_on_destroy guard{&s->handlers_cancelled};
    ::grpc::ByteBuffer never;
    // The client never sends a second message: this read waits until the call ends.
    ok = co_await rt::grpc::async_op(&ctx, [&](void* tag) {
      stream.Read(&never, tag);
      s->handlers_hanging.fetch_add(1);
    });
    guard.armed = !ok;  // count the handler only if its read failed (the call ended)
    co_return;
  }
  (void)co_await rt::grpc::async_op(&ctx, [&](void* tag) {
    stream.WriteAndFinish(request, ::grpc::WriteOptions(), ::grpc::Status::OK, tag);
  });
}

task<std::string> echo_call(::grpc::GenericStub* stub, std::string msg) {
  ::grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  ::grpc::CompletionQueue* cq = grpc_driver::current_queue();
  auto rpc = stub->PrepareUnaryCall(&ctx, "/test.Echo/Call", to_buffer(msg), cq);
  rpc->StartCall();
  ::grpc::ByteBuffer reply;
  ::grpc::Status status;
  (void)co_await rt::grpc::async_op(&ctx, [&](void* tag) { rpc->Finish(&reply, &status, tag); });
  if (!status.ok()) co_return "error: " + status.error_message();
  co_return from_buffer(reply);
}

task<int> echo_many(::grpc::GenericStub* stub, int n) {
  std::vector<task<std::string>> calls;
  for (int i = 0; i < n; ++i) calls.push_back(echo_call(stub, "msg-" + std::to_string(i)));
  auto replies = co_await join_all(std::move(calls));
  int right = 0;
  for (int i = 0; i < n; ++i) right += replies[i] == "msg-" + std::to_string(i);
  co_return right;
}

class grpc_server_test : public ::testing::TestWithParam<flavor> {
 protected:
  void SetUp() override {
    ::grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", ::grpc::InsecureServerCredentials(), &s_.port);
    b.RegisterAsyncGenericService(&s_.service);
    const int workers = GetParam() == flavor::current_thread ? 1 : 2;
    for (int i = 0; i < workers; ++i) s_.cqs.push_back(b.AddCompletionQueue());
    s_.server = b.BuildAndStart();
    ASSERT_TRUE(s_.server);
    runtime_options o;
    o.kind = GetParam();
    o.workers = workers;
    o.make_driver = [this](int i) { return grpc_driver::adopt(std::move(s_.cqs[i])); };
    rt_ = std::make_unique<runtime>(o);
    for (int w = 0; w < workers; ++w) {
      // Post from each worker so each queue gets its own accept loop.
      rt_->block_on([](echo_server* s, int n) -> task<> {
        auto* cq = grpc_driver::current_server_queue();
        for (int i = 0; i < n; ++i) spawn(serve_one(s, cq)).detach();
        co_return;
      }(&s_, 64));
    }
    channel_ = ::grpc::CreateChannel("127.0.0.1:" + std::to_string(s_.port),
                                     ::grpc::InsecureChannelCredentials());
    stub_ = std::make_unique<::grpc::GenericStub>(channel_);
  }
  void TearDown() override {
    s_.server->Shutdown(std::chrono::system_clock::now() + 1s);  // not from a worker
    rt_->shutdown();
  }

  echo_server s_;
  std::unique_ptr<runtime> rt_;
  std::shared_ptr<::grpc::Channel> channel_;
  std::unique_ptr<::grpc::GenericStub> stub_;
};
INSTANTIATE_TEST_SUITE_P(flavors, grpc_server_test,
                         ::testing::Values(flavor::current_thread, flavor::multi_thread),
                         [](const auto& i) {
                           return std::string(i.param == flavor::current_thread ? "current_thread"
                                                                                : "multi_thread");
                         });

TEST_P(grpc_server_test, server_and_client_calls_complete_through_the_queues) {
  EXPECT_EQ(rt_->block_on(echo_many(stub_.get(), 1000)), 1000);
}

task<std::string> hang_call(::grpc::GenericStub* stub, std::chrono::milliseconds deadline) {
  ::grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + deadline);
  ::grpc::CompletionQueue* cq = grpc_driver::current_queue();
  auto rpc = stub->PrepareCall(&ctx, "/test.Echo/Hang", cq);
  (void)co_await rt::grpc::async_op(&ctx, [&](void* tag) { rpc->StartCall(tag); });
  (void)co_await rt::grpc::async_op(&ctx, [&](void* tag) { rpc->Write(to_buffer("first"), tag); });
  ::grpc::Status status;
  (void)co_await rt::grpc::async_op(&ctx, [&](void* tag) { rpc->Finish(&status, tag); });
  co_return std::to_string(static_cast<int>(status.error_code()));
}

TEST_P(grpc_server_test, a_client_deadline_completes_the_pending_server_read_with_not_ok) {
  auto code = rt_->block_on(hang_call(stub_.get(), 200ms));
  EXPECT_EQ(code, std::to_string(static_cast<int>(::grpc::StatusCode::DEADLINE_EXCEEDED)));
  wait_until([&] { return s_.handlers_cancelled.load() > 0; });
  EXPECT_EQ(s_.handlers_cancelled.load(), 1);
}

TEST_P(grpc_server_test, server_shutdown_with_calls_in_flight_ends_every_handler) {
  auto h = rt_->spawn(hang_call(stub_.get(), 60'000ms));
  wait_until([&] { return s_.handlers_hanging.load() == 1; });  // the call is in its handler
  s_.server->Shutdown(std::chrono::system_clock::now() + 100ms);
  wait_until([&] { return h.is_finished(); });
  EXPECT_EQ(s_.handlers_cancelled.load(), 1);
}

}  // namespace
}  // namespace shoal::rt
