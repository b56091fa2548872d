// replica/: what a Raft entry carries (entry.h, frame.h), member addresses (member.h), and the
// store's replica mode (expiry decided by the leader: due(), expire_if()).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/time/clock.h"
#include "service/config/config.h"
#include "service/replica/entry.h"
#include "service/replica/frame.h"
#include "service/replica/member.h"
#include "service/store/store.h"
#include "service/watch/hub.h"
#include "shoal/v1/kv.pb.h"

namespace shoal::service::replica {
namespace {

TEST(replica_entry, a_call_round_trips_and_survives_the_disk_logs_padding) {
  v1::PutRequest req;
  req.set_key("k");
  req.set_value(std::string(13, 'v'));
  std::string bytes = encode_call(7, 42, 123456789, metrics::method::put, req);
  // libraft's disk log hands an entry back padded with zeros to a multiple of 8 bytes.
  for (std::size_t pad = 0; pad < 8; ++pad) {
    std::string padded = bytes + std::string(pad, '\0');
    entry e;
    ASSERT_TRUE(decode(padded, &e)) << pad;
    EXPECT_EQ(e.kind, entry_kind::call);
    EXPECT_EQ(e.origin, 7u);
    EXPECT_EQ(e.sequence, 42u);
    EXPECT_EQ(e.wall_ns, 123456789);
    EXPECT_EQ(e.method, metrics::method::put);
    v1::PutRequest back;
    ASSERT_TRUE(back.ParseFromArray(e.body.data(), static_cast<int>(e.body.size())));
    EXPECT_EQ(back.value(), req.value());
  }
  entry e;
  EXPECT_FALSE(decode(bytes + std::string(8, '\0'), &e)) << "more than padding";
  EXPECT_FALSE(decode(bytes + "x", &e)) << "padding is zeros";
  EXPECT_FALSE(decode(bytes.substr(0, bytes.size() - 1), &e)) << "cut short";
  std::string bad = bytes;
  bad[0] = 9;
  EXPECT_FALSE(decode(bad, &e)) << "another format";
}

// The payloads an entry carries, or {"<refused>"}.
std::vector<std::string> payloads_of(std::string_view entry) {
  std::vector<std::string> out;
  if (!for_each_payload(entry, [&](std::string_view p) { out.emplace_back(p); })) {
    return {"<refused>"};
  }
  return out;
}

TEST(replica_frame, proposals_taken_together_share_an_entry_and_come_back_in_order) {
  v1::PutRequest req;
  req.set_key("k");
  std::vector<std::string> proposals;
  for (int i = 0; i < 5; ++i) {
    req.set_value(std::string(static_cast<std::size_t>(i) + 1, 'v'));
    proposals.push_back(encode_call(7, static_cast<uint64_t>(i), 0, metrics::method::put, req));
  }
  const std::vector<std::string> entries = frame_entries(proposals);
  ASSERT_EQ(entries.size(), 1u);
  for (std::size_t pad = 0; pad < 8; ++pad) {
    EXPECT_EQ(payloads_of(entries[0] + std::string(pad, '\0')), proposals) << pad;
  }
  EXPECT_EQ(payloads_of(entries[0] + std::string(8, '\0')), std::vector<std::string>{"<refused>"})
      << "more than padding";
  EXPECT_EQ(payloads_of(entries[0] + "x"), std::vector<std::string>{"<refused>"});
  EXPECT_EQ(payloads_of(entries[0].substr(0, entries[0].size() - 1)),
            std::vector<std::string>{"<refused>"})
      << "cut short: nothing of it applies";
}

TEST(replica_frame, a_lone_proposal_stays_bare_and_frames_stop_at_their_size) {
  const std::string one = encode_init(1, 0, 0, "store");
  const std::vector<std::string> bare = frame_entries({one});
  ASSERT_EQ(bare.size(), 1u);
  EXPECT_EQ(bare[0], one) << "what earlier versions wrote, and read as such";
  EXPECT_EQ(payloads_of(one + std::string(3, '\0')),
            std::vector<std::string>{one + std::string(3, '\0')})
      << "a bare entry goes to the state machine as it is (entry.h takes the padding)";
  // 100 KiB each: two fit in a frame's 256 KiB, a third starts the next; a payload larger than
  // a frame is an entry of its own.
  const std::string big = encode_init(1, 0, 0, std::string(100 << 10, 's'));
  const std::string huge = encode_init(1, 0, 0, std::string(300 << 10, 'h'));
  const std::vector<std::string> proposals = {big, big, big, huge, one};
  std::vector<std::size_t> counts;
  const std::vector<std::string> entries = frame_entries(proposals, &counts);
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(counts, (std::vector<std::size_t>{2, 1, 1, 1})) << "each entry's proposals";
  std::vector<std::string> back;
  for (const std::string& e : entries) {
    EXPECT_LE(e.size(), std::max(k_frame_bytes + 64, huge.size()));
    for (std::string& p : payloads_of(e)) back.push_back(std::move(p));
  }
  EXPECT_EQ(back, proposals);
  EXPECT_EQ(entries[2], huge);
}

TEST(replica_config, the_in_memory_log_bound_has_a_floor_and_names_it) {
  v1::ServerConfig c = config::defaults();
  EXPECT_EQ(c.startup().raft_log_max_bytes(), 64u << 20);
  ASSERT_TRUE(config::validate(c).ok());
  // Four whole messages (startup.max_message_bytes, 4 MiB by default) at least, on a replica.
  c.mutable_startup()->set_raft_log_max_bytes((16u << 20) - 1);
  EXPECT_TRUE(config::validate(c).ok()) << "a single server has no Raft log";
  c.mutable_startup()->set_raft_id(1);
  c.mutable_startup()->set_data_dir("/var/lib/shoal");
  c.mutable_startup()->set_raft_members("1=127.0.0.1:7001/127.0.0.1:50051");
  const absl::Status st = config::validate(c);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("startup.raft_log_max_bytes must be at least four times "
                              "startup.max_message_bytes (16777216 here)"),
            std::string_view::npos)
      << st.message();
  c.mutable_startup()->set_raft_log_max_bytes(16u << 20);
  EXPECT_TRUE(config::validate(c).ok());
  c.mutable_startup()->set_raft_snapshot_trailing(0);
  EXPECT_FALSE(config::validate(c).ok()) << "no trailing entries: libraft would drop its log";
}

TEST(replica_entry, expiries_and_the_store_id_round_trip) {
  const std::vector<due_key> due = {{"a", 3}, {std::string("b\0c", 3), 9}};
  entry e;
  ASSERT_TRUE(decode(encode_expire(1, 0, 5, due) + std::string(3, '\0'), &e));
  EXPECT_EQ(e.kind, entry_kind::expire);
  ASSERT_EQ(e.due.size(), 2u);
  EXPECT_EQ(e.due[1].key, std::string("b\0c", 3));
  EXPECT_EQ(e.due[1].mod_revision, 9u);
  const std::string init = encode_init(1, 0, 5, "0123456789abcdef");  // e's views point into it
  ASSERT_TRUE(decode(init, &e));
  EXPECT_EQ(e.kind, entry_kind::init);
  EXPECT_EQ(e.body, "0123456789abcdef");
  const std::string settings = encode_settings(1, 0, 5, std::string("\x0a\x02\x08\x01", 4));
  ASSERT_TRUE(decode(settings, &e));
  EXPECT_EQ(e.kind, entry_kind::settings);
  EXPECT_EQ(e.body, std::string("\x0a\x02\x08\x01", 4));
  std::string padded = settings;
  padded.append(8 - padded.size() % 8, '\0');  // as Raft's disk log hands it back
  EXPECT_TRUE(decode(padded, &e));
  // A count that the bytes cannot hold is refused before anything is reserved.
  std::string huge = encode_expire(1, 0, 5, {});
  huge[huge.size() - 1] = '\x7f';
  EXPECT_FALSE(decode(huge, &e));
}

TEST(replica_member, members_parse_and_name_what_is_wrong) {
  auto m =
      parse_members("1=10.0.0.1:7001/10.0.0.1:50051, 2=shoal-1.shoal:7001/shoal-1.shoal:50051");
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->size(), 2u);
  EXPECT_EQ((*m)[1].id, 2u);
  EXPECT_EQ((*m)[1].peer, "shoal-1.shoal:7001");
  EXPECT_EQ((*m)[1].client, "shoal-1.shoal:50051");
  EXPECT_EQ((*m)[0].address(), "10.0.0.1:7001/10.0.0.1:50051");
  EXPECT_FALSE(parse_members("").ok());
  EXPECT_FALSE(parse_members("0=a:1/a:2").ok());
  EXPECT_FALSE(parse_members("1=a:1").ok());
  EXPECT_FALSE(parse_members("1=a:1/a:99999").ok());
  auto twice = parse_members("1=a:1/a:2,1=b:1/b:2");
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("twice"), std::string::npos);
  auto second = parse_members("1=a:1/a:2,x");
  EXPECT_NE(second.status().message().find("item 2"), std::string::npos);
}

