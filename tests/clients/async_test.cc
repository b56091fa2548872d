// The client library's coroutine API, on a runtime whose workers run the completion-queue driver.
#include <gtest/gtest.h>

#include "clients/cpp/client.h"
#include "runtime/grpc/completion_queue_driver.h"
#include "runtime/runtime.h"
#include "tests/clients/client_options.h"
#include "tests/e2e/shoald_process.h"

namespace shoal::client {
namespace {

rt::runtime grpc_runtime() {
  rt::runtime_options o;
  o.workers = 2;
  o.make_driver = [](int) { return rt::grpc::completion_queue_driver::create(); };
  return rt::runtime(o);
}

TEST(client_async, tasks_put_get_increment_delete_and_page_through_a_range) {
  testing::shoald_process server;
  client kv(at(server.address()));
  rt::runtime rt = grpc_runtime();
  auto result = rt.block_on([&]() -> rt::task<std::string> {
    // Many calls in flight at once, from one task each.
    std::vector<rt::join_handle<absl::StatusOr<put_result>>> puts;
    for (int i = 0; i < 50; ++i) {
      puts.push_back(rt::spawn(kv.put_async("a/" + std::to_string(100 + i), std::to_string(i))));
    }
    for (auto& p : puts) {
      auto r = co_await std::move(p);  // expected<StatusOr<put_result>, join_error>
      if (!r || !r->ok() || !(*r)->applied) co_return "a put failed";
    }
    auto got = co_await kv.get_async("a/105");
    if (!got.ok() || !got->has_value() || (*got)->value() != "5") co_return "get";
    auto n = co_await kv.increment_async("counter", 41);
    n = co_await kv.increment_async("counter");
    if (!n.ok() || *n != 42) co_return "increment";
    std::string continuation;
    int entries = 0, pages = 0;
    do {
      range_options ro;
      ro.prefix = "a/";
      ro.page_size = 7;
      auto page = co_await kv.range_page_async(ro, continuation);
      if (!page.ok()) co_return "range";
      entries += page->entries_size();
      ++pages;
      continuation = page->continuation();
    } while (!continuation.empty());
    if (entries != 50 || pages != 8) co_return "range pages: " + std::to_string(entries);
    auto del = co_await kv.remove_async("a/100");
    if (!del.ok() || del->deleted != 1) co_return "delete";
    auto bad = co_await kv.put_async("", "v");
    if (bad.status().code() != absl::StatusCode::kInvalidArgument) co_return "empty key accepted";
    co_return "ok";
  }());
  EXPECT_EQ(result, "ok");
}

TEST(client_async, a_task_watches_from_a_revision_and_sees_every_event_in_order) {
  testing::shoald_process server;
  client kv(at(server.address()));
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(kv.put("w/" + std::to_string(i), "v").ok());
  rt::runtime rt = grpc_runtime();
  auto result = rt.block_on([&]() -> rt::task<std::string> {
    watch_options o;
    o.key = "w/";
    o.prefix = true;
    o.from_revision = 5;
    auto w = kv.watch_async(o);
    for (uint64_t want = 5; want <= 20; ++want) {
      auto e = co_await w.next();
      if (!e.ok()) co_return e.status().ToString();
      if (e->revision() != want) co_return "revision " + std::to_string(e->revision());
    }
    // Live events after the replay: written by another task while this one waits.
    auto writer = rt::spawn(kv.put_async("w/live", "now"));
    auto e = co_await w.next();
    (void)co_await std::move(writer);
    if (!e.ok() || e->entry().key() != "w/live" || e->revision() != 21) co_return "live event";
    co_return "ok";
  }());
  EXPECT_EQ(result, "ok");
}

}  // namespace
}  // namespace shoal::client
