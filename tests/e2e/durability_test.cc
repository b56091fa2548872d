// Durability: shoald with --data_dir, restarted cleanly and killed with SIGKILL for real. Before
// the write-ahead log, every restart emptied the store (and shoald had no --data_dir): each test
// here fails on that build.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/ops.h"
#include "tests/e2e/shoald_process.h"

namespace shoal {
namespace {

namespace fs = std::filesystem;
using testing::ctx;
using testing::run_command;
using testing::run_to_exit;
using testing::shoald_process;

struct data_dir {
  std::string path = testing::temp_dir();
  ~data_dir() { fs::remove_all(path); }
  std::string flag() const { return "--data_dir=" + path; }
};

v1::StatusResponse status_of(shoald_process& s) {
  v1::StatusResponse r;
  EXPECT_TRUE(s.admin()->Status(ctx().get(), v1::StatusRequest(), &r).ok());
  return r;
}

v1::PutResponse put(shoald_process& s, const std::string& k, const std::string& v,
                    int64_t ttl_ms = 0) {
  v1::PutRequest req;
  req.set_key(k);
  req.set_value(v);
  if (ttl_ms > 0) req.set_ttl_ms(ttl_ms);
  v1::PutResponse r;
  EXPECT_TRUE(s.kv()->Put(ctx().get(), req, &r).ok());
  return r;
}

// Every entry, by key.
std::map<std::string, v1::Entry> everything(shoald_process& s) {
  std::map<std::string, v1::Entry> out;
  v1::RangeRequest req;
  req.set_prefix("");
  for (;;) {
    v1::RangeResponse r;
    const grpc::Status st = s.kv()->Range(ctx().get(), req, &r);
    EXPECT_TRUE(st.ok()) << st.error_message();
    if (!st.ok()) break;
    for (const auto& e : r.entries()) out[e.key()] = e;
    if (r.continuation().empty()) break;
    req.set_continuation(r.continuation());
  }
  return out;
}

std::string newest_segment(const std::string& dir) {
  std::string newest;
  for (const auto& e : fs::directory_iterator(dir + "/wal")) {
    if (e.file_size() > 0 && e.path().string() > newest) newest = e.path().string();
  }
  return newest;
}

TEST(durability, a_restart_keeps_every_key_value_version_ttl_and_the_store_id) {
  data_dir d;
  std::map<std::string, v1::Entry> before;
  std::string store_id;
  uint64_t revision = 0;
  {
    shoald_process s({d.flag(), "--metrics_listen="});
    put(s, "a", "1");
    put(s, "a", "2");
    put(s, "b", std::string("bin\0ary", 7));
    put(s, "long-ttl", "x", 3'600'000);
    put(s, "gone", "x");
    v1::DeleteRequest del;
    del.set_key("gone");
    v1::DeleteResponse dr;
    ASSERT_TRUE(s.kv()->Delete(ctx().get(), del, &dr).ok());
    v1::TxnRequest txn;
    *txn.add_success() = testing::put_op("t1", "one");
    *txn.add_success() = testing::put_op("t2", "two");
    v1::TxnResponse tr;
    ASSERT_TRUE(s.kv()->Txn(ctx().get(), txn, &tr).ok());
    before = everything(s);
    const auto st = status_of(s);
    store_id = st.header().store_id();
    revision = st.header().revision();
    EXPECT_EQ(st.durability().durable_revision(), revision);
    EXPECT_EQ(s.terminate(), 0);
  }
  shoald_process s({d.flag()});
  const auto st = status_of(s);
  EXPECT_EQ(st.header().store_id(), store_id);
  EXPECT_EQ(st.header().revision(), revision);
  EXPECT_EQ(st.durability().recovered_records(), revision);
  const auto after = everything(s);
  ASSERT_EQ(after.size(), before.size());
  for (const auto& [k, e] : before) {
    ASSERT_TRUE(after.count(k)) << k;
    const v1::Entry& a = after.at(k);
    EXPECT_EQ(a.value(), e.value()) << k;
    EXPECT_EQ(a.create_revision(), e.create_revision()) << k;
    EXPECT_EQ(a.mod_revision(), e.mod_revision()) << k;
    EXPECT_EQ(a.version(), e.version()) << k;
  }
  // A long TTL keeps running across the restart, from where it was.
  EXPECT_GT(after.at("long-ttl").ttl_remaining_ms(), 3'000'000);
  EXPECT_LE(after.at("long-ttl").ttl_remaining_ms(), 3'600'000);
  EXPECT_EQ(after.count("gone"), 0u);
  // Revisions go on.
  EXPECT_EQ(put(s, "c", "3").entry().mod_revision(), revision + 1);
}

TEST(durability, a_ttl_that_ran_out_while_shoald_was_down_is_expired_at_start) {
  data_dir d;
  {
    shoald_process s({d.flag(), "--metrics_listen="});
    put(s, "short", "x", 300);
    put(s, "stays", "x");
    EXPECT_EQ(s.terminate(), 0);
  }
  // Down for longer than the TTL (a wall-clock deadline): waited on the clock it is measured by.
  const auto until = std::chrono::system_clock::now() + std::chrono::milliseconds(400);
  while (std::chrono::system_clock::now() < until) std::this_thread::yield();
  shoald_process s({d.flag()});
  const auto all = everything(s);
  EXPECT_EQ(all.count("short"), 0u);
  EXPECT_EQ(all.count("stays"), 1u);
}

// The directory says how far the store had come: a log that ends before that is missing files
// (a volume restored from an old copy, a hand that deleted segments), and clients must be told.
TEST(durability, a_log_that_ends_before_the_last_run_did_takes_a_new_store_id) {
  data_dir d;
  std::string store_id;
  {
    shoald_process s({d.flag(), "--metrics_listen="});
    for (int i = 0; i < 10; ++i) put(s, "k" + std::to_string(i), "v");
    store_id = status_of(s).header().store_id();
    EXPECT_EQ(s.terminate(), 0);
  }
  for (const auto& e : fs::directory_iterator(d.path + "/wal")) fs::remove(e.path());
  shoald_process s({d.flag(), "--metrics_listen="});
  const auto st = status_of(s);
  EXPECT_NE(st.header().store_id(), store_id);
  EXPECT_EQ(st.header().revision(), 0u);
}

TEST(durability, a_second_shoald_on_the_same_data_directory_exits_naming_it) {
  data_dir d;
  shoald_process first({d.flag()});
  const auto [code, out] = run_to_exit(d.flag());
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(code, 124) << "the second shoald started: " << out;
  EXPECT_NE(out.find("in use by another shoald (pid " + std::to_string(first.pid()) + ")"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("listening"), std::string::npos) << out;
}

TEST(durability, a_watch_resumes_across_a_kill_with_no_gap_and_no_duplicate) {
  data_dir d;
  std::string store_id;
  {
    shoald_process s({d.flag()});
    for (int i = 1; i <= 20; ++i) put(s, "w/" + std::to_string(i), std::to_string(i));
    store_id = status_of(s).header().store_id();
    ::kill(s.pid(), SIGKILL);
    s.wait_exit(std::chrono::seconds(10));
  }
  shoald_process s({d.flag()});
  for (int i = 21; i <= 30; ++i) put(s, "w/" + std::to_string(i), std::to_string(i));
  // A watcher that had seen revision 12 before the kill resumes from 13 with the store id it saw.
  v1::WatchRequest req;
  req.set_key("w/");
  req.set_prefix(true);
  req.set_start_revision(13);
  req.set_store_id(store_id);
  auto c = ctx();
  auto stream = s.kv()->Watch(c.get(), req);
  std::vector<uint64_t> revisions;
  v1::WatchResponse r;
  while (revisions.size() < 18 && stream->Read(&r)) {
    ASSERT_FALSE(r.compacted());
    ASSERT_FALSE(r.canceled()) << r.cancel_reason();
    for (const auto& e : r.events()) {
      revisions.push_back(e.revision());
      EXPECT_EQ(e.entry().key(), "w/" + std::to_string(e.revision()));
    }
  }
  c->TryCancel();
  std::vector<uint64_t> expected;
  for (uint64_t i = 13; i <= 30; ++i) expected.push_back(i);
  EXPECT_EQ(revisions, expected);
}

TEST(durability, a_damaged_log_refuses_to_start_naming_the_file_unless_told_to_cut_it) {
  data_dir d;
  std::string store_id;
  {
    shoald_process s({d.flag(), "--metrics_listen="});
    for (int i = 0; i < 50; ++i) put(s, "k" + std::to_string(i), std::string(100, 'v'));
    store_id = status_of(s).header().store_id();
    EXPECT_EQ(s.terminate(), 0);
  }
  const std::string seg = newest_segment(d.path);
  {
    std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(seg) / 2));
    f.put('\x7f');
  }
  const auto [code, out] = run_to_exit(d.flag());
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(code, 124) << "shoald started on a damaged log: " << out;
  EXPECT_NE(out.find(seg), std::string::npos) << out;
  EXPECT_NE(out.find("at byte "), std::string::npos) << out;
  EXPECT_NE(out.find("--wal_truncate_damaged"), std::string::npos) << out;

