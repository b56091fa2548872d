// Model-based fuzzing of the store: random operations run against the store and against a plain
// ordered map that states what they mean, compared after every step. TTLs run on a paused clock
// that the input advances. Checked: every read, every write's outcome, versions, create and mod
// revisions, revisions that only grow, and the key and byte counts.
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include <fuzzer/FuzzedDataProvider.h>

#include "tests/fuzz/fuzz_env.h"

namespace {

using namespace shoal;
using fuzz::fail;
namespace store = shoal::service::store;

struct model_entry {
  std::string value;
  uint64_t version = 0;
  uint64_t create_revision = 0;
  uint64_t mod_revision = 0;
  int64_t expires_at_ns = 0;  // 0: no TTL
};

// What the store's documentation says, stated independently of its code.
struct model {
  std::map<std::string, model_entry> entries;

  bool live(const model_entry& m, int64_t now) const {
    return m.expires_at_ns == 0 || m.expires_at_ns > now;
  }
  const model_entry* find(const std::string& key, int64_t now) const {
    auto it = entries.find(key);
    return it != entries.end() && live(it->second, now) ? &it->second : nullptr;
  }
  void drop_expired(int64_t now) {
    std::erase_if(entries, [&](const auto& kv) { return !live(kv.second, now); });
  }
};

// A decimal integer: an optional minus sign, then 1 to 19 digits, within int64.
bool decimal(std::string_view s, int64_t* out) {
  std::string_view digits = s.starts_with('-') ? s.substr(1) : s;
  if (digits.empty() || digits.size() > 19) return false;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
  }
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

struct harness {
  fuzz::env e;
  model m;
  uint64_t last_revision = 0;

  int64_t now() const { return e.clock.now().time_since_epoch().count(); }

  void check_revision(uint64_t revision) {
    if (revision <= last_revision) fail("a write's revision did not grow");
    last_revision = revision;
  }

  // The deadline a TTL sets, from now, as the store documents it (a TTL of 0 or less: none).
  int64_t deadline(const store::ttl_spec& ttl, const model_entry* current) const {
    switch (ttl.type) {
      case store::ttl_spec::kind::none:
        return 0;
      case store::ttl_spec::kind::after_ms:
        return ttl.ms <= 0 ? 0 : now() + ttl.ms * 1'000'000;
      case store::ttl_spec::kind::keep:
        return current ? current->expires_at_ns : 0;
    }
    return 0;
  }

  // The store's entry for `key` against the model's.
  void compare_key(const std::string& key) {
    const model_entry* want = m.find(key, now());
    bool seen = false;
    e.kv.get(key, [&](const store::entry& got) {
      seen = true;
      if (want == nullptr) fail("the store holds a key the model deleted or expired");
      if (got.value() != want->value) fail("a value differs from the model's");
      if (got.version() != want->version) fail("a version differs from the model's");
      if (got.create_revision() != want->create_revision) fail("a create_revision differs");
      if (got.mod_revision() != want->mod_revision) fail("a mod_revision differs");
    });
    if (!seen && want != nullptr) fail("the store lost a key the model holds");
  }

  void compare_all() {
    m.drop_expired(now());
    store::range_query all;
    all.max_items = SIZE_MAX;
    all.max_bytes = SIZE_MAX;
    const store::range_page page = e.kv.range(all);
    if (page.entries.size() != m.entries.size()) fail("a full range differs in size");
    auto want = m.entries.begin();
    uint64_t bytes = 0;
    for (const auto& got : page.entries) {
      if (got.key != want->first || got.value != want->second.value) {
        fail("a full range differs from the model");
      }
      bytes += got.key.size() + got.value.size();
      ++want;
    }
    if (e.kv.keys() != m.entries.size()) fail("the key count differs from the model");
    if (e.kv.bytes() != bytes) fail("the byte count differs from the store's contents");
  }

  void put(const std::string& key, const std::string& value, store::ttl_spec ttl,
           store::condition cond) {
    const model_entry* current = m.find(key, now());
    const bool holds = cond.type == store::condition::kind::none ||
                       (cond.type == store::condition::kind::if_absent) == (current == nullptr);
    auto r = e.kv.put(key, value, ttl, cond, store::limits{},
                      [](const store::entry_view*, const store::entry_view*, bool) {});
    if (!r.ok()) fail("a put without limits failed: " + r.status().ToString());
    if (r->applied != holds) fail("a put's condition was judged unlike the model's");
    if (!holds) return;
    check_revision(r->revision);
    model_entry next;
    next.value = value;
    next.version = current ? current->version + 1 : 1;
    next.create_revision = current ? current->create_revision : r->revision;
    next.mod_revision = r->revision;
    next.expires_at_ns = deadline(ttl, current);
    m.entries[key] = next;
  }

