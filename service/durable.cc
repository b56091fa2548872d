#include "service/durable.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <random>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/blocking.h"
#include "service/log.h"
#include "service/wal/replay.h"
#include "service/wal/snapshot.h"

namespace shoal::service {
namespace {

int64_t ns_since_epoch(std::chrono::nanoseconds d) { return d.count(); }

wal::sync_policy policy_of(const v1::LiveSettings& live) {
  wal::sync_policy p = wal::sync_policy::always;
  (void)wal::parse_sync_policy(live.fsync(), &p);  // validated with the config
  return p;
}

// A wall-clock deadline back on the runtime's clock (one that passed while shoald was down is due
// at once).
int64_t to_clock(int64_t deadline_wall, int64_t clock_now, int64_t wall_now) {
  if (deadline_wall == 0) return 0;
  int64_t left = 0;
  int64_t at = 0;
  if (__builtin_sub_overflow(deadline_wall, wall_now, &left)) {
    left = deadline_wall < 0 ? std::numeric_limits<int64_t>::min()
                             : std::numeric_limits<int64_t>::max();
  }
  if (__builtin_add_overflow(clock_now, left, &at)) {
    at = left < 0 ? 1 : std::numeric_limits<int64_t>::max();
  }
  return std::max<int64_t>(at, 1);  // a deadline long past: due at once
}

// A record's changes as the store takes them.
void to_restored(const wal::record_view& rec, int64_t clock_now, int64_t wall_now,
                 std::vector<store::restored_op>* out) {
  out->clear();
  for (const wal::op_view& op : rec.ops) {
    store::restored_op r;
    r.key = op.key;
    switch (op.type) {
      case wal::op_type::put:
        r.type = store::restored_op::kind::put;
        r.value = op.value;
        r.create_revision = op.meta.create_revision;
        r.version = op.meta.version;
        r.expires_at_ns = to_clock(op.meta.deadline_wall_ns, clock_now, wall_now);
        break;
      case wal::op_type::remove:
        r.type = store::restored_op::kind::remove;
        break;
      case wal::op_type::expire:
        r.type = store::restored_op::kind::expire;
        break;
    }
    out->push_back(r);
  }
}

}  // namespace

std::string new_store_id() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd());
  return absl::StrFormat("%016x", gen());
}

absl::StatusOr<std::unique_ptr<durable>> durable::open(const v1::StartupSettings& startup,
                                                       wal::file_system& fs) {
  auto dir = wal::data_dir::open(fs, startup.data_dir());
  if (!dir.ok()) return dir.status();
  return std::unique_ptr<durable>(new durable(fs, std::move(*dir), startup));
}

durable::durable(wal::file_system& fs, std::unique_ptr<wal::data_dir> dir,
                 const v1::StartupSettings& startup)
    : fs_(fs),
      dir_(std::move(dir)),
      segment_bytes_(startup.wal_segment_bytes()),
      snapshot_log_bytes_(startup.snapshot_log_bytes()),
      truncate_damaged_(startup.wal_truncate_damaged()) {}

durable::~durable() = default;

