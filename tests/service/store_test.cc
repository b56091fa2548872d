// The store, the hub and TTLs as units, on a runtime with a paused clock.
#include "service/store/store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "runtime/runtime.h"

namespace shoal::service::store {
namespace {

using namespace std::chrono_literals;
using watch::hub;

class store_test : public ::testing::Test {
 protected:
  rt::runtime rt_{[] {
    rt::runtime_options o;
    o.kind = rt::flavor::current_thread;
    o.start_paused = true;
    o.auto_advance = false;
    return o;
  }()};
  hub hub_{hub::options{}};
  rt::notify expiry_;
  store kv_{
      store::options{.shards = 8, .clock = &rt_.clock(), .hub = &hub_, .expiry_changed = &expiry_}};

  write_result put(const std::string& k, const std::string& v, ttl_spec ttl = {}) {
    auto r = kv_.put(k, v, ttl, condition{}, limits{},
                     [](const entry_view*, const entry_view*, bool) {});
    EXPECT_TRUE(r.ok());
    return *r;
  }
  bool present(const std::string& k) {
    return kv_.get(k, [](const entry&) {});
  }
};

TEST_F(store_test, every_write_takes_the_next_revision_and_keeps_create_revision_and_version) {
  EXPECT_EQ(put("a", "1").revision, 1u);
  EXPECT_EQ(put("b", "1").revision, 2u);
  EXPECT_EQ(put("a", "2").revision, 3u);
  kv_.get("a", [](const entry& e) {
    EXPECT_EQ(e.create_revision(), 1u);
    EXPECT_EQ(e.mod_revision(), 3u);
    EXPECT_EQ(e.version(), 2u);
  });
  EXPECT_EQ(kv_.keys(), 2u);
  EXPECT_EQ(kv_.bytes(), 4u);
}

TEST_F(store_test, an_expired_entry_is_expired_by_whoever_finds_it_with_its_own_revision) {
  put("t", "v", ttl_spec{ttl_spec::kind::after_ms, 1000});
  auto sub = hub_.subscribe(0);
  rt_.advance(999ms);
  EXPECT_TRUE(present("t"));
  rt_.advance(1ms);
  EXPECT_FALSE(present("t"));  // the get expired it
  EXPECT_EQ(kv_.revision(), 2u);
  auto ev = sub.live->try_recv();
  ASSERT_TRUE(ev.has_value() && ev->has_value());
  EXPECT_EQ((**ev)->type, watch::event::kind::expire);
  EXPECT_EQ((**ev)->revision, 2u);
  EXPECT_EQ(kv_.keys(), 0u);
}

TEST_F(store_test, expire_due_visits_only_the_entries_that_expired) {
  for (int i = 0; i < 1000; ++i) put("keep" + std::to_string(i), "v");
  for (int i = 0; i < 10; ++i)
    put("soon" + std::to_string(i), "v", {ttl_spec::kind::after_ms, 100});
  for (int i = 0; i < 10; ++i)
    put("late" + std::to_string(i), "v", {ttl_spec::kind::after_ms, 500});
  EXPECT_EQ(kv_.expire_due(), 0u);
  rt_.advance(100ms);
  EXPECT_EQ(kv_.expire_due(), 10u);  // the 1,000 without a TTL and the 10 later ones untouched
  EXPECT_EQ(kv_.keys(), 1010u);
  EXPECT_EQ(kv_.earliest_expiry(), std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       rt_.clock().now().time_since_epoch() + 400ms)
                                       .count());
  rt_.advance(400ms);
  EXPECT_EQ(kv_.expire_due(), 10u);
  EXPECT_EQ(kv_.earliest_expiry(), 0);
}

TEST_F(store_test, keep_ttl_keeps_the_deadline_and_a_plain_put_clears_it) {
  put("t", "1", {ttl_spec::kind::after_ms, 1000});
  rt_.advance(600ms);
  put("t", "2", {ttl_spec::kind::keep, 0});
  kv_.get("t", [&](const entry& e) { EXPECT_EQ(kv_.ttl_remaining_ms(e.metadata()), 400); });
  put("t", "3");
  rt_.advance(10s);
  EXPECT_TRUE(present("t"));
}

TEST(entry_test, a_value_fits_in_place_when_it_leaves_little_room_unused) {
  entry* e = entry::make("k", std::string(100, 'v'), {});
  EXPECT_TRUE(e->fits(100));
  EXPECT_TRUE(e->fits(36));   // 64 bytes unused
  EXPECT_FALSE(e->fits(35));  // 65
  entry* big = entry::make("k", std::string(1000, 'v'), {});
  EXPECT_TRUE(big->fits(745));  // 255 bytes unused
  EXPECT_FALSE(big->fits(744));
  entry::unref(big);
  EXPECT_FALSE(e->fits(101));
  e->overwrite("short", {});
  EXPECT_EQ(e->value(), "short");
  EXPECT_EQ(e->key(), "k");
  EXPECT_TRUE(e->fits(100));  // the room left by the shorter value is still there
  EXPECT_EQ(e->charged_bytes(), 6u);
  EXPECT_TRUE(e->unshared());
  entry::ref(e);  // as an event that shares it
  EXPECT_FALSE(e->unshared());
  entry::unref(e);
  EXPECT_TRUE(e->unshared());
  entry::unref(e);
}

TEST_F(store_test, overwrites_in_place_and_into_new_entries_keep_each_event_its_own_copy) {
  put("a", "first");
  put("z", "last");
  // The first overwrite gets a new entry (the creating event shares the first); then same size
  // and shorter are in place; longer, then much shorter, get a new entry each time.
  const std::vector<std::string> values = {"aaaa", "bbbb", "cc", std::string(100, 'x'), "y"};
  for (const auto& v : values) {
    put("m", v);
    std::string now;
    kv_.get("m", [&](const entry& e) { now = std::string(e.value()); });
    EXPECT_EQ(now, v);
  }
  EXPECT_EQ(kv_.bytes(), 6u + 5u + 2u);
  auto removed = kv_.remove("m", condition{}, [](const entry_view*, const entry_view*) {});
  ASSERT_TRUE(removed.ok());

  auto sub = hub_.subscribe(3);
  ASSERT_EQ(sub.replay.size(), values.size() + 1);
  for (std::size_t i = 0; i < values.size(); ++i) {
    const watch::event& e = *sub.replay[i];
    ASSERT_TRUE(e.has_entry());
    EXPECT_EQ(e.entry().value, values[i]);
    EXPECT_EQ(e.entry().meta.version, i + 1);
    EXPECT_EQ(e.entry().meta.mod_revision, e.revision);
    ASSERT_EQ(e.has_previous(), i > 0);
    if (i > 0) {
      EXPECT_EQ(e.previous().value, values[i - 1]);
      EXPECT_EQ(e.previous().meta.mod_revision, e.revision - 1);
    }
  }
  const watch::event& del = *sub.replay.back();
  EXPECT_EQ(del.type, watch::event::kind::remove);
  EXPECT_EQ(del.key(), "m");
  EXPECT_EQ(del.previous().value, values.back());

  // Both indexes still hold every key, in order.
  range_query all;
  all.from = "";
  auto page = kv_.range(all);
  ASSERT_EQ(page.entries.size(), 2u);
  EXPECT_EQ(page.entries[0].key, "a");
  EXPECT_EQ(page.entries[1].key, "z");
  put("m", "back");
  EXPECT_EQ(kv_.range(all).entries.size(), 3u);
}

TEST_F(store_test, an_event_charges_the_history_for_every_byte_it_keeps_alive) {
  // The history's byte bound and a Watch response's budget both rest on event::bytes(): a removal
  // keeps the removed entry (key and value) alive, so it is charged for both.
  const std::string key(1000, 'k');
  const std::string value(300, 'v');
  put(key, value);
  put(key, "w");
  ASSERT_TRUE(kv_.remove(key, condition{}, [](const entry_view*, const entry_view*) {}).ok());
  auto sub = hub_.subscribe(1);
  ASSERT_EQ(sub.replay.size(), 3u);
  const std::size_t header = sizeof(watch::event);
  EXPECT_GE(sub.replay[0]->bytes(), header + key.size() + value.size());
  EXPECT_GE(sub.replay[1]->bytes(), header + key.size() + 1 + value.size());
  EXPECT_EQ(sub.replay[2]->type, watch::event::kind::remove);
  EXPECT_GE(sub.replay[2]->bytes(), header + key.size() + 1);
  EXPECT_TRUE(sub.replay[2]->entry().key.empty());
}

TEST_F(store_test, a_ttl_set_or_cleared_by_an_overwrite_in_place_moves_the_expiry) {
  put("t", "1");
  put("t", "2", {ttl_spec::kind::after_ms, 100});  // in place, now with a deadline
  EXPECT_NE(kv_.earliest_expiry(), 0);
  rt_.advance(100ms);
  EXPECT_EQ(kv_.expire_due(), 1u);
  EXPECT_FALSE(present("t"));
  put("u", "1", {ttl_spec::kind::after_ms, 100});
  put("u", "2");  // in place, deadline cleared
  EXPECT_EQ(kv_.earliest_expiry(), 0);
  rt_.advance(1s);
  EXPECT_EQ(kv_.expire_due(), 0u);
  EXPECT_TRUE(present("u"));
}

TEST_F(store_test, limits_refuse_new_keys_and_bytes_with_resource_exhausted) {
  limits lim{2, 10};
  auto w = [&](const std::string& k, const std::string& v) {
    return kv_.put(k, v, {}, condition{}, lim, [](const entry_view*, const entry_view*, bool) {})
        .status();
  };
  EXPECT_TRUE(w("a", "1").ok());
  EXPECT_TRUE(w("b", "1").ok());
  EXPECT_EQ(w("c", "1").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(w("a", "12345").ok());  // replacing is not a new key
  EXPECT_EQ(w("a", "1234567890").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(kv_.keys(), 2u);
  EXPECT_EQ(kv_.bytes(), 8u);  // a=12345 (6) + b=1 (2)
}

TEST_F(store_test, range_pages_merge_the_shards_in_order_and_respect_both_caps) {
  for (int i = 0; i < 100; ++i) put("k" + std::to_string(1000 + i), std::string(10, 'v'));
  store::range_query q;
  q.from = "k";
  q.to = "l";
  q.has_to = true;
  q.max_items = 30;
  auto page = kv_.range(q);
  ASSERT_EQ(page.entries.size(), 30u);
  EXPECT_EQ(page.entries.front().key, "k1000");
  EXPECT_EQ(page.entries.back().key, "k1029");
  q.from = page.continuation;
  q.max_bytes = 3 * 15;  // three entries of 5 + 10 bytes
  page = kv_.range(q);
  ASSERT_EQ(page.entries.size(), 3u);
  EXPECT_EQ(page.entries.front().key, "k1030");
  q.max_bytes = 1;  // smaller than one entry: one entry still comes
  page = kv_.range(q);
  EXPECT_EQ(page.entries.size(), 1u);
}

// Many threads write through one hub: the revisions published are exactly 1..N, in order,
// and each key's last event matches what the store holds.
// Writers overwrite a few keys (in place, into new entries, and over entries events share) while
// a reader follows the events as they are published and a short history drops them. Each key's
// events must chain: every event's previous value is the value of the event before it. An
// in-place write into bytes an event still shares would break the chain (and TSan would see it).
TEST(hub_test, events_read_while_entries_are_rewritten_keep_their_own_values) {
  rt::runtime rt{rt::runtime_options{}};
  hub events{hub::options{.history_max_events = 16, .channel_capacity = 1 << 16}};
  store kv{store::options{.shards = 4, .clock = &rt.clock(), .hub = &events}};
  auto sub = events.subscribe(0);
  constexpr int threads = 4, per = 3000, keys = 5;
  // Lengths that fit in place, outgrow the entry, and shrink far below it.
  const std::vector<std::size_t> lengths = {12, 12, 9, 12, 200, 12, 12};
  std::atomic<bool> writing{true};
  std::map<std::string, std::string> last;
  uint64_t seen = 0;
  std::thread reader([&] {
    for (;;) {
      auto e = sub.live->try_recv();
      if (!e) {
        if (!writing.load()) break;
        std::this_thread::yield();
        continue;
      }
      ASSERT_TRUE(e->has_value()) << "lagged";
      const watch::event& ev = ***e;
      ++seen;
      const std::string key(ev.key());
      const entry_view written = ev.entry();
      ASSERT_EQ(written.meta.mod_revision, ev.revision);
      ASSERT_EQ(written.value.substr(0, key.size()), key);
      auto it = last.find(key);
      if (it == last.end()) {
        ASSERT_FALSE(ev.has_previous());
      } else {
        ASSERT_TRUE(ev.has_previous());
        ASSERT_EQ(ev.previous().value, it->second) << "revision " << ev.revision;
        ASSERT_EQ(ev.previous().meta.version + 1, written.meta.version);
      }
      last[key] = std::string(written.value);
    }
  });
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < per; ++i) {
        const std::string key = "k" + std::to_string((t + i) % keys);
        std::string value = key + ":" + std::to_string(t) + ":" + std::to_string(i);
        value.resize(std::max(value.size(), lengths[(t * 7 + i) % lengths.size()]), '.');
        auto r = kv.put(key, value, {}, condition{}, limits{},
                        [](const entry_view*, const entry_view*, bool) {});
        ASSERT_TRUE(r.ok());
      }
    });
  }
  for (auto& t : ts) t.join();
  writing.store(false);
  reader.join();
  EXPECT_EQ(seen, static_cast<uint64_t>(threads * per));
  for (const auto& kv_pair : last) {
    const std::string& want = kv_pair.second;
    kv.get(kv_pair.first, [&](const entry& e) { EXPECT_EQ(e.value(), want); });
  }
}