  shoald_process s({d.flag(), "--wal_truncate_damaged"});
  const auto st = status_of(s);
  EXPECT_NE(st.header().store_id(), store_id);
  EXPECT_GT(st.header().revision(), 0u);
  EXPECT_LT(st.header().revision(), 50u);
}

uint64_t dir_bytes(const std::string& dir) {
  uint64_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) n += e.file_size();
  }
  return n;
}

// Rewrites 1,000 keys of 1 KiB six times over: the log grows past the snapshot threshold again
// and again, and each snapshot lets the segments it covers go.
TEST(durability, snapshots_keep_the_disk_near_the_live_data_and_a_restart_loads_them) {
  data_dir d;
  const uint64_t segment = 1 << 20;
  const uint64_t threshold = 2 << 20;
  const std::vector<std::string> flags = {
      d.flag(), "--metrics_listen=", "--wal_segment_bytes=" + std::to_string(segment),
      "--snapshot_log_bytes=" + std::to_string(threshold)};
  std::map<std::string, std::string> live;
  uint64_t revision = 0;
  {
    shoald_process s(flags);
    for (int round = 0; round < 6; ++round) {
      for (int b = 0; b < 10; ++b) {
        v1::BatchRequest req;
        for (int i = 0; i < 100; ++i) {
          const std::string k = "k" + std::to_string(b * 100 + i);
          const std::string v(1024, static_cast<char>('a' + round));
          *req.add_ops() = testing::put_op(k, v);
          live[k] = v;
        }
        v1::BatchResponse r;
        ASSERT_TRUE(s.kv()->Batch(ctx().get(), req, &r).ok());
      }
    }
    // The compactor runs beside the writes: wait for it to have caught up with the closed log.
    v1::StatusResponse st;
    do {
      st = status_of(s);
    } while (st.durability().log_closed_bytes() >= threshold ||
             st.durability().snapshot_revision() == 0);
    revision = st.header().revision();
    uint64_t live_bytes = 0;
    for (const auto& [k, v] : live) live_bytes += k.size() + v.size();
    // The snapshot plus what is left of the log: within 1.5x the live data, plus the closed log
    // below the threshold and the open segment.
    EXPECT_LE(dir_bytes(d.path), live_bytes * 3 / 2 + threshold + segment)
        << "live " << live_bytes << " bytes";
    EXPECT_EQ(s.terminate(), 0);
  }
  shoald_process s(flags);
  const auto st = status_of(s);
  EXPECT_EQ(st.header().revision(), revision);
  EXPECT_GT(st.durability().snapshot_revision(), 0u);
  EXPECT_LT(st.durability().recovered_records(), revision);  // the rest came from the snapshot
  const auto all = everything(s);
  ASSERT_EQ(all.size(), live.size());
  for (const auto& [k, v] : live) EXPECT_EQ(all.at(k).value(), v) << k;
  // A watch from before the snapshot is told so (the history starts after it).
  v1::WatchRequest w;
  w.set_prefix(true);
  w.set_start_revision(1);
  auto c = ctx();
  auto stream = s.kv()->Watch(c.get(), w);
  v1::WatchResponse r;
  ASSERT_TRUE(stream->Read(&r));
  EXPECT_TRUE(r.compacted());
}

