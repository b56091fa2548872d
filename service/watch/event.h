// event: one change to the store, as watchers and the history see it. Immutable once published.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace shoal::service::watch {

struct entry_state {
  std::string value;
  uint64_t create_revision = 0;
  uint64_t mod_revision = 0;
  uint64_t version = 0;
  int64_t expires_at_ns = 0;  // runtime-clock time; 0 = no TTL
};

struct event {
  enum class kind : uint8_t {
    put,
    remove,   // DELETE
    expire,   // EXPIRE
    // Control messages on the same channel, never in the history and without a revision:
    tick,      // the progress clock: watchers that have been idle long enough report progress
    shutdown,  // the server is draining: end every stream now
  };

  kind type = kind::put;
  uint64_t revision = 0;
  std::string key;
  entry_state entry;     // put: the entry as written (create_revision 0 = created by this event)
  bool has_previous = false;
  entry_state previous;  // the entry before the event, if there was one

  std::size_t bytes() const {
    return sizeof(event) + key.size() + entry.value.size() + previous.value.size();
  }
};

using event_ptr = std::shared_ptr<const event>;

}  // namespace shoal::service::watch
