// store::txn — atomic multi-key transactions without a global lock (docs/design.md).
#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "service/store/store.h"

namespace shoal::service::store {
namespace {

// The locks of several shards, taken in ascending index (the store's lock order) and released in
// reverse. The analysis cannot follow a loop of locks: users assert each shard's lock held.
class shard_locks {
 public:
  shard_locks(const std::vector<std::unique_ptr<shard>>& shards,
              std::vector<std::size_t> indices) ABSL_NO_THREAD_SAFETY_ANALYSIS
      : shards_(shards),
        indices_(std::move(indices)) {
    std::sort(indices_.begin(), indices_.end());
    indices_.erase(std::unique(indices_.begin(), indices_.end()), indices_.end());
    for (std::size_t i : indices_) shards_[i]->mu.lock();
  }
  ~shard_locks() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    for (auto it = indices_.rbegin(); it != indices_.rend(); ++it) shards_[*it]->mu.unlock();
  }
  shard_locks(const shard_locks&) = delete;
  shard_locks& operator=(const shard_locks&) = delete;

 private:
  const std::vector<std::unique_ptr<shard>>& shards_;
  std::vector<std::size_t> indices_;
};

template <class A, class B>
int three_way(const A& a, const B& b) {
  return a < b ? -1 : (b < a ? 1 : 0);
}

// The bytes a branch's results take in a reply (ranges aside: they are cut to what is left).
// `current` finds a key's live entry; a get after a write in the branch sees that write.
template <class Current>
std::size_t reply_size(const std::vector<txn_op>& ops, Current&& current) {
  absl::flat_hash_map<std::string_view, std::size_t> written;  // key -> value size; absent: none
  std::size_t total = 0;
  for (const txn_op& op : ops) {
    total += k_result_overhead_bytes;
    switch (op.type) {
      case txn_op::kind::get: {
        const auto w = written.find(op.key);
        std::size_t value = 0;
        bool found = false;
        if (w != written.end()) {
          found = w->second != SIZE_MAX;
          value = found ? w->second : 0;
        } else if (const entry* e = current(op.key)) {
          found = true;
          value = e->value().size();
        }
        if (found) total += op.key.size() + value;
        break;
      }
      case txn_op::kind::put:
        written[op.key] = op.value.size();
        break;
      case txn_op::kind::increment:
        written[op.key] = 20;  // a signed 64-bit integer in decimal
        total += op.key.size() + 20;
        break;
      case txn_op::kind::remove:
        written[op.key] = SIZE_MAX;
        break;
      case txn_op::kind::range:
        break;
    }
  }
  return total;
}

}  // namespace

bool txn_compare::holds(const entry* current) const {
  int cmp = 0;
  switch (what) {
    case target::exists: {
      const bool exists_now = current != nullptr;
      return how == result::equal ? exists_now == exists : exists_now != exists;
    }
    case target::value:
      // An absent key has no value: only NOT_EQUAL holds.
      if (current == nullptr) return how == result::not_equal;
      cmp = three_way(current->value(), std::string_view(value));
      break;
    case target::version:
      cmp = three_way(static_cast<int64_t>(current ? current->version() : 0), number);
      break;
    case target::create_revision:
      cmp = three_way(static_cast<int64_t>(current ? current->create_revision() : 0), number);
      break;
    case target::mod_revision:
      cmp = three_way(static_cast<int64_t>(current ? current->mod_revision() : 0), number);
      break;
  }
  switch (how) {
    case result::equal:
      return cmp == 0;
    case result::not_equal:
      return cmp != 0;
    case result::less:
      return cmp < 0;
    case result::greater:
      return cmp > 0;
  }
  return false;
}

range_page store::range_locked(const range_query& q) {
  // Every shard is locked, and the hub too: entries found expired are left for the purge
  // task (expiring one here would publish under the hub's lock), but never shown. Entries
  // stay put while every shard is locked, so the page is chosen first and only its entries are
  // copied.
  const int64_t now = now_ns();
  std::vector<const entry*> found;
  for (auto& sp : shards_) {
    shard& s = *sp;
    s.mu.assert_held();
    std::size_t taken = 0;
    s.scan(q.from, q.to, q.has_to, [&](entry* e) {
      if (e->expired(now)) return true;
      found.push_back(e);
      return ++taken <= q.max_items;  // one more than a page: is there a next page?
    });
  }
  std::sort(found.begin(), found.end(),
            [](const entry* a, const entry* b) { return a->key() < b->key(); });
  range_page page;
  std::size_t bytes = 0;
  for (const entry* e : found) {
    const std::size_t size = e->key().size() + (q.keys_only ? 0 : e->value().size());
    if (page.entries.size() == q.max_items ||
        ((!page.entries.empty() || q.strict_bytes) && bytes + size > q.max_bytes)) {
      page.continuation = page.entries.empty() ? q.from : page.entries.back().key + '\0';
      break;
    }
    bytes += size;
    page.entries.push_back(entry_copy{std::string(e->key()),
                                      q.keys_only ? std::string() : std::string(e->value()),
                                      e->metadata()});
  }
  return page;
}

