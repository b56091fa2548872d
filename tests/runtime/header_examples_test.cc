// The usage examples that open the runtime's newer headers, compiled and run as written there
// (the helpers they name are defined here), so that an example cannot drift from the API.
#include <gtest/gtest.h>

#include <unistd.h>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "runtime/blocking.h"
#include "runtime/join_set.h"
#include "runtime/sync/barrier.h"
#include "runtime/sync/cancellation_token.h"
#include "runtime/sync/gate.h"
#include "runtime/sync/mpsc.h"
#include "runtime/sync/rw_lock.h"
#include "runtime/sync/select.h"
#include "runtime/sync/watch.h"
#include "tests/runtime/flavor_test.h"

namespace shoal {
namespace {

using namespace std::chrono_literals;
using rt::task;

// ---------------------------------------------------------------------------------- gate.h

rt::task<std::string> handle(int request) { co_return "reply " + std::to_string(request); }
std::string unavailable(const std::string& why) { return "UNAVAILABLE: " + why; }

rt::task<std::string> serve_one(rt::gate& calls, int request) {
  std::optional<rt::gate::holder> in = calls.try_enter();
  if (!in) co_return unavailable("shutting down");  // closed: admit nothing new
  co_return co_await handle(request);               // `in` leaves when it goes out of scope
}

rt::task<std::pair<std::string, std::string>> gate_example() {
  rt::gate calls;
  std::string before = co_await serve_one(calls, 1);
  co_await calls.close();  // no new holders; wait for the rest
  std::string after = co_await serve_one(calls, 2);
  co_return std::pair(before, after);
}

// ------------------------------------------------------------------- cancellation_token.h

rt::task<std::string> stream(rt::mpsc::receiver<int>& rx, rt::cancellation_token stream_stop) {
  auto r = co_await rt::select(rx.recv(), stream_stop.cancelled());
  if (r.index() == 1) co_return unavailable("shutting down");
  co_return "got " + std::to_string(*std::get<0>(r));
}

rt::task<std::string> token_example() {
  auto [tx, rx] = rt::mpsc::channel<int>(1);
  rt::cancellation_token server_stop;
  rt::cancellation_token stream_stop = server_stop.child_token();
  server_stop.cancel();  // every child and grandchild too
  co_return co_await stream(rx, stream_stop);
}

// ----------------------------------------------------------------------------- join_set.h

rt::task<int> fetch(int k) {
  co_await rt::yield_now();
  co_return k * 10;
}

rt::task<int> join_set_example(std::vector<int> keys) {
  int total = 0;
  rt::join_set<int> set;
  for (auto& k : keys) set.spawn(fetch(k));
  for (;;) {
    auto r = co_await set.join_next();  // optional<expected<int, join_error>>
    if (!r) break;                      // the set is empty
    if (*r) total += **r;
  }
  co_return total;
}

// ----------------------------------------------------------------------------- blocking.h

rt::task<std::size_t> blocking_example(int fd, std::string buf) {
  rt::join_handle<std::size_t> h = rt::spawn_blocking([fd, buf = std::move(buf)] {
    return static_cast<std::size_t>(::write(fd, buf.data(), buf.size()));
  });
  auto written = co_await std::move(h);  // expected<std::size_t, join_error>
  co_return written ? *written : 0;
}

// ------------------------------------------------------------------------------ rw_lock.h

struct routing_table {
  std::vector<std::string> routes;
};
routing_table load() { return {{"a", "b"}}; }
std::string lookup(const routing_table& t, std::size_t key) { return t.routes.at(key); }
rt::task<> refresh(routing_table& t) {
  co_await rt::yield_now();
  t.routes.push_back("c");
}

rt::task<std::string> rw_lock_example(std::size_t key) {
  rt::rw_lock<routing_table> table(load());
  std::string found;
  // clang-format off: as the header shows it
  {
    auto r = co_await table.read();
    found = lookup(*r, key);
  }  // shared
  {
    auto w = co_await table.write();
    co_await refresh(*w);
  }  // exclusive, across an await
  // clang-format on
  auto r = co_await table.read();
  co_return found + std::to_string(r->routes.size());
}

// ------------------------------------------------------------------------------ barrier.h

rt::task<> load_shard(int i) {
  co_await rt::yield_now();
  (void)i;
}

rt::task<int> phases(rt::barrier& phase, int i, int rounds) {
  int led = 0;
  auto publish_progress = [&] { ++led; };
  for (int n = 0; n < rounds; ++n) {
    co_await load_shard(i);
    rt::barrier_wait_result r = co_await phase.wait();
    if (r.is_leader) publish_progress();
  }
  co_return led;
}

rt::task<int> barrier_example(int workers) {
  rt::barrier phase(workers);
  std::vector<rt::join_handle<int>> hs;
  for (int i = 0; i < workers; ++i) hs.push_back(rt::spawn(phases(phase, i, 3)));
  int leaders = 0;
  for (auto& h : hs) leaders += *co_await h;
  co_return leaders;
}

// ------------------------------------------------------------------------------- select.h

rt::task<std::vector<int>> select_example() {
  auto [a_tx, a] = rt::mpsc::channel<int>(4);
  auto [b_tx, b] = rt::mpsc::channel<int>(4);
  auto [stop_tx, stop] = rt::watch::channel<bool>(false);
  std::vector<int> got;
  co_await a_tx.send(1);
  auto first = co_await rt::select(a.recv(), stop.changed(), rt::sleep(1s));
  if (first.index() == 0) got.push_back(*std::get<0>(first));
  co_await b_tx.send(2);
  { auto drop = std::move(a_tx); }
  { auto drop = std::move(b_tx); }
  // loop until every channel is closed (the select's "else")
  for (;;) {
    auto r = co_await rt::select(rt::else_when_closed, a.recv(), b.recv());
    if (r.index() == 2) break;  // rt::all_closed: both senders are gone
    got.push_back(r.index() == 0 ? *std::get<0>(r) : *std::get<1>(r));
  }
  co_return got;
}

using rt::testing::flavor_test;
class header_examples : public flavor_test {};
SHOAL_ALL_FLAVORS(header_examples);

TEST_P(header_examples, run_as_their_headers_show) {
  EXPECT_EQ(rt_.block_on(gate_example()),
            std::pair(std::string("reply 1"), std::string("UNAVAILABLE: shutting down")));
  EXPECT_EQ(rt_.block_on(token_example()), "UNAVAILABLE: shutting down");
  EXPECT_EQ(rt_.block_on(join_set_example({1, 2, 3})), 60);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  EXPECT_EQ(rt_.block_on(blocking_example(fds[1], "hello")), 5u);
  ::close(fds[0]);
  ::close(fds[1]);
  EXPECT_EQ(rt_.block_on(rw_lock_example(1)), "b3");
  EXPECT_EQ(rt_.block_on(barrier_example(4)), 3);
  EXPECT_EQ(rt_.block_on(select_example()), (std::vector<int>{1, 2}));
}

}  // namespace
}  // namespace shoal