// A replica's store never expires by itself: reads hide what is past its deadline, writes still
// find it, and only the leader's expire_if removes it, with its revision and event.
TEST(replica_store, expiry_waits_for_the_leaders_decision) {
  rt::clock clock;
  clock.pause();
  watch::hub hub(watch::hub::options{});
  store::store kv({.shards = 4, .clock = &clock, .hub = &hub, .expire_on_access = false});
  auto ignore = [](const store::entry_view*, const store::entry_view*, bool) {};
  ASSERT_TRUE(kv.put("t", "v", {store::ttl_spec::kind::after_ms, 100}, {}, {}, ignore).ok());
  const uint64_t written = kv.revision();
  clock.advance(std::chrono::milliseconds(200));
  EXPECT_FALSE(kv.get("t", [](const store::entry&) {}));
  EXPECT_EQ(kv.revision(), written) << "a read expired it";
  const auto due = kv.due(10);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].key, "t");
  EXPECT_EQ(due[0].mod_revision, written);
  EXPECT_FALSE(kv.expire_if("t", written + 5)) << "another write's entry";
  EXPECT_TRUE(kv.expire_if("t", written));
  EXPECT_EQ(kv.revision(), written + 1);
  EXPECT_EQ(kv.keys(), 0u);
  EXPECT_TRUE(kv.due(10).empty());
}

}  // namespace
}  // namespace shoal::service::replica
