// The Prometheus endpoint: calls, refusals and the store's gauges, as a scraper reads them.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "tests/e2e/shoald_process.h"

namespace shoal::testing {
namespace {

// Whether something listens on 127.0.0.1:port.
bool port_taken(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  const bool taken = ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0;
  ::close(fd);
  return taken;
}

TEST(metrics, the_endpoint_counts_calls_by_method_and_code_refusals_and_reports_the_store) {
  shoald_process s({"--metrics_listen=127.0.0.1:0", "--max_keys=3"});
  ASSERT_FALSE(s.metrics_address().empty());
  auto kv = s.kv();
  for (int i = 0; i < 4; ++i) {
    v1::PutRequest p;
    p.set_key("k" + std::to_string(i));
    p.set_value("value");
    v1::PutResponse r;
    (void)kv->Put(ctx().get(), p, &r);  // the fourth is refused: max_keys
  }
  v1::GetRequest g;
  v1::GetResponse gr;
  g.set_key("k0");
  ASSERT_TRUE(kv->Get(ctx().get(), g, &gr).ok());
  g.set_key("");
  ASSERT_FALSE(kv->Get(ctx().get(), g, &gr).ok());

  const std::string text = scrape(s.metrics_address());
  ASSERT_FALSE(text.empty());
  // The names and labels gRPC dashboards query (the grpc_server_* family).
  const std::string put = R"(grpc_method="Put",grpc_service="shoal.v1.KV",grpc_type="unary")";
  const std::string get = R"(grpc_method="Get",grpc_service="shoal.v1.KV",grpc_type="unary")";
  EXPECT_EQ(sample(text, R"(grpc_server_handled_total{grpc_code="OK",)" + put + "}"), 3) << text;
  EXPECT_EQ(sample(text, R"(grpc_server_handled_total{grpc_code="ResourceExhausted",)" + put + "}"),
            1);
  EXPECT_EQ(sample(text, R"(grpc_server_handled_total{grpc_code="OK",)" + get + "}"), 1);
  EXPECT_EQ(sample(text, R"(grpc_server_handled_total{grpc_code="InvalidArgument",)" + get + "}"),
            1);
  EXPECT_EQ(sample(text, "grpc_server_handling_seconds_count{" + put + "}"), 4);
  EXPECT_EQ(sample(text, "grpc_server_handling_seconds_bucket{" + put + R"(,le="+Inf"})"), 4);
  EXPECT_GT(sample(text, "grpc_server_handling_seconds_sum{" + put + "}"), 0);
  EXPECT_EQ(sample(text, R"(shoal_rejected_calls_total{reason="max_keys"})"), 1);
  EXPECT_EQ(sample(text, "shoal_keys"), 3);
  EXPECT_EQ(sample(text, "shoal_revision"), 3);
  EXPECT_EQ(sample(text, "shoal_bytes"), 3 * (2 + 5));
  EXPECT_EQ(sample(text, "shoal_watchers"), 0);
  EXPECT_EQ(sample(text, "shoal_config_reloads_total"), 0);
  EXPECT_EQ(s.terminate(), 0);
}

TEST(metrics, a_metrics_address_that_cannot_be_bound_stops_the_start_naming_the_flag) {
  shoald_process first({"--metrics_listen=127.0.0.1:0"});
  const auto [code, out] = run_to_exit("--metrics_listen=" + first.metrics_address());
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("--metrics_listen"), std::string::npos) << out;
  EXPECT_NE(out.find(first.metrics_address()), std::string::npos) << out;
}

// Metrics used to be off unless --metrics_listen was given: a pod scraped by default showed
// nothing. The default is loopback, port 9090.
TEST(metrics, are_on_by_default_on_loopback_port_9090) {
  if (!scrape("127.0.0.1:9090").empty() || port_taken(9090)) {
    GTEST_SKIP() << "another program listens on 127.0.0.1:9090: the default cannot be shown here";
  }
  shoald_process s(shoald_process::no_metrics_flag, {});
  EXPECT_EQ(s.metrics_address(), "127.0.0.1:9090");
  EXPECT_FALSE(scrape(s.metrics_address()).empty());
}

// What an operator's dashboard needs besides the calls: the process (from /proc), the build,
// and the watch machinery.
TEST(metrics, process_build_and_watch_history_are_reported) {
  shoald_process s;
  auto kv = s.kv();
  for (int i = 0; i < 5; ++i) {
    v1::PutRequest p;
    p.set_key("h" + std::to_string(i));
    p.set_value("v");
    v1::PutResponse r;
    ASSERT_TRUE(kv->Put(ctx().get(), p, &r).ok());
  }
  const std::string text = scrape(s.metrics_address());
  const double rss = sample(text, "process_resident_memory_bytes");
  EXPECT_GT(rss, 1 << 20) << text;
  EXPECT_LT(std::abs(rss - static_cast<double>(rss_bytes(s.pid()))), 64 << 20);
  EXPECT_GT(sample(text, "process_virtual_memory_bytes"), rss);
  EXPECT_GE(sample(text, "process_cpu_seconds_total"), 0);
  EXPECT_GT(sample(text, "process_open_fds"), 3);
  EXPECT_GT(sample(text, "process_max_fds"), 0);
  EXPECT_GT(sample(text, "process_start_time_seconds"), 1.7e9);
  EXPECT_NE(text.find("shoal_build_info{build_type=\""), std::string::npos) << text;
  EXPECT_NE(text.find("version=\"" SHOAL_VERSION "\"} 1"), std::string::npos) << text;
  EXPECT_EQ(sample(text, "shoal_watch_history_events"), 5);
  EXPECT_GT(sample(text, "shoal_watch_history_bytes"), 0);
  EXPECT_EQ(sample(text, "shoal_watch_compact_revision"), 1);
}

// A watcher that stops reading while the store moves on: when it reads again, it is hundreds of
// revisions behind, and the lag gauge says so (then falls back once it has caught up).
TEST(metrics, the_watch_lag_gauge_shows_a_watcher_that_fell_behind) {
  shoald_process s;
  auto kv = s.kv();
  v1::WatchRequest wr;
  wr.set_key("lag/");
  wr.set_prefix(true);
  grpc::ClientContext wc;
  wc.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto watch = kv->Watch(&wc, wr);
  ASSERT_TRUE(eventually([&] {  // the stream is open: the server counts its watcher
    v1::StatusResponse st;
    return s.admin()->Status(ctx().get(), v1::StatusRequest(), &st).ok() && st.watchers() == 1;
  }));
  // 8 MB of values the watcher does not read: flow control stops the server's writes to it.
  constexpr int k_puts = 800;
  for (int i = 0; i < k_puts; ++i) {
    v1::PutRequest p;
    p.set_key("lag/" + std::to_string(i));
    p.set_value(std::string(10'000, 'x'));
    v1::PutResponse r;
    ASSERT_TRUE(kv->Put(ctx().get(), p, &r).ok());
  }
  int seen = 0;
  for (v1::WatchResponse resp; seen < k_puts && watch->Read(&resp);) seen += resp.events_size();
  ASSERT_EQ(seen, k_puts);
  EXPECT_GT(sample(scrape(s.metrics_address()), "shoal_watch_lag_revisions"), 100);
  wc.TryCancel();
}

// With --data_dir: the log's fsyncs, its size, the snapshot and the recovery are exported (and
// without one, none of them is).
TEST(metrics, a_durable_server_exports_its_log_and_snapshots) {
  const std::string dir = temp_dir();
  {
    shoald_process s({"--data_dir=" + dir});
    for (int i = 0; i < 5; ++i) {
      v1::PutRequest req;
      req.set_key("k" + std::to_string(i));
      req.set_value("v");
      v1::PutResponse r;
      ASSERT_TRUE(s.kv()->Put(ctx().get(), req, &r).ok());
    }
    const std::string text = scrape(s.metrics_address());
    EXPECT_GE(sample(text, "shoal_wal_fsync_seconds_count"), 5) << text;
    EXPECT_EQ(sample(text, "shoal_wal_durable_revision"), 5) << text;
    EXPECT_EQ(sample(text, "shoal_wal_failed"), 0) << text;
    EXPECT_GT(sample(text, "shoal_wal_log_bytes"), 0) << text;
    EXPECT_EQ(sample(text, "shoal_snapshot_revision"), 0) << text;
    EXPECT_GE(sample(text, "shoal_recovery_seconds"), 0) << text;
  }
  std::filesystem::remove_all(dir);
  shoald_process memory;
  EXPECT_EQ(scrape(memory.metrics_address()).find("shoal_wal_"), std::string::npos);
}

}  // namespace
}  // namespace shoal::testing
