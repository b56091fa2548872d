// Hardening: what an attacker or an unlucky operator sends, against a real shoald. Each test here
// reproduces a defect found against an earlier build (issue 14) and fails on it.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/shoald_process.h"

namespace shoal {
namespace {

using namespace std::chrono_literals;
using testing::ctx;
using testing::eventually;
using testing::run_to_exit;
using testing::shoald_process;
using testing::temp_dir;
using testing::write_file;

// 100 years, the documented maximum TTL (kv.proto, PutRequest.ttl_ms).
constexpr int64_t k_max_ttl_ms = 3'155'760'000'000;

grpc::Status put_with_ttl(v1::KV::Stub& kv, const std::string& key, int64_t ttl_ms) {
  v1::PutRequest req;
  req.set_key(key);
  req.set_value("v");
  req.set_ttl_ms(ttl_ms);
  v1::PutResponse resp;
  return kv.Put(ctx().get(), req, &resp);
}

bool present(v1::KV::Stub& kv, const std::string& key) {
  v1::GetRequest req;
  req.set_key(key);
  v1::GetResponse resp;
  EXPECT_TRUE(kv.Get(ctx().get(), req, &resp).ok());
  return resp.found();
}

TEST(hardening, a_ttl_beyond_the_maximum_is_refused_not_acknowledged_and_lost) {
  shoald_process s;
  auto kv = s.kv();
  for (const int64_t ttl :
       {int64_t{10'000'000'000'000}, std::numeric_limits<int64_t>::max(), k_max_ttl_ms + 1}) {
    const grpc::Status st = put_with_ttl(*kv, "session", ttl);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << ttl;
    EXPECT_NE(st.error_message().find("at most"), std::string::npos) << st.error_message();
    EXPECT_FALSE(present(*kv, "session"));
  }
  v1::IncrementRequest inc;
  inc.set_key("counter");
  inc.set_delta(1);
  inc.set_ttl_ms(std::numeric_limits<int64_t>::max());
  v1::IncrementResponse inc_resp;
  EXPECT_EQ(kv->Increment(ctx().get(), inc, &inc_resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_FALSE(present(*kv, "counter"));
}

TEST(hardening, the_longest_ttl_allowed_keeps_the_key) {
  shoald_process s;
  auto kv = s.kv();
  ASSERT_TRUE(put_with_ttl(*kv, "session", k_max_ttl_ms).ok());
  v1::GetRequest req;
  req.set_key("session");
  v1::GetResponse resp;
  ASSERT_TRUE(kv->Get(ctx().get(), req, &resp).ok());
  ASSERT_TRUE(resp.found());
  EXPECT_GT(resp.entry().ttl_remaining_ms(), k_max_ttl_ms - 60'000);
}

TEST(hardening, a_reload_is_validated_against_the_running_start_up_settings) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/config.json";
  write_file(path, R"({"live": {"maxValueBytes": 1000}})");
  shoald_process s({"--config=" + path});
  auto admin = s.admin();
  auto kv = s.kv();
  // The file raises the message limit (a start-up setting, not applied until a restart) and, on
  // its strength, the value limit: the value limit must be checked against the running 4 MiB.
  write_file(path,
             R"({"startup": {"maxMessageBytes": 67108864}, "live": {"maxValueBytes": 33554432}})");
  v1::StatusResponse st;
  ASSERT_TRUE(eventually([&] {
    EXPECT_TRUE(admin->Status(ctx().get(), v1::StatusRequest(), &st).ok());
    return !st.last_config_error().empty();
  })) << "the reload was applied";
  EXPECT_NE(st.last_config_error().find("max_value_bytes"), std::string::npos)
      << st.last_config_error();
  v1::PutRequest req;
  req.set_key("big");
  req.set_value(std::string(4 << 20, 'x'));
  v1::PutResponse resp;
  EXPECT_NE(kv->Put(ctx().get(), req, &resp).error_code(), grpc::StatusCode::OK);
}

TEST(hardening, a_key_limit_that_leaves_no_room_in_a_message_is_refused_at_start) {
  const auto [code, out] = run_to_exit("--max_message_bytes=65536 --max_key_bytes=65535");
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(out.find("max_value_bytes"), std::string::npos) << out;
  EXPECT_EQ(out.find("listening"), std::string::npos) << out;
}

TEST(hardening, config_errors_name_the_problem_and_never_quote_the_file) {
  const std::string dir = temp_dir();
  // Not a config at all: a file a mistyped --config could name.
  write_file(dir + "/shadow", "root:$6$SECRETHASHSECRETHASH:19000:0:99999:7:::\n");
  const auto [code, out] = run_to_exit("--config=" + dir + "/shadow");
  EXPECT_NE(code, 0) << out;
  EXPECT_EQ(out.find("SECRETHASH"), std::string::npos) << out;
  EXPECT_EQ(out.find("root:"), std::string::npos) << out;
  EXPECT_NE(out.find("JSON"), std::string::npos) << out;
  // Valid JSON, values that validation refuses at start.
  for (const std::string refused : {R"({"startup": {"runtime": "hunter2-secret"}})",
                                    R"({"live": {"logLevel": "hunter2-secret"}})"}) {
    write_file(dir + "/refused.json", refused);
    const auto [refused_code, refused_out] = run_to_exit("--config=" + dir + "/refused.json");
    EXPECT_NE(refused_code, 0) << refused_out;
    EXPECT_EQ(refused_out.find("hunter2"), std::string::npos) << refused_out;
    EXPECT_NE(refused_out.find(refused.find("runtime") != std::string::npos ? "startup.runtime"
                                                                            : "live.log_level"),
              std::string::npos)
        << refused_out;
  }

  // A reload of a broken file: Status reports it without its content.
  const std::string path = dir + "/config.json";
  write_file(path, R"({"live": {"maxKeyBytes": 100}})");
  shoald_process s({"--config=" + path});
  auto admin = s.admin();
  for (const std::string broken : {
           R"({"live": {"maxKeyBytes": "hunter2-secret"}})",
           R"({"live": {"logLevel": hunter2-secret}})",
           "{\"live\": {\"maxKeyBytes\": 100}}\nhunter2-secret",
           // Valid JSON with a value that validation refuses.
           R"({"live": {"logLevel": "hunter2-secret"}})",
           // A key that names no setting and is no plain name (found by fuzz/config_fuzz.cc).
           R"({"live": {"hunter2 secret": 100}})",
           R"({"live": {"hunter2 secret\nx": 100}})",  // a line break in the name
       }) {
    write_file(path, broken);
    v1::StatusResponse st;
    ASSERT_TRUE(eventually([&] {
      EXPECT_TRUE(admin->Status(ctx().get(), v1::StatusRequest(), &st).ok());
      return !st.last_config_error().empty();
    })) << broken;
    EXPECT_EQ(st.last_config_error().find("hunter2"), std::string::npos) << st.last_config_error();
    // Clean again, so that the next broken file is a new error.
    write_file(path, R"({"live": {"maxKeyBytes": 100}})");
    ASSERT_TRUE(eventually([&] {
      EXPECT_TRUE(admin->Status(ctx().get(), v1::StatusRequest(), &st).ok());
      return st.last_config_error().empty();
    }));
  }
}

// Opens `n` Watch streams and waits until each is admitted (its first progress notification).
struct open_watchers {
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::WatchResponse>>> streams;
  open_watchers(v1::KV::Stub& kv, int n) {
    v1::WatchRequest wr;
    wr.set_key("k");
    wr.set_progress_interval_ms(100);
    for (int i = 0; i < n; ++i) {
      ctxs.push_back(ctx(60'000ms));
      streams.push_back(kv.Watch(ctxs.back().get(), wr));
      v1::WatchResponse resp;
      EXPECT_TRUE(streams.back()->Read(&resp)) << "watcher " << i << " was not admitted";
    }
  }
  ~open_watchers() {
    for (auto& c : ctxs) c->TryCancel();
  }
};

TEST(hardening, open_streams_never_take_the_slots_of_unary_calls_status_or_health_checks) {
  shoald_process s({"--max_in_flight=4"});
  auto kv = s.kv();
  open_watchers w(*kv, 8);
  v1::PutRequest put;
  put.set_key("k");
  put.set_value("v");
  v1::PutResponse put_resp;
  EXPECT_TRUE(kv->Put(ctx().get(), put, &put_resp).ok());
  v1::StatusResponse st;
  EXPECT_TRUE(s.admin()->Status(ctx().get(), v1::StatusRequest(), &st).ok());
  grpc::health::v1::HealthCheckResponse hc;
  EXPECT_TRUE(s.health()->Check(ctx().get(), grpc::health::v1::HealthCheckRequest(), &hc).ok());
  EXPECT_EQ(hc.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST(hardening, streams_beyond_max_streams_are_refused_and_health_checks_still_answer) {
  shoald_process s({"--max_streams=3"});
  auto kv = s.kv();
  open_watchers w(*kv, 3);
  // A fourth stream of either kind is refused at once.
  v1::WatchRequest wr;
  wr.set_key("k");
  auto c = ctx(5000ms);
  auto extra = kv->Watch(c.get(), wr);
  v1::WatchResponse resp;
  EXPECT_FALSE(extra->Read(&resp));
  const grpc::Status st = extra->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(st.error_message().find("live.max_streams"), std::string::npos) << st.error_message();
  auto pc = ctx(5000ms);
  auto pipe = kv->Pipeline(pc.get());
  v1::PipelineResponse pr;
  EXPECT_FALSE(pipe->Read(&pr));
  EXPECT_EQ(pipe->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  grpc::health::v1::HealthCheckResponse hc;
  EXPECT_TRUE(s.health()->Check(ctx().get(), grpc::health::v1::HealthCheckRequest(), &hc).ok());
  v1::GetRequest g;
  g.set_key("k");
  v1::GetResponse gr;
  EXPECT_TRUE(kv->Get(ctx().get(), g, &gr).ok());
}

TEST(hardening, a_txn_with_more_compares_than_max_txn_ops_is_refused) {
  shoald_process s({"--max_txn_ops=16"});
  auto kv = s.kv();
  v1::TxnRequest req;
  for (int i = 0; i < 17; ++i) {
    v1::Compare* c = req.add_compares();
    c->set_key("k" + std::to_string(i));
    c->set_target(v1::Compare::EXISTS);
    c->set_result(v1::Compare::EQUAL);
  }
  v1::TxnResponse resp;
  const grpc::Status st = kv->Txn(ctx().get(), req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("max_txn_ops"), std::string::npos) << st.error_message();
  req.mutable_compares()->RemoveLast();
  EXPECT_TRUE(kv->Txn(ctx().get(), req, &resp).ok());
}

// The server's resident memory: its peak since reset(), from /proc.
class server_memory {
 public:
  explicit server_memory(pid_t pid) : proc_("/proc/" + std::to_string(pid)) {}
  // Starts a new peak at the current size (clear_refs 5 resets VmHWM).
  void reset() {
    std::ofstream(proc_ + "/clear_refs") << "5";
    base_kib_ = field("VmRSS:");
  }
  // How far the peak rose above the size at reset(), in MiB.
  double peak_rise_mib() const {
    const double rise = static_cast<double>(field("VmHWM:") - base_kib_) / 1024;
    std::printf("server's peak RSS rose %.1f MiB\n", rise);
    return rise;
  }

 private:
  long field(const std::string& name) const {
    std::ifstream in(proc_ + "/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(name, 0) == 0) return std::stol(line.substr(name.size()));
    }
    ADD_FAILURE() << name << " not in " << proc_ << "/status";
    return 0;
  }
  std::string proc_;
  long base_kib_ = 0;
};

// RSS is measured in the Release build only: the sanitizers' allocators keep what is freed.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool k_rss_meaningful = false;
#else
constexpr bool k_rss_meaningful = true;
#endif
// What a small request may raise the server's peak memory by (issue 14's bound).
constexpr double k_max_rise_mib = 16;

void put_value(v1::KV::Stub& kv, const std::string& key, std::size_t bytes) {
  v1::PutRequest req;
  req.set_key(key);
  req.set_value(std::string(bytes, 'v'));
  v1::PutResponse resp;
  const grpc::Status st = kv.Put(ctx().get(), req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
}

TEST(hardening, a_9_kb_batch_of_gets_of_a_1_mib_value_answers_what_fits_in_one_message) {
  shoald_process s;
  auto kv = s.kv();
  put_value(*kv, "big", 1 << 20);
  v1::BatchRequest req;
  for (int i = 0; i < 1000; ++i) req.add_ops()->mutable_get()->set_key("big");
  ASSERT_LT(req.ByteSizeLong(), 10'000u);
  server_memory mem(s.pid());
  mem.reset();
  v1::BatchResponse resp;
  const grpc::Status st = kv->Batch(ctx(30'000ms).get(), req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(resp.results_size(), 1000);
  // The reply holds whole results up to the message limit (4 MiB), in order; every later one
  // says why it is not there.
  int answered = 0;
  while (answered < 1000 && resp.results(answered).has_get()) ++answered;
  EXPECT_GE(answered, 3);
  EXPECT_LE(answered, 4);
  for (int i = 0; i < answered; ++i)
    EXPECT_EQ(resp.results(i).get().entry().value().size(), 1u << 20);
  for (int i = answered; i < 1000; ++i) {
    ASSERT_TRUE(resp.results(i).has_error()) << i;
    EXPECT_EQ(resp.results(i).error().code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  EXPECT_NE(resp.results(answered).error().message().find("max_message_bytes"), std::string::npos)
      << resp.results(answered).error().message();
  if (k_rss_meaningful) {
    EXPECT_LE(mem.peak_rise_mib(), k_max_rise_mib);
  }
}

TEST(hardening, a_txn_whose_reads_would_not_fit_in_a_message_is_refused_whole_before_it_writes) {
  shoald_process s;
  auto kv = s.kv();
  put_value(*kv, "big", 1 << 20);
  v1::TxnRequest req;
  v1::PutRequest* w = req.add_success()->mutable_put();
  w->set_key("written");
  w->set_value("x");
  for (int i = 0; i < 127; ++i) req.add_success()->mutable_get()->set_key("big");
  server_memory mem(s.pid());
  mem.reset();
  v1::TxnResponse resp;
  const grpc::Status st = kv->Txn(ctx(30'000ms).get(), req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_NE(st.error_message().find("max_message_bytes"), std::string::npos) << st.error_message();
  EXPECT_FALSE(present(*kv, "written"));
  if (k_rss_meaningful) {
    EXPECT_LE(mem.peak_rise_mib(), k_max_rise_mib);
  }
  // Three reads of it fit.
  req.mutable_success()->DeleteSubrange(4, 124);
  ASSERT_EQ(req.success_size(), 4);
  EXPECT_TRUE(kv->Txn(ctx(30'000ms).get(), req, &resp).ok());
  EXPECT_TRUE(present(*kv, "written"));
}

TEST(hardening, a_range_over_large_values_copies_about_one_page) {
  shoald_process s({"--max_bytes=200000000"});
  auto kv = s.kv();
  for (int i = 0; i < 64; ++i) put_value(*kv, "r/" + std::to_string(100 + i), 1 << 20);
  v1::RangeRequest req;
  req.set_prefix("r/");
  server_memory mem(s.pid());
  mem.reset();
  v1::RangeResponse resp;
  const grpc::Status st = kv->Range(ctx(30'000ms).get(), req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.entries_size(), 1);  // range_page_max_bytes is 1 MiB: one value per page
  EXPECT_EQ(resp.entries(0).key(), "r/100");
  EXPECT_EQ(resp.continuation(), std::string("r/100\0", 6));
  if (k_rss_meaningful) {
    EXPECT_LE(mem.peak_rise_mib(), k_max_rise_mib);
  }
}

TEST(hardening, the_watch_channel_does_not_pin_every_large_value_written) {
  shoald_process s;
  auto kv = s.kv();
  open_watchers idle(*kv, 1);  // watches another key: it reads every event and keeps none
  server_memory mem(s.pid());
  mem.reset();
  for (int i = 0; i < 1000; ++i) put_value(*kv, "blob", 512 << 10);  // 512 MiB written in all
  // The history keeps 64 MiB (startup.history_max_bytes), the channel as much again at most.
  if (k_rss_meaningful) {
    EXPECT_LE(mem.peak_rise_mib(), 256);
  }
  v1::StatusResponse st;
  EXPECT_TRUE(s.admin()->Status(ctx().get(), v1::StatusRequest(), &st).ok());
  EXPECT_EQ(st.watchers(), 1u);
}

TEST(hardening, a_batch_with_too_many_operations_is_refused_before_it_is_parsed) {
  shoald_process s;
  auto kv = s.kv();
  // 1.5 million empty operations: 3 MiB on the wire (two bytes each), far more in memory.
  std::string wire;
  for (int i = 0; i < 1'500'000; ++i) wire += std::string("\x0a\x00", 2);
  v1::BatchRequest req;
  ASSERT_TRUE(req.ParseFromString(wire));
  ASSERT_EQ(req.ops_size(), 1'500'000);
  server_memory mem(s.pid());
  mem.reset();
  v1::BatchResponse resp;
  const grpc::Status st = kv->Batch(ctx(30'000ms).get(), req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_NE(st.error_message().find("live.max_batch_ops"), std::string::npos) << st.error_message();
  if (k_rss_meaningful) {
    EXPECT_LE(mem.peak_rise_mib(), k_max_rise_mib);
  }
}

// A Pipeline stream of raw frames, so that a test can send one that is not a PipelineRequest.
using raw_stream = grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>;

std::unique_ptr<raw_stream> open_raw_pipeline(shoald_process& s, grpc::ClientContext* c) {
  const grpc::internal::RpcMethod method("/shoal.v1.KV/Pipeline",
                                         grpc::internal::RpcMethod::BIDI_STREAMING);
  return std::unique_ptr<raw_stream>(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
          s.channel().get(), method, c));
}

grpc::ByteBuffer frame(const google::protobuf::Message& m) {
  grpc::ByteBuffer bb;
  bool own = false;
  EXPECT_TRUE(grpc::SerializationTraits<google::protobuf::Message>::Serialize(m, &bb, &own).ok());
  return bb;
}

grpc::ByteBuffer frame(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

v1::PipelineRequest put_request(uint64_t id, const std::string& key) {
  v1::PipelineRequest r;
  r.set_id(id);
  r.mutable_op()->mutable_put()->set_key(key);
  r.mutable_op()->mutable_put()->set_value("v");
  return r;
}

TEST(hardening, an_unparsable_pipeline_request_ends_the_stream_naming_the_last_id_answered) {
  shoald_process s;
  auto c = ctx();
  auto stream = open_raw_pipeline(s, c.get());
  ASSERT_TRUE(stream->Write(frame(put_request(1, "one"))));
  ASSERT_TRUE(stream->Write(frame(std::string("\x0a\xff\xff\xff\xff", 5))));  // a cut field
  (void)stream->Write(frame(put_request(3, "three")));
  stream->WritesDone();
  std::vector<uint64_t> ids;
  grpc::ByteBuffer bb;
  while (stream->Read(&bb)) {
    v1::PipelineResponse r;
    ASSERT_TRUE(grpc::SerializationTraits<v1::PipelineResponse>::Deserialize(&bb, &r).ok());
    ids.push_back(r.id());
  }
  const grpc::Status st = stream->Finish();
  EXPECT_EQ(ids, std::vector<uint64_t>{1});
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_NE(st.error_message().find("last request answered: id 1"), std::string::npos)
      << st.error_message();
  auto kv = s.kv();
  EXPECT_TRUE(present(*kv, "one"));
  EXPECT_FALSE(present(*kv, "three"));
}

TEST(hardening, a_pipeline_batch_with_too_many_operations_is_refused_before_it_is_parsed) {
  shoald_process s;
  auto c = ctx(30'000ms);
  auto stream = s.kv()->Pipeline(c.get());
  v1::PipelineRequest big;
  big.set_id(7);
  std::string ops;
  for (int i = 0; i < 1'500'000; ++i) ops += std::string("\x0a\x00", 2);
  ASSERT_TRUE(big.mutable_batch()->ParseFromString(ops));
  server_memory mem(s.pid());
  mem.reset();
  ASSERT_TRUE(stream->Write(big));
  ASSERT_TRUE(stream->Write(put_request(8, "after")));
  stream->WritesDone();
  v1::PipelineResponse r;
  ASSERT_TRUE(stream->Read(&r));
  EXPECT_EQ(r.id(), 7u);
  ASSERT_TRUE(r.has_error());
  EXPECT_EQ(r.error().code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(r.error().message().find("live.max_batch_ops"), std::string::npos);
  ASSERT_TRUE(stream->Read(&r));  // the stream goes on
  EXPECT_EQ(r.id(), 8u);
  EXPECT_FALSE(stream->Read(&r));
  EXPECT_TRUE(stream->Finish().ok());
  if (k_rss_meaningful) {
    EXPECT_LE(mem.peak_rise_mib(), k_max_rise_mib);
  }
}

// Calls in flight on the server, as its Status reports them (the Status call itself is one).
uint32_t calls_in_flight(shoald_process& s) {
  v1::StatusResponse st;
  EXPECT_TRUE(s.admin()->Status(ctx().get(), v1::StatusRequest(), &st).ok());
  return st.in_flight();
}

// How long the server takes to let go of a stream its client cancelled: until Status no longer
// counts it.
template <class Open>
std::chrono::milliseconds release_after_cancel(shoald_process& s, Open open) {
  auto c = ctx(30'000ms);
  auto stream = open(c.get());
  EXPECT_TRUE(eventually([&] { return calls_in_flight(s) == 2; }));  // the stream and Status
  const auto cancelled = std::chrono::steady_clock::now();
  c->TryCancel();
  EXPECT_TRUE(eventually([&] { return calls_in_flight(s) == 1; }));
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               cancelled);
}

// The server learns that a client left from gRPC's notice (AsyncNotifyWhenDone), not from a look
// at a flag every second: WatchConfig and health Watch streams let go at once.
TEST(hardening, a_cancelled_config_or_health_watch_is_let_go_at_once) {
  shoald_process s;
  for (int round = 0; round < 3; ++round) {
    const auto config_watch = release_after_cancel(s, [&](grpc::ClientContext* c) {
      auto r = s.admin()->WatchConfig(c, v1::WatchConfigRequest());
      v1::GetConfigResponse first;
      EXPECT_TRUE(r->Read(&first));
      return r;
    });
    EXPECT_LT(config_watch, 250ms) << "round " << round;
    const auto health_watch = release_after_cancel(s, [&](grpc::ClientContext* c) {
      auto r = s.health()->Watch(c, grpc::health::v1::HealthCheckRequest());
      grpc::health::v1::HealthCheckResponse first;
      EXPECT_TRUE(r->Read(&first));
      return r;
    });
    EXPECT_LT(health_watch, 250ms) << "round " << round;
  }
}

}  // namespace
}  // namespace shoal
