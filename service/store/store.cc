#include "service/store/store.h"

#include <algorithm>
#include <limits>
#include <queue>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace shoal::service::store {
namespace {

// Entries removed per lock hold by a prefix delete: long deletes let other writers in between.
constexpr std::size_t k_prefix_delete_batch = 256;

// A strict decimal integer: an optional '-', then digits, fitting in int64.
bool parse_int64(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  bool negative = s.front() == '-';
  if (negative) s.remove_prefix(1);
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  const uint64_t limit = negative ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
  if (v > limit) return false;
  *out = negative ? static_cast<int64_t>(0 - v) : static_cast<int64_t>(v);
  return true;
}

}  // namespace

absl::StatusOr<int64_t> incremented(const entry* current, int64_t delta) {
  int64_t value = 0;
  if (current != nullptr && !parse_int64(current->value(), &value)) {
    return absl::FailedPreconditionError(
        absl::StrCat("the value of the key is not a decimal integer (", current->value().size(),
                     " bytes), so it cannot be incremented"));
  }
  int64_t sum = 0;
  if (__builtin_add_overflow(value, delta, &sum)) {
    return absl::OutOfRangeError(
        absl::StrCat(value, " + ", delta, " overflows a signed 64-bit integer"));
  }
  return sum;
}

bool prefix_end(std::string_view prefix, std::string* end) {
  std::string s(prefix);
  while (!s.empty()) {
    if (static_cast<unsigned char>(s.back()) != 0xff) {
      s.back() = static_cast<char>(static_cast<unsigned char>(s.back()) + 1);
      *end = std::move(s);
      return true;
    }
    s.pop_back();
  }
  return false;
}

bool condition::holds(const entry* current) const {
  switch (type) {
    case kind::none:
      return true;
    case kind::if_absent:
      return current == nullptr;
    case kind::if_present:
      return current != nullptr;
    case kind::if_mod_revision:
      return current != nullptr && current->mod_revision() == revision;
  }
  return false;
}

store::store(options o)
    : clock_(o.clock),
      hub_(o.hub),
      shard_mask_(o.shards - 1),
      expiry_changed_(o.expiry_changed),
      expire_on_access_(o.expire_on_access) {
  shards_.reserve(o.shards);
  for (uint32_t i = 0; i < o.shards; ++i) shards_.push_back(std::make_unique<shard>());
}

std::size_t store::shard_index(std::string_view key) const {
  return absl::Hash<std::string_view>{}(key)&shard_mask_;
}

int64_t store::now_ns() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_->now().time_since_epoch())
      .count();
}