  void remove(const std::string& key) {
    const bool existed = m.find(key, now()) != nullptr;
    bool reported = false;
    auto r = e.kv.remove(key, store::condition{},
                         [&](const store::entry_view* before, const store::entry_view*) {
                           reported = before != nullptr;
                         });
    if (!r.ok() || !r->applied) fail("an unconditional remove was not applied");
    if (reported != existed) fail("a remove saw a different previous entry than the model");
    if (existed) check_revision(r->revision);
    m.entries.erase(key);
  }

  void remove_prefix(const std::string& prefix) {
    m.drop_expired(now());
    uint64_t want = 0;
    for (auto it = m.entries.lower_bound(prefix);
         it != m.entries.end() && it->first.starts_with(prefix);) {
      it = m.entries.erase(it);
      ++want;
    }
    const uint64_t got = e.kv.remove_prefix(prefix, [](const store::entry&) {});
    if (got != want) fail("a prefix delete removed a different number of keys");
    last_revision = e.kv.revision();
  }

  void increment(const std::string& key, int64_t delta, store::ttl_spec ttl) {
    const model_entry* current = m.find(key, now());
    int64_t value = 0;
    const bool numeric = current == nullptr || decimal(current->value, &value);
    int64_t sum = 0;
    const bool overflows = numeric && __builtin_add_overflow(value, delta, &sum);
    auto r = e.kv.increment(key, delta, ttl, store::limits{}, [](const store::entry&) {});
    if (!numeric) {
      if (r.status().code() != absl::StatusCode::kFailedPrecondition) {
        fail("an increment of a non-integer was not FAILED_PRECONDITION");
      }
      return;
    }
    if (overflows) {
      if (r.status().code() != absl::StatusCode::kOutOfRange) {
        fail("an overflowing increment was not OUT_OF_RANGE");
      }
      return;
    }
    if (!r.ok() || *r != sum) fail("an increment's sum differs from the model's");
    check_revision(e.kv.revision());
    model_entry next;
    next.value = std::to_string(sum);
    next.version = current ? current->version + 1 : 1;
    next.create_revision = current ? current->create_revision : e.kv.revision();
    next.mod_revision = e.kv.revision();
    next.expires_at_ns = deadline(ttl, current);
    m.entries[key] = next;
  }
};

store::ttl_spec consume_ttl(FuzzedDataProvider& in) {
  store::ttl_spec ttl;
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0:
      break;
    case 1:
      ttl = {store::ttl_spec::kind::after_ms, in.ConsumeIntegralInRange<int64_t>(-5, 5000)};
      break;
    case 2:
      ttl = {store::ttl_spec::kind::keep, 0};
      break;
    case 3:
      ttl = {store::ttl_spec::kind::after_ms, store::k_max_ttl_ms};
      break;
  }
  return ttl;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t n) {
  FuzzedDataProvider in(data, n);
  harness h;
  while (in.remaining_bytes() > 0) {
    const auto op = in.ConsumeIntegralInRange<int>(0, 7);
    const std::string key = in.ConsumeRandomLengthString(4);
    switch (op) {
      case 0: {
        store::condition cond;
        cond.type = static_cast<store::condition::kind>(in.ConsumeIntegralInRange<int>(0, 2));
        const std::string value = in.ConsumeRandomLengthString(24);
        h.put(key, value, consume_ttl(in), cond);
        break;
      }
      case 1:
        h.remove(key);
        break;
      case 2:
        h.remove_prefix(key);
        break;
      case 3: {
        const int64_t delta = in.ConsumeBool() ? in.ConsumeIntegralInRange<int64_t>(-100, 100)
                                               : in.ConsumeIntegral<int64_t>();
        h.increment(key, delta, consume_ttl(in));
        break;
      }
      case 4:
        h.e.clock.advance(std::chrono::milliseconds(in.ConsumeIntegralInRange<int>(0, 3000)));
        break;
      case 5:
        h.e.kv.expire_due();
        break;
      case 6:
        h.compare_all();
        break;
      default:
        break;
    }
    h.compare_key(key);
  }
  h.compare_all();
  return 0;
}
