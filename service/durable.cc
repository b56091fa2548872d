#include "service/durable.h"

#include <random>
#include <vector>

#include "absl/strings/str_format.h"
#include "service/log.h"
#include "service/wal/replay.h"

namespace shoal::service {
namespace {

int64_t ns_since_epoch(std::chrono::nanoseconds d) { return d.count(); }

wal::sync_policy policy_of(const v1::LiveSettings& live) {
  wal::sync_policy p = wal::sync_policy::always;
  (void)wal::parse_sync_policy(live.fsync(), &p);  // validated with the config
  return p;
}

// A record's changes as the store takes them: wall-clock deadlines back on the runtime's clock
// (one that passed while shoald was down is due at once).
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
        if (op.meta.deadline_wall_ns != 0) {
          int64_t at = 0;
          if (__builtin_add_overflow(clock_now, op.meta.deadline_wall_ns - wall_now, &at)) {
            at = std::numeric_limits<int64_t>::max();
          }
          r.expires_at_ns = std::max<int64_t>(at, 1);
        }
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
      truncate_damaged_(startup.wal_truncate_damaged()) {}

durable::~durable() = default;

absl::StatusOr<std::string> durable::restore(store::store& kv, watch::hub& hub,
                                             const rt::clock& clock,
                                             const v1::LiveSettings& live) {
  const auto began = std::chrono::steady_clock::now();
  const int64_t clock_now = ns_since_epoch(clock.now().time_since_epoch());
  const int64_t wall_now = ns_since_epoch(std::chrono::system_clock::now().time_since_epoch());
  std::vector<store::restored_op> ops;
  auto replayed = wal::replay(fs_, dir_->wal_dir(), 0, truncate_damaged_,
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
  } else if (!before->clean && before->loose) {
    why_new = "the last run stopped without syncing writes it had acknowledged (fsync interval "
              "or none)";
  }
  store_id_ = why_new.empty() ? before->store_id : new_store_id();

  wal::journal::options o;
  o.clock = &clock;
  o.segment_bytes = segment_bytes_;
  auto j = wal::journal::open(fs_, dir_->wal_dir(), o, replayed->last_revision + 1);
  if (!j.ok()) return j.status();
  journal_ = std::move(*j);
  const wal::sync_policy p = policy_of(live);
  loose_ = p != wal::sync_policy::always;
  if (auto st = dir_->write_meta({.store_id = store_id_, .clean = false, .loose = loose_});
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
    if (auto st = dir_->write_meta({.store_id = store_id_, .clean = false, .loose = true});
        !st.ok()) {
      return st;
    }
    loose_ = true;
  }
  journal_->set_policy(p, std::chrono::milliseconds(live.fsync_interval_ms()));
  return absl::OkStatus();
}

void durable::close() {
  if (!journal_) return;
  if (auto st = journal_->close(); !st.ok()) {
    SHOAL_LOG(error, "the log could not be synced at exit; the next start takes a new store id",
              {{"error", std::string(st.message())}});
    return;
  }
  if (auto st = dir_->write_meta({.store_id = store_id_, .clean = true, .loose = false});
      !st.ok()) {
    SHOAL_LOG(error, "the clean stop could not be recorded", {{"error", std::string(st.message())}});
  }
}

}  // namespace shoal::service