absl::StatusOr<txn_result> store::txn(const txn_request& t, const limits& lim) {
  // 1. Every shard a key of the Txn lives in, locked in index order.
  std::vector<std::size_t> touched;
  for (const auto& c : t.compares) touched.push_back(shard_index(c.key));
  for (const auto* ops : {&t.success, &t.failure}) {
    for (const auto& op : *ops) {
      if (op.type != txn_op::kind::range) {
        touched.push_back(shard_index(op.key));
        continue;
      }
      for (std::size_t i = 0; i < shards_.size(); ++i) touched.push_back(i);  // keys are hashed
    }
  }
  const shard_locks locks(shards_, std::move(touched));
  auto current = [&](std::string_view key) {
    shard& s = shard_for(key);
    s.mu.assert_held();
    return live_entry(s, key);
  };

  // 2. The compares, on the keys as they are now (an entry found expired is expired first, in
  // its own revision).
  txn_result out;
  out.succeeded = std::all_of(t.compares.begin(), t.compares.end(),
                              [&](const txn_compare& c) { return c.holds(current(c.key)); });
  const std::vector<txn_op>& ops = out.succeeded ? t.success : t.failure;

  // 3. The reply's size: the gets' results, with the values the branch itself writes before
  // them. Too large, and nothing is written.
  const std::size_t reply_bytes = reply_size(ops, current);
  if (reply_bytes > t.reply_budget) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the Txn's results come to ", reply_bytes, " bytes, more than one reply holds (",
        t.reply_budget,
        " bytes: startup.max_message_bytes less the envelope); nothing was written. Read the "
        "large values with Get or Range"));
  }
  std::size_t range_room = t.reply_budget - reply_bytes;

  // 4. Every write's value and its room under the limits, before anything changes: a write that
  // cannot be made fails the Txn, and the room taken for the others is given back.
  struct prepared {
    entry* before = nullptr;
    std::string value;
    int64_t expires_at = 0;
    int64_t number = 0;
    bool reserved = false;
  };
  std::vector<prepared> prep(ops.size());
  auto give_back = [&] {
    for (std::size_t i = 0; i < ops.size(); ++i) {
      if (prep[i].reserved) unreserve(prep[i].before, ops[i].key.size() + prep[i].value.size());
    }
  };
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const txn_op& op = ops[i];
    prepared& p = prep[i];
    if (op.type == txn_op::kind::get || op.type == txn_op::kind::range) continue;
    p.before = current(op.key);
    if (op.type == txn_op::kind::remove) continue;
    if (op.type == txn_op::kind::increment) {
      auto sum = incremented(p.before, op.delta);
      if (!sum.ok()) {
        give_back();
        return sum.status();
      }
      p.number = *sum;
      p.value = absl::StrCat(*sum);
    } else {
      p.value = op.value;
    }
    p.expires_at = expiry_for(op.ttl, p.before);
    if (auto st = reserve(p.before, op.key.size() + p.value.size(), lim); !st.ok()) {
      give_back();
      return st;
    }
    p.reserved = true;
  }

  // 5. The branch, in order, under the hub's lock: one revision for all its writes, and one
  // group event. Reads see the writes before them.
  out.results.resize(ops.size());
  int64_t earliest_expiry = 0;
  out.revision = hub_->publish_txn([&](uint64_t rev, std::vector<watch::event_ptr>& parts) {
    for (std::size_t i = 0; i < ops.size(); ++i) {
      const txn_op& op = ops[i];
      if (op.type == txn_op::kind::range) {
        // Half the room left for keys and values, half for each entry's overhead.
        range_query q = op.range;
        q.max_items = std::min(q.max_items, range_room / 2 / k_result_overhead_bytes);
        q.max_bytes = std::min(q.max_bytes, range_room / 2);
        q.strict_bytes = true;
        out.results[i].page = range_locked(q);
        for (const entry_copy& e : out.results[i].page.entries) {
          range_room -=
              std::min(range_room, e.key.size() + e.value.size() + k_result_overhead_bytes);
        }
        continue;
      }
      shard& s = shard_for(op.key);
      s.mu.assert_held();
      entry* now = s.find(op.key);
      txn_op_result& r = out.results[i];
      r.found = now != nullptr;
      if (op.type == txn_op::kind::get) {
        if (now)
          r.entry = entry_copy{std::string(now->key()), std::string(now->value()), now->metadata()};
        continue;
      }
      if (op.type == txn_op::kind::remove) {
        if (now == nullptr) continue;  // nothing to delete: no event
        watch::event_ptr ev = watch::event::removal(watch::event::kind::remove, *now);
        ev.unpublished()->stamp(rev);
        parts.push_back(std::move(ev));
        s.erase(now);
        keys_.fetch_sub(1, std::memory_order_relaxed);
        bytes_.fetch_sub(now->charged_bytes(), std::memory_order_relaxed);
        entry::unref(now);  // the event has it now
        continue;
      }
      const prepared& p = prep[i];
      entry::meta m;
      m.create_revision = now ? now->create_revision() : rev;
      m.mod_revision = rev;
      m.version = now ? now->version() + 1 : 1;
      m.expires_at_ns = p.expires_at;
      planned_put put = plan_put(op.key, p.value, m, now);
      put.event.unpublished()->stamp(rev);
      apply_put(s, now, put, p.value);
      parts.push_back(std::move(put.event));
      r.entry = entry_copy{op.key, op.type == txn_op::kind::increment ? p.value : std::string(), m};
      r.number = p.number;
      if (p.expires_at != 0 && (earliest_expiry == 0 || p.expires_at < earliest_expiry)) {
        earliest_expiry = p.expires_at;
      }
    }
  });
  if (earliest_expiry != 0 && expiry_changed_ != nullptr) {
    const int64_t wakeup = purge_wakeup_.load(std::memory_order_seq_cst);
    if (wakeup == 0 || earliest_expiry < wakeup) expiry_changed_->notify_one();
  }
  return out;
}

