// Admin, configuration reload, health through a drain, shutdown, TTLs, limits and reflection,
// against a real shoald.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/shoald_process.h"

namespace shoal {
namespace {

using namespace std::chrono_literals;
using testing::ctx;
using testing::eventually;
using testing::shoald_process;
using testing::temp_dir;
using testing::write_file;
namespace health = grpc::health::v1;

void kubelet_swap(const std::string& dir, const std::string& json, int generation) {
  testing::kubelet_swap(dir, {{"config.json", json}}, generation);
}

v1::GetConfigResponse get_config(v1::Admin::Stub* admin) {
  v1::GetConfigResponse resp;
  EXPECT_TRUE(admin->GetConfig(ctx().get(), v1::GetConfigRequest(), &resp).ok());
  return resp;
}

TEST(admin, status_reports_the_store_and_the_server) {
  shoald_process s;
  auto kv = s.kv();
  v1::PutRequest p;
  p.set_key("k");
  p.set_value("value");
  v1::PutResponse pr;
  ASSERT_TRUE(kv->Put(ctx().get(), p, &pr).ok());
  auto admin = s.admin();
  v1::StatusResponse st;
  // The Put's slot is given back when gRPC reports its reply sent, which may come a moment after
  // the client has the reply: ask until only this call is counted.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  do {
    ASSERT_TRUE(admin->Status(ctx().get(), v1::StatusRequest(), &st).ok());
  } while (st.in_flight() != 1 && std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(st.header().revision(), 1u);
  EXPECT_EQ(st.header().store_id(), pr.header().store_id());
  EXPECT_EQ(st.keys(), 1u);
  EXPECT_EQ(st.bytes(), 6u);
  EXPECT_EQ(st.in_flight(), 1u);  // this call
  EXPECT_FALSE(st.version().empty());
  EXPECT_EQ(st.config_version(), 1u);
  EXPECT_EQ(st.config_source(), "defaults+flags");
  EXPECT_TRUE(st.last_config_error().empty());
}

TEST(admin, a_config_change_through_a_configmap_symlink_swap_reaches_the_server) {
  const std::string dir = temp_dir();
  kubelet_swap(dir, R"({"live": {"maxValueBytes": 100}})", 1);
  ASSERT_EQ(::symlink("..data/config.json", (dir + "/config.json").c_str()), 0);
  shoald_process s({"--config=" + dir + "/config.json"});
  auto admin = s.admin();
  EXPECT_EQ(get_config(admin.get()).config().live().max_value_bytes(), 100u);

  // WatchConfig streams the current configuration, then the change.
  auto wc = ctx();
  auto watch = admin->WatchConfig(wc.get(), v1::WatchConfigRequest());
  v1::GetConfigResponse first;
  ASSERT_TRUE(watch->Read(&first));
  EXPECT_EQ(first.config().live().max_value_bytes(), 100u);

  kubelet_swap(dir, R"({"live": {"maxValueBytes": 200, "readOnly": true}})", 2);
  v1::GetConfigResponse next;
  ASSERT_TRUE(watch->Read(&next));
  EXPECT_EQ(next.config().live().max_value_bytes(), 200u);
  EXPECT_TRUE(next.config().live().read_only());
  EXPECT_EQ(next.config_version(), first.config_version() + 1);
  EXPECT_EQ(get_config(admin.get()).config().live().max_value_bytes(), 200u);

  // The live setting applies to calls at once.
  auto kv = s.kv();
  v1::PutRequest p;
  p.set_key("k");
  p.set_value("v");
  v1::PutResponse pr;
  EXPECT_EQ(kv->Put(ctx().get(), p, &pr).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  wc->TryCancel();
}

TEST(admin, a_bad_config_file_keeps_the_running_config_and_is_reported_in_status) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/config.json";
  write_file(path, R"({"live": {"maxKeyBytes": 100}})");
  shoald_process s({"--config=" + path, "--max_value_bytes=300"});
  auto admin = s.admin();
  EXPECT_EQ(get_config(admin.get()).config().live().max_key_bytes(), 100u);
  write_file(path, R"({"live": {"maxKeyBytes": "not a number"}})");
  v1::StatusResponse st;
  ASSERT_TRUE(eventually([&] {
    EXPECT_TRUE(admin->Status(ctx().get(), v1::StatusRequest(), &st).ok());
    return !st.last_config_error().empty();
  }));
  EXPECT_NE(st.last_config_error().find("max_key_bytes"), std::string::npos)
      << st.last_config_error();
  EXPECT_EQ(get_config(admin.get()).config().live().max_key_bytes(), 100u);
  // Fixed again: the new file applies, and flags still win over it.
  write_file(path, R"({"live": {"maxKeyBytes": 50, "maxValueBytes": 999}})");
  ASSERT_TRUE(
      eventually([&] { return get_config(admin.get()).config().live().max_key_bytes() == 50u; }));
  EXPECT_EQ(get_config(admin.get()).config().live().max_value_bytes(), 300u);
  ASSERT_TRUE(admin->Status(ctx().get(), v1::StatusRequest(), &st).ok());
  EXPECT_TRUE(st.last_config_error().empty());
}

TEST(admin, an_invalid_config_at_start_is_refused_with_a_clear_message) {
  const std::string dir = temp_dir();
  write_file(dir + "/config.json", R"({"startup": {"shards": 3}})");
  EXPECT_THROW(shoald_process({"--config=" + dir + "/config.json"}), std::runtime_error);
}

TEST(health, liveness_and_readiness_through_read_only_and_a_drain) {
  shoald_process s({"--shutdown_grace_seconds=2"});
  auto h = s.health();
  health::HealthCheckRequest live, ready;
  ready.set_service("shoal.v1.KV");
  health::HealthCheckResponse r;
  ASSERT_TRUE(h->Check(ctx().get(), live, &r).ok());
  EXPECT_EQ(r.status(), health::HealthCheckResponse::SERVING);
  ASSERT_TRUE(h->Check(ctx().get(), ready, &r).ok());
  EXPECT_EQ(r.status(), health::HealthCheckResponse::SERVING);
  health::HealthCheckRequest unknown;
  unknown.set_service("nope");
  EXPECT_EQ(h->Check(ctx().get(), unknown, &r).error_code(), grpc::StatusCode::NOT_FOUND);

  grpc::ClientContext wc;
  wc.set_deadline(std::chrono::system_clock::now() + 30s);
  auto watch = h->Watch(&wc, ready);
  health::HealthCheckResponse w;
  ASSERT_TRUE(watch->Read(&w));
  EXPECT_EQ(w.status(), health::HealthCheckResponse::SERVING);
  ::kill(s.pid(), SIGTERM);
  ASSERT_TRUE(watch->Read(&w));
  EXPECT_EQ(w.status(), health::HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(watch->Read(&w));
  EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(s.wait_exit(30s), 0);
}

TEST(shutdown, calls_in_flight_finish_streams_end_unavailable_later_calls_fail_exit_zero) {
  shoald_process s({"--shutdown_grace_seconds=5"});
  auto kv = s.kv();
  // A watch stream is open.
  v1::WatchRequest wr;
  wr.set_key("k");
  grpc::ClientContext wc;
  wc.set_deadline(std::chrono::system_clock::now() + 30s);
  auto watch = kv->Watch(&wc, wr);
  // Writers keep going through the drain; every acknowledged write must be readable until exit.
  std::atomic<bool> stop{false};
  std::atomic<int> acked{0}, refused{0}, cut{0}, acked_after_cut{0};
  std::thread writer([&] {
    auto stub = s.kv();
    for (int i = 0; !stop.load(); ++i) {
      v1::PutRequest p;
      p.set_key("w" + std::to_string(i));
      p.set_value("v");
      v1::PutResponse pr;
      auto st = stub->Put(ctx(2000ms).get(), p, &pr);
      if (st.ok()) {
        acked++;
        if (cut.load() > 0) acked_after_cut++;
      } else if (st.error_code() == grpc::StatusCode::UNAVAILABLE) {
        refused++;
      } else {
        // Calls that reach the transport while gRPC's own shutdown runs (the drain is over by
        // then) are cancelled by gRPC core; how many depends on how fast this writer calls again
        // before it sees the connection close. Nothing else may fail differently.
        EXPECT_EQ(st.error_code(), grpc::StatusCode::CANCELLED) << st.error_message();
        cut++;
      }
    }
  });
  ASSERT_TRUE(eventually([&] { return acked.load() >= 20; }));  // writes are flowing
  ASSERT_EQ(::kill(s.pid(), SIGTERM), 0);
  v1::WatchResponse resp;
  bool got_final = false;
  while (watch->Read(&resp)) got_final |= resp.canceled();
  EXPECT_TRUE(got_final);
  EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(s.wait_exit(30s), 0);
  stop = true;
  writer.join();
  EXPECT_GT(acked.load(), 0);
  EXPECT_GT(refused.load(), 0);  // new calls during the drain: UNAVAILABLE
  EXPECT_EQ(acked_after_cut.load(), 0)
      << "cancelled calls come only at the very end (" << cut.load() << " of them)";
}

TEST(ttl, a_key_expires_with_an_expire_event_and_the_purge_needs_no_reader) {
  shoald_process s;
  auto kv = s.kv();
  v1::WatchRequest wr;
  wr.set_key("t");
  wr.set_start_revision(1);  // the put may well come before the watch is set up
  auto wc = ctx();
  auto watch = kv->Watch(wc.get(), wr);
  v1::PutRequest p;
  p.set_key("t");
  p.set_value("v");
  p.set_ttl_ms(300);
  v1::PutResponse pr;
  ASSERT_TRUE(kv->Put(ctx().get(), p, &pr).ok());
  EXPECT_GT(pr.entry().ttl_remaining_ms(), 0);
  EXPECT_LE(pr.entry().ttl_remaining_ms(), 300);
  v1::WatchResponse resp;
  std::vector<v1::Event> events;
  while (events.size() < 2 && watch->Read(&resp)) {
    for (const auto& e : resp.events()) events.push_back(e);
  }
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].type(), v1::Event::EXPIRE);
  EXPECT_EQ(events[1].revision(), 2u);
  v1::GetRequest g;
  g.set_key("t");
  v1::GetResponse gr;
  ASSERT_TRUE(kv->Get(ctx().get(), g, &gr).ok());
  EXPECT_FALSE(gr.found());
  wc->TryCancel();
}

TEST(ttl, default_ttl_applies_to_puts_that_name_none_and_zero_means_none) {
  shoald_process s({"--default_ttl_ms=60000"});
  auto kv = s.kv();
  v1::PutRequest p;
  p.set_key("a");
  v1::PutResponse pr;
  ASSERT_TRUE(kv->Put(ctx().get(), p, &pr).ok());
  EXPECT_GT(pr.entry().ttl_remaining_ms(), 59'000);
  p.set_ttl_ms(0);
  ASSERT_TRUE(kv->Put(ctx().get(), p, &pr).ok());
  EXPECT_EQ(pr.entry().ttl_remaining_ms(), 0);
}

TEST(limits, watchers_beyond_the_limit_get_resource_exhausted_promptly) {
  shoald_process s({"--max_watchers=3"});
  auto kv = s.kv();
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::WatchResponse>>> open;
  v1::WatchRequest wr;
  wr.set_key("k");
  wr.set_progress_interval_ms(100);  // each watcher answers soon, so we know it is admitted
  for (int i = 0; i < 3; ++i) {
    ctxs.push_back(ctx());
    open.push_back(kv->Watch(ctxs.back().get(), wr));
    v1::WatchResponse resp;
    ASSERT_TRUE(open.back()->Read(&resp));
  }
  auto c = ctx(5000ms);
  auto extra = kv->Watch(c.get(), wr);
  v1::WatchResponse resp;
  EXPECT_FALSE(extra->Read(&resp));
  auto st = extra->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(st.error_message().find("max_watchers"), std::string::npos);
  // A watcher leaves: its slot is free again.
  ctxs[0]->TryCancel();
  open[0].reset();
  ASSERT_TRUE(eventually([&] {
    auto c2 = ctx(2000ms);
    auto again = kv->Watch(c2.get(), wr);
    v1::WatchResponse r2;
    const bool ok = again->Read(&r2);
    c2->TryCancel();
    return ok;
  }));
  for (auto& c : ctxs) c->TryCancel();
}

TEST(limits, a_stream_limit_changed_by_a_reload_applies_to_the_next_stream) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/config.json";
  write_file(path, R"({"live": {"maxStreams": 3}})");
  shoald_process s({"--config=" + path});
  auto kv = s.kv();
  v1::WatchRequest wr;
  wr.set_key("k");
  wr.set_progress_interval_ms(100);
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::WatchResponse>>> open;
  auto try_open = [&] {
    ctxs.push_back(ctx(30'000ms));
    open.push_back(kv->Watch(ctxs.back().get(), wr));
    v1::WatchResponse resp;
    return open.back()->Read(&resp);
  };
  ASSERT_TRUE(try_open());
  ASSERT_TRUE(try_open());
  // Lowered to 2: the two open streams stay, a third is refused.
  write_file(path, R"({"live": {"maxStreams": 2}})");
  ASSERT_TRUE(
      eventually([&] { return get_config(s.admin().get()).config().live().max_streams() == 2u; }));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(try_open());
  EXPECT_EQ(open.back()->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  // Raised to 4: two more fit.
  write_file(path, R"({"live": {"maxStreams": 4}})");
  ASSERT_TRUE(
      eventually([&] { return get_config(s.admin().get()).config().live().max_streams() == 4u; }));
  EXPECT_TRUE(try_open());
  EXPECT_TRUE(try_open());
  for (auto& c : ctxs) c->TryCancel();
}

TEST(limits, keys_and_bytes_beyond_the_limits_get_resource_exhausted_and_nothing_is_written) {
  shoald_process s({"--max_keys=10", "--max_bytes=400"});
  auto kv = s.kv();
  auto put = [&](const std::string& k, const std::string& v) {
    v1::PutRequest p;
    p.set_key(k);
    p.set_value(v);
    v1::PutResponse pr;
    return kv->Put(ctx().get(), p, &pr);
  };
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(put("k" + std::to_string(i), "v").ok());
  auto st = put("one-too-many", "v");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(st.error_message().find("max_keys"), std::string::npos) << st.error_message();
  EXPECT_TRUE(put("k0", "overwriting an existing key adds no key").ok());

  // 10 keys of ~3 bytes stored; growing one value past 400 bytes in total is refused.
  st = put("k1", std::string(390, 'x'));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(st.error_message().find("max_bytes"), std::string::npos) << st.error_message();
  v1::GetRequest g;
  g.set_key("k1");
  v1::GetResponse gr;
  ASSERT_TRUE(kv->Get(ctx().get(), g, &gr).ok());
  EXPECT_EQ(gr.entry().value(), "v") << "a refused write leaves the old value";

  // Deleting frees a key slot.
  v1::DeleteRequest d;
  d.set_key("k9");
  v1::DeleteResponse dr;
  ASSERT_TRUE(kv->Delete(ctx().get(), d, &dr).ok());
  EXPECT_TRUE(put("one-too-many", "v").ok());
}

TEST(concurrency, no_acknowledged_write_is_lost_and_revisions_are_consistent) {
  shoald_process s;
  constexpr int clients = 8, per = 300;
  std::vector<std::thread> ts;
  std::vector<std::vector<uint64_t>> revisions(clients);
  for (int c = 0; c < clients; ++c) {
    ts.emplace_back([&, c] {
      auto kv = s.kv();
      for (int i = 0; i < per; ++i) {
        v1::PutRequest p;
        p.set_key("c" + std::to_string(c) + "/" + std::to_string(i));
        p.set_value(std::to_string(i));
        v1::PutResponse pr;
        auto st = kv->Put(ctx().get(), p, &pr);
        ASSERT_TRUE(st.ok()) << st.error_message();
        revisions[c].push_back(pr.entry().mod_revision());
      }
    });
  }
  for (auto& t : ts) t.join();
  // Every revision 1..N was given to exactly one acknowledged write, increasing per client.
  std::vector<uint64_t> all;
  for (auto& r : revisions) {
    EXPECT_TRUE(std::is_sorted(r.begin(), r.end()));
    all.insert(all.end(), r.begin(), r.end());
  }
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), static_cast<std::size_t>(clients * per));
  for (std::size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], i + 1);
  // And every acknowledged write is there.
  auto kv = s.kv();
  v1::RangeRequest rr;
  rr.set_prefix("c");
  rr.set_count_only(true);
  v1::RangeResponse resp;
  ASSERT_TRUE(kv->Range(ctx().get(), rr, &resp).ok());
  EXPECT_EQ(resp.count(), static_cast<uint64_t>(clients * per));
}

}  // namespace
}  // namespace shoal
