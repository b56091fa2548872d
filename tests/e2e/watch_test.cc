// KV/Watch against a real shoald: order, replay from the history, compaction, lag, progress,
// filters, prev_kv, store-id mismatch, and the Range-then-Watch recipe under concurrent writers.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/shoald_process.h"

namespace shoal {
namespace {

using testing::ctx;
using testing::eventually;
using testing::shoald_process;

// The store's revision, as Status reports it.
uint64_t store_revision(shoald_process& s) {
  v1::StatusResponse st;
  EXPECT_TRUE(s.admin()->Status(ctx().get(), v1::StatusRequest(), &st).ok());
  return st.header().revision();
}

void put(v1::KV::Stub* kv, const std::string& k, const std::string& v) {
  v1::PutRequest req;
  req.set_key(k);
  req.set_value(v);
  v1::PutResponse resp;
  ASSERT_TRUE(kv->Put(ctx().get(), req, &resp).ok());
}

void del(v1::KV::Stub* kv, const std::string& k) {
  v1::DeleteRequest req;
  req.set_key(k);
  v1::DeleteResponse resp;
  ASSERT_TRUE(kv->Delete(ctx().get(), req, &resp).ok());
}

// Reads responses until `n` events arrived (or the stream ends); returns them.
std::vector<v1::Event> read_events(grpc::ClientReader<v1::WatchResponse>* r, std::size_t n,
                                   std::vector<v1::WatchResponse>* responses = nullptr) {
  std::vector<v1::Event> out;
  v1::WatchResponse resp;
  while (out.size() < n && r->Read(&resp)) {
    if (responses) responses->push_back(resp);
    for (const auto& e : resp.events()) out.push_back(e);
  }
  return out;
}

TEST(watch, events_arrive_in_revision_order_with_their_entries_and_types) {
  shoald_process s;
  auto kv = s.kv();
  v1::WatchRequest req;
  req.set_key("w/");
  req.set_prefix(true);
  req.set_prev_kv(true);
  req.set_start_revision(1);
  auto c = ctx();
  auto reader = kv->Watch(c.get(), req);
  put(kv.get(), "w/a", "1");
  put(kv.get(), "other", "x");
  put(kv.get(), "w/a", "2");
  del(kv.get(), "w/a");
  auto events = read_events(reader.get(), 3);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].type(), v1::Event::PUT);
  EXPECT_EQ(events[0].revision(), 1u);
  EXPECT_EQ(events[0].entry().value(), "1");
  EXPECT_EQ(events[1].revision(), 3u);
  EXPECT_EQ(events[1].previous().value(), "1");
  EXPECT_EQ(events[2].type(), v1::Event::DELETE);
  EXPECT_EQ(events[2].revision(), 4u);
  EXPECT_EQ(events[2].entry().mod_revision(), 4u);
  EXPECT_EQ(events[2].previous().value(), "2");
  c->TryCancel();
}

TEST(watch, a_watch_from_a_past_revision_replays_the_history_then_goes_live) {
  shoald_process s;
  auto kv = s.kv();
  for (int i = 0; i < 5; ++i) put(kv.get(), "k", std::to_string(i));
  v1::WatchRequest req;
  req.set_key("k");
  req.set_start_revision(3);
  auto c = ctx();
  auto reader = kv->Watch(c.get(), req);
  put(kv.get(), "k", "live");
  auto events = read_events(reader.get(), 4);
  ASSERT_EQ(events.size(), 4u);
  for (std::size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].revision(), 3 + i);
  EXPECT_EQ(events[3].entry().value(), "live");
  c->TryCancel();
}

TEST(watch, filters_leave_out_puts_or_deletes) {
  shoald_process s;
  auto kv = s.kv();
  put(kv.get(), "k", "1");
  del(kv.get(), "k");
  put(kv.get(), "k", "2");
  v1::WatchRequest req;
  req.set_key("k");
  req.set_start_revision(1);
  req.add_filters(v1::NO_PUT);
  auto c = ctx();
  auto reader = kv->Watch(c.get(), req);
  put(kv.get(), "k", "3");
  del(kv.get(), "k");
  auto events = read_events(reader.get(), 2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].revision(), 2u);
  EXPECT_EQ(events[1].revision(), 5u);
  for (const auto& e : events) EXPECT_EQ(e.type(), v1::Event::DELETE);
  c->TryCancel();
}

TEST(watch, a_start_revision_older_than_the_history_ends_with_compacted_then_out_of_range) {
  shoald_process s({"--history_max_events=4"});
  auto kv = s.kv();
  for (int i = 0; i < 10; ++i) put(kv.get(), "k", std::to_string(i));
  v1::WatchRequest req;
  req.set_key("k");
  req.set_start_revision(2);
  auto c = ctx();
  auto reader = kv->Watch(c.get(), req);
  v1::WatchResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  EXPECT_TRUE(resp.compacted());
  EXPECT_EQ(resp.compact_revision(), 7u);  // revisions 7..10 are kept
  EXPECT_FALSE(reader->Read(&resp));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::OUT_OF_RANGE);
}

TEST(watch, a_start_revision_from_another_store_is_treated_as_compacted) {
  shoald_process s;
  auto kv = s.kv();
  put(kv.get(), "k", "v");
  v1::WatchRequest req;
  req.set_key("k");
  req.set_start_revision(1);
  req.set_store_id("ffffffffffffffff");
  auto c = ctx();
  auto reader = kv->Watch(c.get(), req);
  v1::WatchResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  EXPECT_TRUE(resp.compacted());
  EXPECT_FALSE(reader->Read(&resp));
  auto st = reader->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_NE(st.error_message().find("restarted"), std::string::npos);
}