int64_t store::ttl_remaining_ms(const entry::meta& m) const {
  if (m.expires_at_ns == 0) return 0;
  const int64_t left = m.expires_at_ns - now_ns();
  return left <= 0 ? 1 : (left + 999'999) / 1'000'000;
}

int64_t store::expiry_for(ttl_spec ttl, const entry* current) const {
  switch (ttl.type) {
    case ttl_spec::kind::none:
      return 0;
    case ttl_spec::kind::after_ms: {
      if (ttl.ms <= 0) return 0;
      const int64_t ms = std::min(ttl.ms, k_max_ttl_ms);
      int64_t at = 0;
      if (__builtin_add_overflow(now_ns(), ms * 1'000'000, &at)) {
        return std::numeric_limits<int64_t>::max();
      }
      return at;
    }
    case ttl_spec::kind::keep:
      return current ? current->expires_at_ns() : 0;
  }
  return 0;
}

entry* store::live_entry(shard& s, std::string_view key) {
  entry* e = s.find(key);
  // The clock is read only for an entry with a TTL (most have none).
  if (expire_on_access_ && e != nullptr && e->expires_at_ns() != 0 && e->expired(now_ns())) {
    expire_locked(s, e);
    return nullptr;
  }
  return e;
}

void store::expire_locked(shard& s, entry* e) { entry::unref(unlink_locked(s, e, true)); }

entry* store::unlink_locked(shard& s, entry* e, bool expired, uint64_t* revision) {
  const uint64_t rev = hub_->publish(
      watch::event::removal(expired ? watch::event::kind::expire : watch::event::kind::remove, *e));
  if (revision != nullptr) *revision = rev;
  s.erase(e);
  keys_.fetch_sub(1, std::memory_order_relaxed);
  bytes_.fetch_sub(e->charged_bytes(), std::memory_order_relaxed);
  return e;
}

store::planned_put store::plan_put(std::string_view key, std::string_view value,
                                   const entry::meta& m, entry* current) {
  if (current == nullptr) {
    entry* fresh = entry::make(key, value, m);
    return {fresh, watch::event::put(key, value, m, fresh, nullptr, false)};
  }
  if (current->unshared() && current->fits(value.size())) {
    return {nullptr, watch::event::put(key, value, m, nullptr, current, false)};
  }
  return {entry::make(key, value, m), watch::event::put(key, value, m, nullptr, current, true)};
}

entry* store::apply_put(shard& s, entry* current, const planned_put& p, std::string_view value) {
  const entry::meta stamped = p.event->entry().meta;
  if (p.fresh == nullptr) {
    s.overwrite(current, value, stamped);
    return current;
  }
  p.fresh->set_metadata(stamped);
  if (current == nullptr) {
    s.insert(p.fresh);
  } else {
    s.replace(current, p.fresh);
    entry::unref(current);  // the event has it now
  }
  return p.fresh;
}

store::written store::write_locked(shard& s, std::string_view key, std::string_view value,
                                   entry* current, int64_t expires_at) {
  entry::meta m;
  m.version = current ? current->version() + 1 : 1;
  m.create_revision = current ? current->create_revision() : 0;  // 0: this write creates it
  m.expires_at_ns = expires_at;
  planned_put p = plan_put(key, value, m, current);
  hub_->publish(p.event);  // stamps the revisions on the event's metadata
  entry* e = apply_put(s, current, p, value);
  if (expires_at != 0 && expiry_changed_ != nullptr) {
    const int64_t wakeup = purge_wakeup_.load(std::memory_order_seq_cst);
    if (wakeup == 0 || expires_at < wakeup) expiry_changed_->notify_one();
  }
  return {e, std::move(p.event)};
}

absl::Status store::reserve(const entry* current, std::size_t new_bytes, const limits& lim) {
  const bool new_key = current == nullptr;
  if (new_key && keys_.fetch_add(1, std::memory_order_relaxed) >= lim.max_keys) {
    keys_.fetch_sub(1, std::memory_order_relaxed);
    absl::Status st = absl::ResourceExhaustedError(
        absl::StrCat("the store holds its maximum of ", lim.max_keys, " keys (live.max_keys)"));
    st.SetPayload(k_limit_payload, absl::Cord(k_limit_max_keys));
    return st;
  }
  const std::size_t old_bytes = current ? current->charged_bytes() : 0;
  if (new_bytes > old_bytes) {
    const uint64_t grow = new_bytes - old_bytes;
    if (bytes_.fetch_add(grow, std::memory_order_relaxed) + grow > lim.max_bytes) {
      bytes_.fetch_sub(grow, std::memory_order_relaxed);
      if (new_key) keys_.fetch_sub(1, std::memory_order_relaxed);
      absl::Status st = absl::ResourceExhaustedError(absl::StrCat(
          "the store would exceed its maximum of ", lim.max_bytes, " bytes (live.max_bytes)"));
      st.SetPayload(k_limit_payload, absl::Cord(k_limit_max_bytes));
      return st;
    }
  } else if (new_bytes < old_bytes) {  // an overwrite of the same size touches no counter
    bytes_.fetch_sub(old_bytes - new_bytes, std::memory_order_relaxed);
  }
  return absl::OkStatus();
}

void store::unreserve(const entry* current, std::size_t new_bytes) {
  if (current == nullptr) keys_.fetch_sub(1, std::memory_order_relaxed);
  const std::size_t old_bytes = current ? current->charged_bytes() : 0;
  if (new_bytes > old_bytes) {
    bytes_.fetch_sub(new_bytes - old_bytes, std::memory_order_relaxed);
  } else {
    bytes_.fetch_add(old_bytes - new_bytes, std::memory_order_relaxed);
  }
}

bool store::get(std::string_view key, visit found) {
  shard& s = shard_for(key);
  rt::plain_lock lock(s.mu);
  entry* e = live_entry(s, key);
  if (e == nullptr) return false;
  if (!expire_on_access_ && e->expires_at_ns() != 0 && e->expired(now_ns())) return false;
  found(*e);
  return true;
}

absl::StatusOr<write_result> store::put(std::string_view key, std::string_view value, ttl_spec ttl,
                                        const condition& cond, const limits& lim,
                                        observe_write obs) {
  shard& s = shard_for(key);
  rt::plain_lock lock(s.mu);
  entry* current = live_entry(s, key);
  if (!cond.holds(current)) {
    const entry_view now = current ? entry_view::of(*current) : entry_view{};
    obs(nullptr, current ? &now : nullptr, false);
    return write_result{false, revision()};
  }
  if (auto st = reserve(current, key.size() + value.size(), lim); !st.ok()) return st;
  const written w = write_locked(s, key, value, current, expiry_for(ttl, current));
  const entry_view before = w.event->has_previous() ? w.event->previous() : entry_view{};
  const entry_view after = entry_view::of(*w.stored);
  obs(w.event->has_previous() ? &before : nullptr, &after, true);
  return write_result{true, after.meta.mod_revision};
}

absl::StatusOr<write_result> store::remove(std::string_view key, const condition& cond,
                                           observe obs) {
  shard& s = shard_for(key);
  rt::plain_lock lock(s.mu);
  entry* current = live_entry(s, key);
  if (!cond.holds(current)) {
    const entry_view now = current ? entry_view::of(*current) : entry_view{};
    obs(nullptr, current ? &now : nullptr);
    return write_result{false, revision()};
  }
  if (current == nullptr) return write_result{true, revision()};  // nothing to delete
  uint64_t rev = 0;  // the removal's own: revision() may already be a later write's
  entry* removed = unlink_locked(s, current, false, &rev);
  const entry_view before = entry_view::of(*removed);
  obs(&before, nullptr);
  entry::unref(removed);
  return write_result{true, rev};
}

uint64_t store::remove_prefix(std::string_view prefix, visit each) {
  std::string end;
  const bool has_end = prefix_end(prefix, &end);
  uint64_t removed = 0;
  for (auto& sp : shards_) {
    shard& s = *sp;
    for (;;) {
      rt::plain_lock lock(s.mu);
      std::vector<entry*> batch;
      s.scan(prefix, end, has_end, [&](entry* e) {
        batch.push_back(e);
        return batch.size() < k_prefix_delete_batch;
      });
      if (batch.empty()) break;
      const int64_t now = now_ns();
      for (entry* e : batch) {
        const bool expired = e->expired(now);
        entry* gone = unlink_locked(s, e, expired);
        if (!expired) {
          each(*gone);
          ++removed;
        }
        entry::unref(gone);
      }
    }
  }
  return removed;
}

absl::StatusOr<int64_t> store::increment(std::string_view key, int64_t delta, ttl_spec ttl,
                                         const limits& lim, visit after) {
  shard& s = shard_for(key);
  rt::plain_lock lock(s.mu);
  entry* current = live_entry(s, key);
  auto sum = incremented(current, delta);
  if (!sum.ok()) return sum.status();
  const std::string text = absl::StrCat(*sum);
  if (auto st = reserve(current, key.size() + text.size(), lim); !st.ok()) return st;
  const written w = write_locked(s, key, text, current, expiry_for(ttl, current));
  after(*w.stored);
  return *sum;
}

store::range_page store::range(const range_query& q) {
  struct cursor {
    shard* s;
    std::vector<entry_copy> buf;
    std::size_t pos = 0;
    std::string from;
    bool exhausted = false;
  };
  // Each shard first copies about its share of the page (keys hash evenly), by count and by
  // bytes, plus a little; the few shards that hold more are refilled. Copying twice the share
  // costs more than the refills it saves, most of all in a large store where every entry copied
  // is a cache miss. The byte share keeps a page of large values from copying `shards` times
  // what it returns: a fill stops after its share, having taken at least one entry, so at most
  // one page plus one entry per shard is ever copied.
  const std::size_t batch = std::clamp<std::size_t>(
      (q.max_items + shards_.size() - 1) / shards_.size() + 3, 4, q.max_items + 1);
  const std::size_t byte_share = q.max_bytes / shards_.size() + 1;
  auto fill = [&](cursor& c) {
    c.buf.clear();
    c.pos = 0;
    rt::plain_lock lock(c.s->mu);
    const int64_t now = now_ns();
    std::vector<entry*> expired;
    std::size_t taken = 0;
    std::size_t bytes = 0;
    bool cut = false;
    c.s->scan(c.from, q.to, q.has_to, [&](entry* e) {
      if (e->expired(now)) {
        if (expire_on_access_) expired.push_back(e);
        return true;
      }
      const std::size_t size = e->key().size() + (q.keys_only ? 0 : e->value().size());
      if (taken > 0 && bytes + size > byte_share) {
        cut = true;  // not copied: the next fill starts from it
        return false;
      }
      bytes += size;
      c.buf.push_back(entry_copy{std::string(e->key()),
                                 q.keys_only ? std::string() : std::string(e->value()),
                                 e->metadata()});
      return ++taken < batch;
    });
    for (entry* e : expired) expire_locked(*c.s, e);
    c.exhausted = taken < batch && !cut;
    if (!c.buf.empty()) c.from = c.buf.back().key + '\0';
  };

  std::vector<cursor> cursors(shards_.size());
  auto greater = [&](std::size_t a, std::size_t b) {
    return cursors[a].buf[cursors[a].pos].key > cursors[b].buf[cursors[b].pos].key;
  };
  std::priority_queue<std::size_t, std::vector<std::size_t>, decltype(greater)> heap(greater);
  for (std::size_t i = 0; i < shards_.size(); ++i) {
    cursors[i].s = shards_[i].get();
    cursors[i].from = q.from;
    fill(cursors[i]);
    if (!cursors[i].buf.empty()) heap.push(i);
  }

  range_page page;
  std::size_t bytes = 0;
  while (!heap.empty() && page.entries.size() < q.max_items) {
    const std::size_t i = heap.top();
    cursor& c = cursors[i];
    entry_copy& e = c.buf[c.pos];
    const std::size_t size = e.key.size() + e.value.size();
    if ((!page.entries.empty() || q.strict_bytes) && bytes + size > q.max_bytes) break;
    heap.pop();
    bytes += size;
    page.entries.push_back(std::move(e));
    if (++c.pos == c.buf.size()) {
      if (!c.exhausted) fill(c);
      if (c.pos < c.buf.size()) heap.push(i);
    } else {
      heap.push(i);
    }
  }
  if (!heap.empty()) {
    page.continuation = page.entries.empty() ? q.from : page.entries.back().key + '\0';
  }
  return page;
}

uint64_t store::count(const range_query& q) {
  uint64_t n = 0;
  for (auto& sp : shards_) {
    shard& s = *sp;
    rt::plain_lock lock(s.mu);
    const int64_t now = now_ns();
    std::vector<entry*> expired;
    s.scan(q.from, q.to, q.has_to, [&](entry* e) {
      if (e->expired(now)) {
        if (expire_on_access_) expired.push_back(e);
      } else {
        ++n;
      }
      return true;
    });
    for (entry* e : expired) expire_locked(s, e);
  }
  return n;
}

int64_t store::earliest_expiry() {
  int64_t earliest = 0;
  for (auto& sp : shards_) {
    rt::plain_lock lock(sp->mu);
    const int64_t e = sp->earliest_expiry();
    if (e != 0 && (earliest == 0 || e < earliest)) earliest = e;
  }
  return earliest;
}

std::size_t store::expire_due() {
  std::size_t visited = 0;
  for (auto& sp : shards_) {
    shard& s = *sp;
    rt::plain_lock lock(s.mu);
    const int64_t now = now_ns();
    while (entry* e = s.first_expired(now)) {
      expire_locked(s, e);
      ++visited;
    }
  }
  return visited;
}

std::vector<store::due_entry> store::due(std::size_t max) {
  std::vector<due_entry> out;
  for (auto& sp : shards_) {
    shard& s = *sp;
    rt::plain_lock lock(s.mu);
    const int64_t now = now_ns();
    s.scan_expired(now, [&](entry* e) {
      if (out.size() >= max) return false;
      out.push_back(due_entry{std::string(e->key()), e->metadata().mod_revision});
      return true;
    });
    if (out.size() >= max) break;
  }
  return out;
}

bool store::expire_if(std::string_view key, uint64_t mod_revision) {
  shard& s = shard_for(key);
  rt::plain_lock lock(s.mu);
  entry* e = s.find(key);
  if (e == nullptr || e->metadata().mod_revision != mod_revision) return false;
  expire_locked(s, e);
  return true;
}

void store::for_each(visit each) {
  for (auto& sp : shards_) {
    shard& s = *sp;
    rt::plain_lock lock(s.mu);
    s.scan("", "", false, [&](entry* e) {
      each(*e);
      return true;
    });
  }
}

void store::clear() {
  for (auto& sp : shards_) {
    shard& s = *sp;
    rt::plain_lock lock(s.mu);
    std::vector<entry*> all;
    s.scan("", "", false, [&](entry* e) {
      all.push_back(e);
      return true;
    });
    for (entry* e : all) {
      keys_.fetch_sub(1, std::memory_order_relaxed);
      bytes_.fetch_sub(e->charged_bytes(), std::memory_order_relaxed);
      s.erase(e);
      entry::unref(e);
    }
  }
}

absl::Status store::load(std::string_view key, std::string_view value, const entry::meta& m) {
  shard& s = shard_for(key);
  rt::plain_lock lock(s.mu);
  if (s.find(key) != nullptr) {
    return absl::DataLossError("a snapshot holds the same key twice");
  }
  (void)reserve(nullptr, key.size() + value.size(), limits{});
  s.insert(entry::make(key, value, m));
  return absl::OkStatus();
}

}  // namespace shoal::service::store
