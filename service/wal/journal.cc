#include "service/wal/journal.h"

#include <time.h>

#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/blocking.h"
#include "runtime/sync/select.h"
#include "runtime/time/sleep.h"
#include "service/log.h"
#include "service/wal/record.h"
#include "service/wal/replay.h"

namespace shoal::service::wal {
namespace {

int64_t ns_of(std::chrono::nanoseconds d) { return d.count(); }

int64_t wall_now_ns() {
  return ns_of(std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::system_clock::now().time_since_epoch()));
}

int64_t coarse_wall_now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

bool has_deadline(const watch::event& e) {
  if (e.type == watch::event::kind::txn) {
    for (const watch::event_ptr& p : e.parts()) {
      if (p->type == watch::event::kind::put && p->entry().meta.expires_at_ns != 0) return true;
    }
    return false;
  }
  return e.type == watch::event::kind::put && e.entry().meta.expires_at_ns != 0;
}

// A deadline on the runtime's clock as wall-clock time, saturating.
int64_t to_wall(int64_t deadline, int64_t clock_now, int64_t wall_now) {
  if (deadline == 0) return 0;
  int64_t out = 0;
  if (__builtin_add_overflow(wall_now, deadline - clock_now, &out)) {
    return std::numeric_limits<int64_t>::max();
  }
  return out == 0 ? 1 : out;
}

void add_op(record_builder& b, const watch::event& e, int64_t clock_now, int64_t wall_now) {
  switch (e.type) {
    case watch::event::kind::put: {
      const store::entry_view v = e.entry();
      b.put(e.key(), v.value,
            op_meta{.create_revision = v.meta.create_revision,
                    .version = v.meta.version,
                    .deadline_wall_ns = to_wall(v.meta.expires_at_ns, clock_now, wall_now)});
      break;
    }
    case watch::event::kind::remove:
      b.remove(e.key());
      break;
    case watch::event::kind::expire:
      b.expire(e.key());
      break;
    case watch::event::kind::txn:
    case watch::event::kind::tick:
    case watch::event::kind::rules:
    case watch::event::kind::reset:
      break;
  }
}

}  // namespace

bool parse_sync_policy(std::string_view s, sync_policy* out) {
  if (s == "always") {
    *out = sync_policy::always;
  } else if (s == "interval") {
    *out = sync_policy::interval;
  } else if (s == "none") {
    *out = sync_policy::none;
  } else {
    return false;
  }
  return true;
}

absl::StatusOr<std::unique_ptr<journal>> journal::open(file_system& fs, std::string dir, options o,
                                                       uint64_t next_revision) {
  const std::string path = absl::StrCat(dir, "/", segment_name(next_revision));
  auto f = fs.open_append(path);
  if (!f.ok()) return f.status();
  if ((*f)->size() != 0) {  // replay did not see it: appending would repeat its revisions
    return absl::DataLossError(absl::StrCat(
        path, " already holds records from revision ", next_revision,
        ", which the start did not replay: the directory listing and the files disagree"));
  }
  if (auto st = fs.sync_dir(dir); !st.ok()) return st;
  return std::unique_ptr<journal>(new journal(fs, std::move(dir), o, std::move(*f), next_revision));
}

journal::journal(file_system& fs, std::string dir, options o, std::unique_ptr<append_file> f,
                 uint64_t next_revision)
    : fs_(fs), dir_(std::move(dir)), opt_(o), file_(std::move(f)) {
  file_written_ = file_->size();
  segment_size_ = file_written_;
  open_first_ = next_revision;
  written_ = next_revision - 1;
  synced_ = next_revision - 1;
}

journal::~journal() = default;

void journal::record(const watch::event& e) {
  if (failed_.load(std::memory_order_relaxed)) return;  // fail-stop: writes are refused anyway
  // The clocks are read once per record, precisely only when a TTL deadline is converted: the
  // record's own time is for people (the coarse clock is good to a few milliseconds and costs a
  // fifth of the precise one, under the hub's lock).
  const bool deadline = has_deadline(e);
  const int64_t wall = deadline ? wall_now_ns() : coarse_wall_now_ns();
  const int64_t now = deadline ? ns_of(opt_.clock->now().time_since_epoch()) : 0;
  {
    rt::plain_lock lock(mu_);
    const std::size_t before = pending_.size();
    record_builder b(&pending_, e.revision, wall, e.type == watch::event::kind::txn);
    if (e.type == watch::event::kind::txn) {
      for (const watch::event_ptr& p : e.parts()) add_op(b, *p, now, wall);
    } else {
      add_op(b, e, now, wall);
    }
    b.finish();
    pending_last_ = e.revision;
    pending_bytes_.fetch_add(pending_.size() - before, std::memory_order_relaxed);
  }
  work_.notify_one();
}

void journal::set_policy(sync_policy p, std::chrono::milliseconds interval) {
  interval_ms_.store(std::max<int64_t>(1, interval.count()), std::memory_order_relaxed);
  policy_.store(p, std::memory_order_release);
  work_.notify_one();
  progress_.notify_waiters();  // waiters re-read the policy
}

bool journal::settled(uint64_t revision) const {
  if (synced_.load(std::memory_order_acquire) >= revision) return true;
  if (failed_.load(std::memory_order_acquire)) return false;
  if (policy() == sync_policy::always) return false;
  return pending_bytes_.load(std::memory_order_relaxed) <= opt_.max_pending_bytes ||
         written_.load(std::memory_order_acquire) >= revision;
}