// Runs shoalctl; its exit code and what it printed.
std::pair<int, std::string> shoalctl(const std::string& args) {
  return run_command(std::string("timeout 60 ") + SHOALCTL_PATH + " " + args + " 2>&1");
}

TEST(durability, a_snapshot_saved_with_shoalctl_restores_into_a_new_data_directory) {
  data_dir d;
  data_dir restored;
  fs::remove_all(restored.path);
  const std::string file = d.path + "-backup.snap";
  std::map<std::string, v1::Entry> before;
  std::string store_id;
  {
    shoald_process s({d.flag()});
    for (int i = 0; i < 300; ++i) put(s, "k" + std::to_string(i), std::string(i, 'x'));
    before = everything(s);
    store_id = status_of(s).header().store_id();
    const auto [code, out] = shoalctl("--addr=" + s.address() + " snapshot save " + file);
    ASSERT_EQ(code, 0) << out;
    EXPECT_NE(out.find("revision: 300"), std::string::npos) << out;
    EXPECT_NE(out.find("keys: 300"), std::string::npos) << out;
  }
  {
    const auto [code, out] = shoalctl("snapshot status " + file);
    ASSERT_EQ(code, 0) << out;
    EXPECT_NE(out.find("revision: 300"), std::string::npos) << out;
    EXPECT_NE(out.find("checksum: "), std::string::npos) << out;
  }
  {
    const auto [code, out] = shoalctl("snapshot restore " + file + " --data-dir=" + restored.path);
    ASSERT_EQ(code, 0) << out;
  }
  shoald_process s({restored.flag()});
  const auto st = status_of(s);
  EXPECT_EQ(st.header().revision(), 300u);
  EXPECT_NE(st.header().store_id(), store_id);  // a restore is a new store
  const auto after = everything(s);
  ASSERT_EQ(after.size(), before.size());
  for (const auto& [k, e] : before) {
    EXPECT_EQ(after.at(k).value(), e.value()) << k;
    EXPECT_EQ(after.at(k).mod_revision(), e.mod_revision()) << k;
  }
  // A damaged file is refused, by status and by restore alike.
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x01');
  }
  const auto [code, out] = shoalctl("snapshot status " + file);
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(out.find("damaged"), std::string::npos) << out;
  fs::remove(file);
}

