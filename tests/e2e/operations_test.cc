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
  for (const std::string bad : {"127.0.0.1:80000", "127.0.0.1:-1", "127.0.0.1:http", "127.0.0.1",
                                "127.0.0.1:"}) {
    const auto [code, out] = run_to_exit("--listen=" + bad);
    EXPECT_EQ(code, 2) << bad << ": " << out;
    EXPECT_NE(out.find("startup.listen"), std::string::npos) << bad << ": " << out;
    EXPECT_EQ(out.find("listening"), std::string::npos) << bad << ": " << out;
  }
}

}  // namespace
}  // namespace shoal