TEST(hub_test, concurrent_writers_publish_every_revision_once_in_order) {
  rt::runtime rt{rt::runtime_options{}};
  hub events{hub::options{.channel_capacity = 1 << 16}};
  store kv{store::options{.shards = 16, .clock = &rt.clock(), .hub = &events}};
  auto sub = events.subscribe(0);
  constexpr int threads = 8, per = 2000;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < per; ++i) {
        auto r = kv.put("k" + std::to_string((t * 31 + i) % 97), std::to_string(i), {}, condition{},
                        limits{}, [](const entry_view*, const entry_view*, bool) {});
        ASSERT_TRUE(r.ok());
      }
    });
  }
  for (auto& t : ts) t.join();
  uint64_t expect = 1;
  std::map<std::string, std::string> last;
  while (auto e = sub.live->try_recv()) {
    ASSERT_TRUE(e->has_value()) << "lagged";
    ASSERT_EQ((**e)->revision, expect++);
    last[std::string((**e)->key())] = std::string((**e)->entry().value);
  }
  EXPECT_EQ(expect - 1, static_cast<uint64_t>(threads * per));
  for (const auto& kv_pair : last) {
    const std::string& want = kv_pair.second;
    kv.get(kv_pair.first, [&](const entry& e) { EXPECT_EQ(e.value(), want); });
  }
}