rt::task<bool> journal::settle(uint64_t revision) {
  for (;;) {
    auto woken = progress_.notified();  // before the check: a wake-up in between is not lost
    if (settled(revision)) co_return true;
    if (failed_.load(std::memory_order_acquire)) co_return false;
    co_await std::move(woken);
  }
}

std::string journal::failure() const {
  rt::plain_lock lock(const_cast<rt::plain_mutex&>(mu_));
  return failure_;
}

journal::stats journal::statistics() const {
  return {syncs_.load(std::memory_order_relaxed), bytes_written_.load(std::memory_order_relaxed),
          segment_size_.load(std::memory_order_relaxed),
          closed_bytes_.load(std::memory_order_relaxed)};
}

journal::staging journal::stage_pending() {
  staging b;
  rt::plain_lock lock(mu_);
  // Staged first, then written by the blocking closure (write_staged): if the runtime stops
  // before that closure runs, the records stay staged for close(), in order.
  // Three buffers take turns (pending, staged, being written), each keeping its capacity: a
  // large buffer freed and allocated again at every write costs page faults on every page.
  if (staged_.empty()) {
    staged_.swap(pending_);
  } else {
    staged_.append(pending_);
    pending_.clear();
  }
  staged_last_ = pending_last_;
  b.bytes = staged_.size();
  b.last_revision = staged_last_;
  pending_bytes_.store(0, std::memory_order_relaxed);
  return b;
}

absl::Status journal::write_staged(bool sync) {
  {
    rt::plain_lock lock(mu_);
    writing_.bytes.swap(staged_);  // staged_ takes the last written buffer back, empty
    writing_.last_revision = staged_last_;
  }
  const absl::StatusOr<bool> synced = write_out(writing_, sync);
  const uint64_t last = writing_.bytes.empty() ? 0 : writing_.last_revision;
  writing_.bytes.clear();
  // A burst's buffer is not kept for ever (three of them take turns).
  if (writing_.bytes.capacity() > (8u << 20)) std::string().swap(writing_.bytes);
  // Recorded here, on the thread that wrote: a runtime that stops before the writer task hears
  // of the outcome neither loses a failure (close() would write after it) nor a sync.
  if (!synced.ok()) {
    fail(synced.status());
    return synced.status();
  }
  if (last != 0) written_.store(last, std::memory_order_release);
  if (*synced) {
    synced_.store(written_.load(std::memory_order_relaxed), std::memory_order_release);
    syncs_.fetch_add(1, std::memory_order_relaxed);
  }
  progress_.notify_waiters();
  return absl::OkStatus();
}

absl::StatusOr<bool> journal::write_out(const batch& b, bool sync) {
  if (!b.bytes.empty()) {
    if (auto st = file_->append(b.bytes); !st.ok()) return st;
    file_written_ += b.bytes.size();
    bytes_written_.fetch_add(b.bytes.size(), std::memory_order_relaxed);
  }
  const bool roll = file_written_ >= opt_.segment_bytes && !b.bytes.empty();
  if (sync || roll) {
    const auto began = std::chrono::steady_clock::now();
    if (auto st = file_->sync(); !st.ok()) return st;
    if (observe_sync_ != nullptr) observe_sync_(std::chrono::steady_clock::now() - began);
  }
  if (roll) {
    // The next record's revision names the next segment; it is synced into the directory before
    // anything is written to it.
    auto f = fs_.open_append(absl::StrCat(dir_, "/", segment_name(b.last_revision + 1)));
    if (!f.ok()) return f.status();
    if (auto st = fs_.sync_dir(dir_); !st.ok()) return st;
    file_ = std::move(*f);
    closed_bytes_.fetch_add(file_written_);
    file_written_ = 0;
    open_first_.store(b.last_revision + 1, std::memory_order_release);
    rolled_.notify_waiters();
  }
  segment_size_.store(file_written_, std::memory_order_relaxed);
  return sync || roll;
}

void journal::fail(const absl::Status& st) {
  SHOAL_LOG(error, "the log failed: writes are refused until shoald restarts",
            {{"error", std::string(st.message())}});
  {
    rt::plain_lock lock(mu_);
    failure_ = std::string(st.message());
  }
  failed_.store(true, std::memory_order_release);
  progress_.notify_waiters();
}

rt::task<> journal::run() {
  auto next_sync = opt_.clock->now();
  for (;;) {
    auto woken = work_.notified();
    const staging b = stage_pending();
    const sync_policy p = policy();
    const uint64_t written = b.bytes == 0 ? written_.load() : b.last_revision;
    const bool dirty = written > synced_.load();
    const auto now = opt_.clock->now();
    const bool sync =
        p == sync_policy::always ? dirty : p == sync_policy::interval && dirty && now >= next_sync;
    if (b.bytes == 0 && !sync) {
      if (p == sync_policy::interval && dirty) {
        (void)co_await rt::select(rt::to_task(rt::sleep_until(next_sync)),
                                  rt::to_task(std::move(woken)));
      } else {
        co_await std::move(woken);
      }
      continue;
    }
    // Named, not built inside the co_await (the g++ 12 pitfall in runtime/README.md: a
    // capturing temporary there is destroyed twice).
    auto writing = rt::spawn_blocking([this, sync] { return write_staged(sync); });
    auto done = co_await std::move(writing);
    if (!done || !done->ok()) co_return;  // failed (write_staged said so), or stopping
    if (sync) {
      next_sync = now + std::chrono::milliseconds(interval_ms_.load(std::memory_order_relaxed));
    }
  }
}

absl::Status journal::close() {
  if (failed()) return absl::UnavailableError(failure());
  (void)stage_pending();  // after anything a stopped writer left staged
  return write_staged(true);
}

}  // namespace shoal::service::wal
