// admission: calls admitted by class, limits that follow the live configuration, and the drain.
#include "service/admission.h"

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "runtime/runtime.h"
#include "runtime/sync/select.h"
#include "runtime/time/sleep.h"

namespace shoal::service {
namespace {

using namespace std::chrono_literals;

v1::LiveSettings limits(uint32_t unary, uint32_t streams, uint32_t control) {
  v1::LiveSettings l;
  l.set_max_in_flight(unary);
  l.set_max_streams(streams);
  l.set_max_control_calls(control);
  return l;
}

// Admits calls of `c` until one is refused; the tickets taken stay in `held`.
grpc::Status fill(admission& a, call_class c, std::vector<admission::ticket>& held) {
  for (;;) {
    admission::ticket t;
    grpc::Status st = a.admit(c, &t);
    if (!st.ok()) return st;
    held.push_back(std::move(t));
  }
}

TEST(admission, each_class_refuses_at_its_own_limit_and_the_others_still_admit) {
  admission a(limits(3, 2, 1));
  std::vector<admission::ticket> held;
  grpc::Status st = fill(a, call_class::stream, held);
  EXPECT_EQ(held.size(), 2u);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(st.error_message().find("live.max_streams = 2"), std::string::npos)
      << st.error_message();
  st = fill(a, call_class::unary, held);
  EXPECT_EQ(held.size(), 5u);
  EXPECT_NE(st.error_message().find("live.max_in_flight = 3"), std::string::npos);
  st = fill(a, call_class::control, held);
  EXPECT_EQ(held.size(), 6u);
  EXPECT_NE(st.error_message().find("live.max_control_calls = 1"), std::string::npos);
  EXPECT_EQ(a.in_flight(), 6u);
  held.clear();
  EXPECT_EQ(a.in_flight(), 0u);
  admission::ticket t;
  EXPECT_TRUE(a.admit(call_class::control, &t).ok());
}

TEST(admission, a_lowered_limit_keeps_the_calls_in_and_admits_again_only_below_it) {
  admission a(limits(4, 1, 1));
  std::vector<admission::ticket> held;
  (void)fill(a, call_class::unary, held);
  ASSERT_EQ(held.size(), 4u);
  a.follow(limits(2, 1, 1));
  admission::ticket t;
  held.pop_back();  // 3 in, limit 2: still full
  EXPECT_EQ(a.admit(call_class::unary, &t).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  held.pop_back();  // 2 in
  EXPECT_EQ(a.admit(call_class::unary, &t).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  held.pop_back();  // 1 in: one place
  EXPECT_TRUE(a.admit(call_class::unary, &t).ok());
  held.clear();
  a.follow(limits(5, 1, 1));
  std::vector<admission::ticket> more;
  (void)fill(a, call_class::unary, more);
  EXPECT_EQ(more.size(), 4u);  // 5, less `t`
}

// The header's example, as a drain: close refuses new calls at once and completes when the last
// call in has gone.
TEST(admission, close_refuses_new_calls_and_completes_when_the_last_one_leaves) {
  rt::runtime rt{[] {
    rt::runtime_options o;
    o.kind = rt::flavor::current_thread;
    return o;
  }()};
  rt.block_on([]() -> rt::task<> {
    admission calls(limits(10, 10, 10));
    auto t = std::make_unique<admission::ticket>();
    EXPECT_TRUE(calls.admit(call_class::unary, t.get()).ok());
    auto closing = calls.close();
    EXPECT_TRUE(calls.closed());
    admission::ticket late;
    EXPECT_EQ(calls.admit(call_class::control, &late).error_code(), grpc::StatusCode::UNAVAILABLE);
    // Still one call in: the close waits for it.
    auto first = co_await rt::select(rt::biased, std::move(closing), rt::sleep(20ms));
    EXPECT_EQ(first.index(), 1u);
    t.reset();
    co_await calls.close();
    EXPECT_EQ(calls.in_flight(), 0u);
  }());
}

}  // namespace
}  // namespace shoal::service