absl::Status store::restore(uint64_t revision, bool group, const std::vector<restored_op>& ops) {
  auto mismatch = [&](const char* why) {
    return absl::DataLossError(absl::StrCat(
        "the log's revision ", revision, " does not follow from the revisions before it: ", why));
  };
  if (hub_->revision() + 1 != revision) return mismatch("it is out of order");
  if (ops.empty() || (!group && ops.size() != 1)) return mismatch("it holds no single change");
  std::vector<std::size_t> touched;
  for (const restored_op& op : ops) touched.push_back(shard_index(op.key));
  const shard_locks locks(shards_, std::move(touched));
  const char* problem = nullptr;
  // One change, as put()/remove()/an expiry make it, under the shard's lock (and, for a group,
  // the hub's: its event is returned instead of published).
  auto apply = [&](const restored_op& op, uint64_t rev) -> watch::event_ptr {
    shard& s = shard_for(op.key);
    s.mu.assert_held();
    entry* now = s.find(op.key);
    if (op.type != restored_op::kind::put) {
      if (now == nullptr) {
        problem = "it removes a key that does not exist";
        return {};
      }
      watch::event_ptr ev =
          watch::event::removal(op.type == restored_op::kind::expire ? watch::event::kind::expire
                                                                     : watch::event::kind::remove,
                                *now);
      if (!group) hub_->publish(ev);
      s.erase(now);
      keys_.fetch_sub(1, std::memory_order_relaxed);
      bytes_.fetch_sub(now->charged_bytes(), std::memory_order_relaxed);
      entry::unref(now);  // the event has it now
      return ev;
    }
    entry::meta m;
    m.create_revision = now ? now->create_revision() : rev;
    m.mod_revision = rev;
    m.version = now ? now->version() + 1 : 1;
    m.expires_at_ns = op.expires_at_ns;
    if (m.create_revision != op.create_revision || m.version != op.version) {
      problem = "its versions of a key differ from the store's";
      return {};
    }
    (void)reserve(now, op.key.size() + op.value.size(), limits{});
    planned_put put = plan_put(op.key, op.value, m, now);
    if (group) {
      put.event.unpublished()->stamp(rev);
    } else {
      hub_->publish(put.event);
    }
    apply_put(s, now, put, op.value);
    return std::move(put.event);
  };
  if (!group) {
    (void)apply(ops.front(), revision);
  } else {
    hub_->publish_txn([&](uint64_t rev, std::vector<watch::event_ptr>& parts) {
      for (const restored_op& op : ops) {
        watch::event_ptr ev = apply(op, rev);
        if (!ev) return;
        parts.push_back(std::move(ev));
      }
    });
  }
  if (problem != nullptr) return mismatch(problem);
  if (expiry_changed_ != nullptr) expiry_changed_->notify_one();
  return absl::OkStatus();
}

}  // namespace shoal::service::store