// Transactions over keys in many shards, from threads that name the keys in opposite orders, with
// plain writers besides: no deadlock (shards are locked in index order whatever the key order),
// every Txn takes one revision, and the total moved between counters is conserved.
TEST(txn_test, concurrent_transactions_lock_in_one_order_and_conserve_the_sum) {
  rt::runtime rt{rt::runtime_options{}};
  hub events{hub::options{.channel_capacity = 1 << 16}};
  store kv{store::options{.shards = 16, .clock = &rt.clock(), .hub = &events}};
  constexpr int k_accounts = 8;
  for (int i = 0; i < k_accounts; ++i) {
    ASSERT_TRUE(kv.put("acct" + std::to_string(i), "0", {}, condition{}, limits{},
                       [](const entry_view*, const entry_view*, bool) {})
                    .ok());
  }
  auto sub = events.subscribe(0);
  constexpr int threads = 4, per = 500;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < per; ++i) {
        // +1 on one account, -1 on another; odd threads list them the other way round.
        const int a = (t + i) % k_accounts, b = (t + i + 3) % k_accounts;
        txn_request req;
        txn_op up{txn_op::kind::increment, "acct" + std::to_string(a), "", {}, 1, {}};
        txn_op down{txn_op::kind::increment, "acct" + std::to_string(b), "", {}, -1, {}};
        if (t % 2) std::swap(up, down);
        req.success = {up, down};
        auto r = kv.txn(req, limits{});
        ASSERT_TRUE(r.ok()) << r.status();
        ASSERT_TRUE(r->succeeded);
        ASSERT_NE(r->revision, 0u);
        (void)kv.put("noise" + std::to_string(i % 13), "x", {}, condition{}, limits{},
                     [](const entry_view*, const entry_view*, bool) {});
      }
    });
  }
  for (auto& t : ts) t.join();
  int64_t sum = 0;
  for (int i = 0; i < k_accounts; ++i) {
    kv.get("acct" + std::to_string(i),
           [&](const entry& e) { sum += std::stoll(std::string(e.value())); });
  }
  EXPECT_EQ(sum, 0);
  // One event per Txn (a group of two writes), revisions consecutive.
  uint64_t expect = events.revision() - static_cast<uint64_t>(threads * per * 2) + 1;
  int groups = 0;
  while (auto e = sub.live->try_recv()) {
    ASSERT_TRUE(e->has_value()) << "lagged";
    ASSERT_EQ((**e)->revision, expect++);
    if ((**e)->type == watch::event::kind::txn) {
      ++groups;
      ASSERT_EQ((**e)->parts().size(), 2u);
      for (const auto& part : (**e)->parts()) EXPECT_EQ(part->revision, (**e)->revision);
    }
  }
  EXPECT_EQ(groups, threads * per);
}

}  // namespace
}  // namespace shoal::service::store
