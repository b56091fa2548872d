// The Prometheus endpoint: calls, refusals and the store's gauges, as a scraper reads them.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "tests/e2e/shoald_process.h"

namespace shoal::testing {
namespace {

// GET http://ADDRESS/metrics with a plain socket: the body, or "" on failure.
std::string scrape(const std::string& address) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1))));
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  std::string reply;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0) {
    const std::string req = "GET /metrics HTTP/1.0\r\nHost: shoald\r\n\r\n";
    if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[8192];
      for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
        reply.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  const auto body = reply.find("\r\n\r\n");
  return body == std::string::npos ? "" : reply.substr(body + 4);
}

// The value of the sample that starts with `series` (name and labels), or -1.
double sample(const std::string& text, const std::string& series) {
  for (std::size_t at = text.find(series); at != std::string::npos;
       at = text.find(series, at + 1)) {
    if (at > 0 && text[at - 1] != '\n') continue;
    const auto value = at + series.size();
    if (text[value] != ' ') continue;
    return std::stod(text.substr(value + 1, text.find('\n', value) - value - 1));
  }
  return -1;
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
  EXPECT_EQ(sample(text, R"(shoal_rpcs_total{method="shoal.v1.KV/Put",code="OK"})"), 3);
  EXPECT_EQ(sample(text, R"(shoal_rpcs_total{method="shoal.v1.KV/Put",code="RESOURCE_EXHAUSTED"})"),
            1);
  EXPECT_EQ(sample(text, R"(shoal_rpcs_total{method="shoal.v1.KV/Get",code="OK"})"), 1);
  EXPECT_EQ(sample(text, R"(shoal_rpcs_total{method="shoal.v1.KV/Get",code="INVALID_ARGUMENT"})"),
            1);
  EXPECT_EQ(sample(text, R"(shoal_rpc_duration_seconds_count{method="shoal.v1.KV/Put"})"), 4);
  EXPECT_EQ(
      sample(text, R"(shoal_rpc_duration_seconds_bucket{method="shoal.v1.KV/Put",le="+Inf"})"), 4);
  EXPECT_GT(sample(text, R"(shoal_rpc_duration_seconds_sum{method="shoal.v1.KV/Put"})"), 0);
  EXPECT_EQ(sample(text, R"(shoal_rejected_calls_total{reason="max_keys"})"), 1);
  EXPECT_EQ(sample(text, "shoal_keys"), 3);
  EXPECT_EQ(sample(text, "shoal_revision"), 3);
  EXPECT_EQ(sample(text, "shoal_bytes"), 3 * (2 + 5));
  EXPECT_EQ(sample(text, "shoal_watchers"), 0);
  EXPECT_EQ(sample(text, "shoal_config_reloads_total"), 0);
  EXPECT_EQ(s.terminate(), 0);
}

TEST(metrics, a_metrics_address_that_cannot_be_bound_stops_the_start_with_a_clear_message) {
  shoald_process first({"--metrics_listen=127.0.0.1:0"});
  EXPECT_THROW(shoald_process({"--metrics_listen=" + first.metrics_address()}), std::runtime_error);
}

}  // namespace
}  // namespace shoal::testing
