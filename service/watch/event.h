// event: one change to the store, as watchers and the history see it. Immutable once published.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "service/store/entry.h"

namespace shoal::service::watch {

struct event {
  enum class kind : uint8_t {
    put,
    remove,  // DELETE
    expire,  // EXPIRE
    txn,     // a Txn's writes: `parts`, all with this revision, delivered together
    // Control messages on the same channel, never in the history and without a revision:
    tick,      // the progress clock: watchers that have been idle long enough report progress
    shutdown,  // the server is draining: end every stream now
  };

  kind type = kind::put;
  uint64_t revision = 0;
  store::entry_ref entry;     // put: the entry written (the same bytes the store holds)
  store::entry_ref previous;  // the entry replaced or removed, if there was one
  std::vector<std::shared_ptr<const event>> parts;  // txn only

  std::string_view key() const {
    return entry ? entry->key() : previous ? previous->key() : std::string_view();
  }
  // What the event keeps alive, counted against the history's byte bound as if nothing were
  // shared with the store (an overwritten or deleted entry lives on only through its events).
  std::size_t bytes() const {
    std::size_t n = sizeof(event) + (entry ? entry->charged_bytes() : 0) +
                    (previous ? previous->charged_bytes() : 0);
    for (const auto& p : parts) n += p->bytes();
    return n;
  }
};

using event_ptr = std::shared_ptr<const event>;

}  // namespace shoal::service::watch