absl::StatusOr<std::string> durable::restore(store::store& kv, watch::hub& hub,
                                             const rt::clock& clock, const v1::LiveSettings& live) {
  const auto began = std::chrono::steady_clock::now();
  const int64_t clock_now = ns_since_epoch(clock.now().time_since_epoch());
  const int64_t wall_now = ns_since_epoch(std::chrono::system_clock::now().time_since_epoch());
  // The newest snapshot, then the log after it.
  uint64_t base = 0;
  auto newest = wal::newest_snapshot(fs_, dir_->wal_dir());
  if (!newest.ok()) return newest.status();
  if (*newest) {
    auto loaded = wal::read_snapshot(
        fs_, absl::StrCat(dir_->wal_dir(), "/", (*newest)->second),
        [&](std::string_view key, const wal::snap_entry& e) {
          return kv.load(key, e.value,
                         {.create_revision = e.create_revision,
                          .mod_revision = e.mod_revision,
                          .version = e.version,
                          .expires_at_ns = to_clock(e.deadline_wall_ns, clock_now, wall_now)});
        });
    if (!loaded.ok()) return loaded.status();
    base = loaded->revision;
    hub.start_at(base);
    rt::plain_lock lock(snap_mu_);
    snap_ = {loaded->revision, loaded->file_bytes, loaded->keys, 0};
  }
  std::vector<store::restored_op> ops;
  auto replayed =
      wal::replay(fs_, dir_->wal_dir(), {.after = base, .truncate_damage = truncate_damaged_},
                  [&](const wal::record_view& rec) {
                    to_restored(rec, clock_now, wall_now, &ops);
                    return kv.restore(rec.revision, rec.group, ops);
                  });
  if (!replayed.ok()) return replayed.status();

  const auto& before = dir_->previous();
  std::string why_new;
  if (!before) {
    why_new = "a new data directory";
  } else if (replayed->cut_damage) {
    why_new = "the log was cut at damage (--wal_truncate_damaged)";
  } else if (replayed->last_revision < before->revision) {
    why_new = absl::StrCat("the log ends at revision ", replayed->last_revision,
                           ", before revision ", before->revision,
                           " the last run had reached: files of the data directory are missing");
  } else if (!before->clean && before->loose) {
    why_new =
        "the last run stopped without syncing writes it had acknowledged (fsync interval "
        "or none)";
  }
  store_id_ = why_new.empty() ? before->store_id : new_store_id();

  wal::journal::options o;
  o.clock = &clock;
  o.segment_bytes = segment_bytes_;
  auto j = wal::journal::open(fs_, dir_->wal_dir(), o, replayed->last_revision + 1);
  if (!j.ok()) return j.status();
  journal_ = std::move(*j);
  // The segments already on disk are closed: the compactor counts them.
  auto segs = wal::list_segments(fs_, dir_->wal_dir());
  if (!segs.ok()) return segs.status();
  for (const auto& [first, name] : *segs) {
    if (first >= replayed->last_revision + 1) continue;
    auto size = fs_.file_size(absl::StrCat(dir_->wal_dir(), "/", name));
    if (size.ok()) journal_->add_closed(*size);
  }
  const wal::sync_policy p = policy_of(live);
  loose_ = p != wal::sync_policy::always;
  start_revision_ = replayed->last_revision;
  if (auto st = dir_->write_meta(
          {.store_id = store_id_, .clean = false, .loose = loose_, .revision = start_revision_});
      !st.ok()) {
    return st;
  }
  journal_->set_policy(p, std::chrono::milliseconds(live.fsync_interval_ms()));
  hub.set_journal(journal_.get());

  recovered_ = {replayed->records, replayed->bytes, replayed->last_revision,
                std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - began)};
  SHOAL_LOG(info, "store restored from the log",
            {{"data_dir", dir_->path()},
             {"records", static_cast<int64_t>(recovered_.records)},
             {"revision", static_cast<int64_t>(recovered_.revision)},
             {"keys", static_cast<int64_t>(kv.keys())},
             {"ms", static_cast<int64_t>(recovered_.took.count())},
             {"store_id", store_id_},
             {"new_store_id", why_new.empty() ? std::string("no") : why_new}});
  return store_id_;
}

absl::Status durable::follow(const v1::LiveSettings& live) {
  const wal::sync_policy p = policy_of(live);
  const bool loose = p != wal::sync_policy::always;
  if (loose && !loose_) {
    // Recorded before the first write is acknowledged unsynced.
    if (auto st = dir_->write_meta(
            {.store_id = store_id_, .clean = false, .loose = true, .revision = start_revision_});
        !st.ok()) {
      return st;
    }
    loose_ = true;
  }
  journal_->set_policy(p, std::chrono::milliseconds(live.fsync_interval_ms()));
  return absl::OkStatus();
}

durable::snapshot_state durable::last_snapshot() const {
  rt::plain_lock lock(snap_mu_);
  return snap_;
}

