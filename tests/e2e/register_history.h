// register_history: linearizability of single-key operations, checked from the outside.
//
// Each key is a register; linearizability is local (a history is linearizable if and only if the
// history of each object is), so each key is checked alone. Revisions are the witnesses: a write
// has its revision; a read, the mod_revision of what it read (0: absent); every value written is
// unique, so a read names the write it saw. A key's history is linearizable in witness order iff
//  - each read saw the write whose revision it names (or nothing, at 0), and no two writes share
//    a revision;
//  - no operation that finished before another began has a later witness (real time), and no
//    read finished before the write it saw began.
// A write whose outcome is unknown (a timeout, a leader lost mid-write) may or may not have
// happened: it takes part only if a read saw it, and then with no end (it may land any time).
//
//   register_history h;
//   register_history::op w;  // key, write, start, end, witness, value
//   h.add(w);
//   EXPECT_TRUE(h.check().empty());
#pragma once

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace shoal::testing {

class register_history {
 public:
  using clk = std::chrono::steady_clock;
  struct op {
    std::string key;
    bool write = false;
    bool unknown = false;  // a write whose outcome the client does not know
    clk::time_point start, end;
    uint64_t witness = 0;
    std::string value;  // written, or read (empty with witness 0: absent)
  };

  void add(op o) {
    std::lock_guard lock(mu_);
    ops_.push_back(std::move(o));
  }
  std::size_t size() {
    std::lock_guard lock(mu_);
    return ops_.size();
  }
  std::size_t reads() {
    std::lock_guard lock(mu_);
    return std::count_if(ops_.begin(), ops_.end(), [](const op& o) { return !o.write; });
  }

  // The violations found; empty: linearizable.
  std::vector<std::string> check() {
    std::lock_guard lock(mu_);
    std::map<std::string, std::vector<op>> by_key;
    for (const op& o : ops_) by_key[o.key].push_back(o);
    std::vector<std::string> problems;
    for (auto& [key, ops] : by_key) check_key(key, ops, problems);
    return problems;
  }

 private:
  static void check_key(const std::string& key, std::vector<op>& ops,
                        std::vector<std::string>& problems) {
    std::map<uint64_t, const op*> writes;  // witness -> the write
    std::map<std::string, op*> unknown;    // value -> a write of unknown outcome
    for (op& o : ops) {
      if (!o.write) continue;
      if (o.unknown) {
        unknown[o.value] = &o;
        continue;
      }
      if (!writes.emplace(o.witness, &o).second) {
        problems.push_back(key + ": two writes at revision " + std::to_string(o.witness));
      }
    }
    // Unknown writes that a read saw happened, at the revision the read names.
    std::vector<op> seen_unknown;
    seen_unknown.reserve(ops.size());  // pointers into it are kept
    for (const op& r : ops) {
      if (r.write || r.witness == 0 || writes.count(r.witness) != 0) continue;
      auto it = unknown.find(r.value);
      if (it == unknown.end()) {
        problems.push_back(key + ": a read saw \"" + r.value + "\" at revision " +
                           std::to_string(r.witness) + ", which no write made");
        continue;
      }
      op w = *it->second;
      w.unknown = false;
      w.witness = r.witness;
      w.end = clk::time_point::max();
      seen_unknown.push_back(w);
      writes.emplace(w.witness, &seen_unknown.back());
      unknown.erase(it);
    }
    std::vector<const op*> all;
    for (const op& o : ops) {
      if (!o.unknown) all.push_back(&o);
    }
    for (const op& o : seen_unknown) all.push_back(&o);
    for (const op* r : all) {
      if (r->write || r->witness == 0) continue;
      auto it = writes.find(r->witness);
      if (it == writes.end()) continue;  // reported above
      if (it->second->value != r->value) {
        problems.push_back(key + ": a read at revision " + std::to_string(r->witness) + " saw \"" +
                           r->value + "\"; the write there wrote \"" + it->second->value + "\"");
      }
      if (r->end < it->second->start) {
        problems.push_back(key + ": a read ended before the write it saw (revision " +
                           std::to_string(r->witness) + ") began");
      }
    }
    // Real time: sorted by end, a running maximum of witnesses over the operations that ended
    // before each one began.
    std::vector<const op*> by_end = all;
    std::sort(by_end.begin(), by_end.end(),
              [](const op* a, const op* b) { return a->end < b->end; });
    std::vector<const op*> by_start = all;
    std::sort(by_start.begin(), by_start.end(),
              [](const op* a, const op* b) { return a->start < b->start; });
    std::size_t e = 0;
    const op* newest = nullptr;  // the finished operation with the largest witness
    for (const op* b : by_start) {
      while (e < by_end.size() && by_end[e]->end < b->start) {
        if (newest == nullptr || by_end[e]->witness > newest->witness) newest = by_end[e];
        ++e;
      }
      if (newest != nullptr && newest->witness > b->witness) {
        problems.push_back(key + ": " + (b->write ? "a write" : "a read") + " at revision " +
                           std::to_string(b->witness) + " began after " +
                           (newest->write ? "a write" : "a read") + " at revision " +
                           std::to_string(newest->witness) + " had finished");
      }
    }
  }

  std::mutex mu_;
  std::vector<op> ops_;
};

}  // namespace shoal::testing