TEST(watch, a_quiet_watcher_gets_progress_with_the_current_revision) {
  shoald_process s;
  auto kv = s.kv();
  put(kv.get(), "elsewhere", "1");
  put(kv.get(), "elsewhere", "2");
  v1::WatchRequest req;
  req.set_key("quiet");
  req.set_progress_interval_ms(200);
  auto c = ctx();
  auto reader = kv->Watch(c.get(), req);
  v1::WatchResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  EXPECT_TRUE(resp.progress());
  EXPECT_EQ(resp.events_size(), 0);
  EXPECT_EQ(resp.header().revision(), 2u);
  put(kv.get(), "elsewhere", "3");
  do {
    ASSERT_TRUE(reader->Read(&resp));
  } while (resp.header().revision() < 3);
  EXPECT_TRUE(resp.progress());
  c->TryCancel();
}

TEST(watch, a_watcher_that_falls_behind_gets_a_final_response_naming_where_to_resume) {
  shoald_process s({"--max_message_bytes=65536", "--max_value_bytes=60000"});
  auto kv = s.kv();
  v1::WatchRequest req;
  req.set_key("big");
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto reader = kv->Watch(&c, req);
  // Do not read: the server's channel (4096 events) and the stream's buffers fill up.
  const std::string value(50'000, 'x');
  for (int i = 0; i < 5000; ++i) put(kv.get(), "big", value);
  v1::WatchResponse resp;
  uint64_t last_seen = 0;
  bool canceled = false;
  while (reader->Read(&resp)) {
    for (const auto& e : resp.events()) last_seen = e.revision();
    if (resp.canceled()) {
      canceled = true;
      EXPECT_EQ(resp.resume_revision(), last_seen + 1);  // no gap: resume right after
    }
  }
  EXPECT_TRUE(canceled);
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::ABORTED);
}

// The documented recipe: Range (revision R from the first page), Watch from R + 1, apply events
// newer than what you hold. With writers running throughout, the result is the exact state.
TEST(watch, range_then_watch_from_its_revision_plus_one_reconstructs_the_exact_state) {
  shoald_process s;
  auto kv = s.kv();
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      auto stub = s.kv();
      for (int i = 0; !stop.load(); ++i) {
        const std::string key = "r/" + std::to_string((w * 7 + i) % 50);
        if (i % 5 == 4) {
          del(stub.get(), key);
        } else {
          put(stub.get(), key, std::to_string(w) + ":" + std::to_string(i));
        }
      }
    });
  }
  // The writers have made a history before the Range starts.
  ASSERT_TRUE(eventually([&] { return store_revision(s) >= 200; }));

  struct held {
    std::string value;
    uint64_t mod_revision;
    bool present;
  };
  std::map<std::string, held> state;
  v1::RangeRequest rr;
  rr.set_prefix("r/");
  rr.set_limit(10);
  uint64_t revision = 0;
  for (;;) {
    v1::RangeResponse page;
    ASSERT_TRUE(kv->Range(ctx().get(), rr, &page).ok());
    if (revision == 0) revision = page.header().revision();
    for (const auto& e : page.entries()) state[e.key()] = {e.value(), e.mod_revision(), true};
    if (page.continuation().empty()) break;
    rr.set_continuation(page.continuation());
  }
  v1::WatchRequest wr;
  wr.set_key("r/");
  wr.set_prefix(true);
  wr.set_start_revision(revision + 1);
  grpc::ClientContext wc;
  auto reader = kv->Watch(&wc, wr);
  // The writers go on while the watch starts: at least 300 more revisions.
  ASSERT_TRUE(eventually([&] { return store_revision(s) >= revision + 300; }));
  stop = true;
  for (auto& t : writers) t.join();

  // Everything is written now: read events until the watch reaches the final revision.
  v1::GetRequest probe;
  probe.set_key("none");
  v1::GetResponse pr;
  ASSERT_TRUE(kv->Get(ctx().get(), probe, &pr).ok());
  const uint64_t final_revision = pr.header().revision();
  uint64_t seen = revision;
  v1::WatchResponse resp;
  while (seen < final_revision && reader->Read(&resp)) {
    for (const auto& e : resp.events()) {
      ASSERT_EQ(e.revision(), seen + 1) << "no gap, no duplicate";
      seen = e.revision();
      held& h = state[e.entry().key()];
      if (h.mod_revision >= e.revision()) continue;  // the range already had this or newer
      h = {e.entry().value(), e.revision(), e.type() == v1::Event::PUT};
    }
  }
  wc.TryCancel();
  ASSERT_EQ(seen, final_revision);

  // Compare with the truth.
  std::map<std::string, std::string> truth;
  v1::RangeRequest all;
  all.set_prefix("r/");
  v1::RangeResponse page;
  ASSERT_TRUE(kv->Range(ctx().get(), all, &page).ok());
  for (const auto& e : page.entries()) truth[e.key()] = e.value();
  std::map<std::string, std::string> rebuilt;
  for (const auto& [k, h] : state) {
    if (h.present) rebuilt[k] = h.value;
  }
  EXPECT_EQ(rebuilt, truth);
}

}  // namespace
}  // namespace shoal