absl::StatusOr<wal::snapshot_info> durable::compact_in_background(uint64_t open_first) {
  // A fold of the whole store is seconds of CPU that nobody waits for: it runs on a thread of its
  // own at the lowest priority, so the workers (and the log's writes, on the blocking pool) come
  // first. A thread cannot raise its priority back without privileges: hence its own thread.
  absl::StatusOr<wal::snapshot_info> out = absl::UnknownError("not run");
  std::thread folder([&] {
    (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 19);
    rt::plain_lock lock(files_mu_);
    out = wal::compact(fs_, dir_->wal_dir(), open_first);
  });
  folder.join();
  return out;
}

rt::task<> durable::compact_when_due() {
  for (;;) {
    auto rolled = journal_->rolled();
    if (journal_->statistics().closed_bytes >= snapshot_log_bytes_ && !journal_->failed()) {
      const uint64_t open_first = journal_->open_segment_first();
      const uint64_t closed = journal_->statistics().closed_bytes;
      const auto began = std::chrono::steady_clock::now();
      auto compacting = rt::spawn_blocking(  // named: the g++ 12 pitfall (runtime/README.md)
          [this, open_first] { return compact_in_background(open_first); });
      auto done = co_await std::move(compacting);
      if (!done) co_return;  // the runtime is stopping
      if (!done->ok()) {
        SHOAL_LOG(error, "the snapshot failed; the log keeps growing until the next try",
                  {{"error", std::string(done->status().message())}});
      } else {
        journal_->forget_closed(closed);
        const wal::snapshot_info& info = **done;
        {
          rt::plain_lock lock(snap_mu_);
          snap_ = {info.revision, info.file_bytes, info.keys, snap_.taken + 1};
        }
        SHOAL_LOG(
            info, "snapshot taken; the log before it is gone",
            {{"revision", static_cast<int64_t>(info.revision)},
             {"keys", static_cast<int64_t>(info.keys)},
             {"bytes", static_cast<int64_t>(info.file_bytes)},
             {"log_bytes_freed", static_cast<int64_t>(closed)},
             {"ms", static_cast<int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                             std::chrono::steady_clock::now() - began)
                                             .count())}});
      }
    }
    co_await std::move(rolled);
  }
}

absl::StatusOr<durable::backup_file> durable::backup() {
  rt::plain_lock lock(files_mu_);
  // Under `always` what replies showed; under `interval` and `none`, what is written (replies did
  // not wait for the sync, and the synced revision may lag far behind).
  const uint64_t revision = journal_->policy() == wal::sync_policy::always
                                ? journal_->durable_revision()
                                : journal_->written_revision();
  wal::snap_state state;
  uint64_t base = 0;
  auto newest = wal::newest_snapshot(fs_, dir_->wal_dir());
  if (!newest.ok()) return newest.status();
  if (*newest) {
    auto read = wal::read_snapshot(fs_, absl::StrCat(dir_->wal_dir(), "/", (*newest)->second),
                                   [&](std::string_view key, const wal::snap_entry& e) {
                                     state.emplace(std::string(key), e);
                                     return absl::OkStatus();
                                   });
    if (!read.ok()) return read.status();
    base = read->revision;
  }
  auto replayed =
      wal::replay(fs_, dir_->wal_dir(), {.after = base, .repair = false, .up_to = revision},
                  [&](const wal::record_view& r) {
                    wal::apply_record(state, r);
                    return absl::OkStatus();
                  });
  if (!replayed.ok()) return replayed.status();
  if (replayed->last_revision != revision) {
    return absl::InternalError(absl::StrCat("the copy reached revision ", replayed->last_revision,
                                            " where revision ", revision, " was expected"));
  }
  const int64_t wall = ns_since_epoch(std::chrono::system_clock::now().time_since_epoch());
  return backup_file{revision, wal::encode_snapshot(revision, state, wall)};
}

void durable::close() {
  if (!journal_) return;
  if (auto st = journal_->close(); !st.ok()) {
    SHOAL_LOG(error, "the log could not be synced at exit; the next start takes a new store id",
              {{"error", std::string(st.message())}});
    return;
  }
  if (auto st = dir_->write_meta({.store_id = store_id_,
                                  .clean = true,
                                  .loose = false,
                                  .revision = journal_->durable_revision()});
      !st.ok()) {
    SHOAL_LOG(error, "the clean stop could not be recorded",
              {{"error", std::string(st.message())}});
  }
}

}  // namespace shoal::service