TEST(durability, an_in_memory_server_says_it_has_nothing_durable_to_snapshot) {
  shoald_process s;
  auto c = ctx();
  auto stream = s.admin()->Snapshot(c.get(), v1::SnapshotRequest());
  v1::SnapshotChunk chunk;
  EXPECT_FALSE(stream->Read(&chunk));
  const grpc::Status st = stream->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("--data_dir"), std::string::npos) << st.error_message();
}

// What a writer was told: key = value at revision.
struct acked {
  std::string value;
  uint64_t revision = 0;
};

class ack_log {
 public:
  void add(const std::string& k, const std::string& v, uint64_t rev) {
    std::lock_guard lock(mu_);
    acks_[k] = {v, rev};
    ++count_;
  }
  uint64_t count() {
    std::lock_guard lock(mu_);
    return count_;
  }
  std::map<std::string, acked> all() {
    std::lock_guard lock(mu_);
    return acks_;
  }

 private:
  std::mutex mu_;
  std::map<std::string, acked> acks_;
  uint64_t count_ = 0;
};

// Writers of every kind, each on a connection of its own, until a call fails (the server died).
std::vector<std::thread> start_writers(shoald_process& s, int cycle, ack_log& log) {
  std::vector<std::thread> out;
  const std::string c = std::to_string(cycle);
  out.emplace_back([&s, c, &log, ch = s.new_connection()] {  // Put
    auto kv = v1::KV::NewStub(ch);
    for (int i = 0;; ++i) {
      const std::string k = "put/" + c + "/" + std::to_string(i);
      v1::PutRequest req;
      req.set_key(k);
      req.set_value("p" + std::to_string(i));
      v1::PutResponse r;
      if (!kv->Put(ctx(std::chrono::milliseconds(5000)).get(), req, &r).ok()) return;
      log.add(k, req.value(), r.entry().mod_revision());
    }
  });
  out.emplace_back([&s, c, &log, ch = s.new_connection()] {  // Txn: two keys, one revision
    auto kv = v1::KV::NewStub(ch);
    for (int i = 0;; ++i) {
      const std::string k = "txn/" + c + "/" + std::to_string(i);
      v1::TxnRequest req;
      auto* cmp = req.add_compares();
      cmp->set_key(k + "/a");
      cmp->set_target(v1::Compare::EXISTS);
      cmp->set_exists(false);
      *req.add_success() = testing::put_op(k + "/a", "ta" + std::to_string(i));
      *req.add_success() = testing::put_op(k + "/b", "tb" + std::to_string(i));
      v1::TxnResponse r;
      if (!kv->Txn(ctx(std::chrono::milliseconds(5000)).get(), req, &r).ok()) return;
      if (!r.succeeded()) continue;
      log.add(k + "/a", "ta" + std::to_string(i), r.revision());
      log.add(k + "/b", "tb" + std::to_string(i), r.revision());
    }
  });
  out.emplace_back([&s, c, &log, ch = s.new_connection()] {  // Batch of three puts
    auto kv = v1::KV::NewStub(ch);
    for (int i = 0;; ++i) {
      v1::BatchRequest req;
      for (int j = 0; j < 3; ++j) {
        *req.add_ops() =
            testing::put_op("batch/" + c + "/" + std::to_string(i) + "/" + std::to_string(j),
                            "b" + std::to_string(j));
      }
      v1::BatchResponse r;
      if (!kv->Batch(ctx(std::chrono::milliseconds(5000)).get(), req, &r).ok()) return;
      for (int j = 0; j < r.results_size(); ++j) {
        if (!r.results(j).has_put()) continue;
        log.add(req.ops(j).put().key(), req.ops(j).put().value(),
                r.results(j).put().entry().mod_revision());
      }
    }
  });
  out.emplace_back([&s, c, &log, ch = s.new_connection()] {  // Pipeline, 8 in flight
    auto kv = v1::KV::NewStub(ch);
    auto call = ctx(std::chrono::milliseconds(60'000));
    auto stream = kv->Pipeline(call.get());
    std::map<uint64_t, v1::PipelineRequest> sent;
    for (uint64_t id = 0;;) {
      for (int j = 0; j < 8; ++j, ++id) {
        v1::PipelineRequest req;
        req.set_id(id);
        *req.mutable_op() = testing::put_op("pipe/" + c + "/" + std::to_string(id), "q");
        if (!stream->Write(req)) return;
        sent[id] = req;
      }
      for (int j = 0; j < 8; ++j) {
        v1::PipelineResponse r;
        if (!stream->Read(&r)) return;
        const auto& req = sent.at(r.id());
        if (r.result().has_put()) {
          log.add(req.op().put().key(), req.op().put().value(),
                  r.result().put().entry().mod_revision());
        }
        sent.erase(r.id());
      }
    }
  });
  return out;
}

// Every acknowledged write is there, exactly as acknowledged (keys are never rewritten, so each
// holds the revision it was written at).
void expect_all_acknowledged(shoald_process& s, ack_log& log, const std::string& when) {
  const auto all = everything(s);
  for (const auto& [k, a] : log.all()) {
    auto it = all.find(k);
    ASSERT_NE(it, all.end()) << when << ": " << k << ", acknowledged at revision " << a.revision
                             << ", is lost";
    EXPECT_EQ(it->second.value(), a.value) << when << ": " << k;
    EXPECT_EQ(it->second.mod_revision(), a.revision) << when << ": " << k;
  }
}

// The crash loop: SIGKILL at random moments under every kind of writer, fsync always.
// A process-level loop: the Release build runs it (the sanitized builds replay the log in the
// tests above, and fuzz its decoder).
TEST(durability, fifty_kills_under_load_lose_no_acknowledged_write_and_leave_no_gap) {
  SHOAL_RELEASE_ONLY("a crash loop");
  data_dir d;
  ack_log log;
  std::mt19937 gen(std::random_device{}());
  std::string store_id;
  uint64_t highest = 0;
  const int kills = 50;
  for (int cycle = 0; cycle < kills; ++cycle) {
    shoald_process s({d.flag(), "--workers=2"});
    const auto st = status_of(s);
    if (cycle == 0) store_id = st.header().store_id();
    // Nothing acknowledged was lost, so the store is the same one.
    EXPECT_EQ(st.header().store_id(), store_id) << "after kill " << cycle;
    EXPECT_GE(st.header().revision(), highest) << "after kill " << cycle;
    expect_all_acknowledged(s, log, "after kill " + std::to_string(cycle));
    if (::testing::Test::HasFatalFailure()) return;
    // A random moment: after a random number of acknowledgements, writers in full flight.
    const uint64_t target = log.count() + 1 + gen() % 300;
    auto writers = start_writers(s, cycle, log);
    while (log.count() < target) std::this_thread::yield();
    ::kill(s.pid(), SIGKILL);
    s.wait_exit(std::chrono::seconds(10));
    for (auto& t : writers) t.join();
    for (const auto& [k, a] : log.all()) highest = std::max(highest, a.revision);
  }
  shoald_process s({d.flag()});
  expect_all_acknowledged(s, log, "at the end");
  // Gap-free and never reused: the history (refilled from the log) holds every revision once,
  // and each acknowledged key at its revision with its value.
  const uint64_t last = status_of(s).header().revision();
  v1::WatchRequest req;
  req.set_prefix(true);
  req.set_start_revision(1);
  auto c = ctx(std::chrono::milliseconds(60'000));
  auto stream = s.kv()->Watch(c.get(), req);
  std::set<uint64_t> revisions;
  std::map<std::string, std::pair<std::string, uint64_t>> seen;
  v1::WatchResponse r;
  while ((revisions.empty() || *revisions.rbegin() < last) && stream->Read(&r)) {
    ASSERT_FALSE(r.compacted());
    for (const auto& e : r.events()) {
      revisions.insert(e.revision());
      seen[e.entry().key()] = {e.entry().value(), e.revision()};
    }
  }
  c->TryCancel();
  ASSERT_EQ(revisions.size(), last);
  EXPECT_EQ(*revisions.begin(), 1u);
  EXPECT_EQ(*revisions.rbegin(), last);
  for (const auto& [k, a] : log.all()) {
    ASSERT_TRUE(seen.count(k)) << k;
    EXPECT_EQ(seen[k].first, a.value) << k;
    EXPECT_EQ(seen[k].second, a.revision) << k;
  }
  EXPECT_GT(log.count(), 500u);
}

// fsync interval: replies before the sync. What was synced survives a kill; the store id changes,
// since what was acknowledged after the last sync may be gone.
TEST(durability, with_fsync_interval_a_kill_keeps_what_was_synced_and_changes_the_store_id) {
  data_dir d;
  std::map<std::string, uint64_t> written;
  std::string store_id;
  {
    shoald_process s({d.flag(), "--fsync=interval", "--fsync_interval_ms=20"});
    for (int i = 0; i < 100; ++i) {
      written["k" + std::to_string(i)] =
          put(s, "k" + std::to_string(i), "v").entry().mod_revision();
    }
    const auto st = status_of(s);
    store_id = st.header().store_id();
    EXPECT_EQ(st.durability().fsync(), "interval");
    // The interval's sync comes by itself.
    while (status_of(s).durability().durable_revision() < 100) std::this_thread::yield();
    ::kill(s.pid(), SIGKILL);
    s.wait_exit(std::chrono::seconds(10));
  }
  shoald_process s({d.flag(), "--fsync=interval"});
  const auto st = status_of(s);
  EXPECT_NE(st.header().store_id(), store_id);
  const auto all = everything(s);
  for (const auto& [k, rev] : written) {
    ASSERT_TRUE(all.count(k)) << k;
    EXPECT_EQ(all.at(k).mod_revision(), rev);
  }
}

}  // namespace
}  // namespace shoal
