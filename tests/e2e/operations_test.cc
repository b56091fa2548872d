// Operations: what an operator meets starting and running shoald — ports, versions, flags. Each
// test here reproduces a defect found against an earlier build (issue 15) and fails on it.
#include <gtest/gtest.h>

#include <string>

#include "tests/e2e/shoald_process.h"

namespace shoal {
namespace {

using testing::run_to_exit;
using testing::shoald_process;

// gRPC sets SO_REUSEPORT on its listeners: a second shoald on a port in use used to bind beside
// the first and take a share of its connections, each with a store of its own.
TEST(operations, a_second_shoald_on_a_port_in_use_exits_naming_the_port) {
  shoald_process first;
  const auto [code, out] = run_to_exit("--listen=" + first.address());
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(code, 124) << "the second shoald started: " << out;
  EXPECT_NE(out.find(first.address()), std::string::npos) << out;
  EXPECT_EQ(out.find("listening"), std::string::npos) << out;
}

// A port past 65535 used to be taken modulo 65536 by the resolver: shoald listened elsewhere.
TEST(operations, a_listen_address_with_an_impossible_port_is_refused) {
  for (const std::string bad :
       {"127.0.0.1:80000", "127.0.0.1:-1", "127.0.0.1:http", "127.0.0.1", "127.0.0.1:"}) {
    const auto [code, out] = run_to_exit("--listen=" + bad);
    EXPECT_EQ(code, 2) << bad << ": " << out;
    EXPECT_NE(out.find("startup.listen"), std::string::npos) << bad << ": " << out;
    EXPECT_EQ(out.find("listening"), std::string::npos) << bad << ": " << out;
  }
}

// Read-only refuses writes; reads go on, so the pod must stay in its Service: readiness used to
// turn NOT_SERVING, and a one-replica Deployment lost its only endpoint (reads failed too).
TEST(operations, a_read_only_server_stays_ready_for_reads) {
  shoald_process s({"--read_only"});
  grpc::health::v1::HealthCheckRequest ready;
  ready.set_service("shoal.v1.KV");
  grpc::health::v1::HealthCheckResponse r;
  ASSERT_TRUE(s.health()->Check(testing::ctx().get(), ready, &r).ok());
  EXPECT_EQ(r.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  v1::GetRequest get;
  get.set_key("k");
  v1::GetResponse got;
  EXPECT_TRUE(s.kv()->Get(testing::ctx().get(), get, &got).ok());
  v1::PutRequest put;
  put.set_key("k");
  v1::PutResponse put_resp;
  EXPECT_EQ(s.kv()->Put(testing::ctx().get(), put, &put_resp).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

// --version used to print abseil's "Debug build (NDEBUG not #defined)" on a Release build.
TEST(operations, version_names_shoald_its_version_and_build) {
  const auto [code, out] = run_to_exit("--version");
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out.rfind("shoald " SHOAL_VERSION, 0), 0u) << out;
  EXPECT_NE(out.find("gRPC "), std::string::npos) << out;
  EXPECT_EQ(out.find("NDEBUG"), std::string::npos) << out;
}

}  // namespace
}  // namespace shoal
