#include "service/watch/event.h"

#include <cstring>
#include <new>

namespace shoal::service::watch {

event_ptr event::make(kind k, std::string_view key, std::string_view value,
                      const store::entry::meta& m, const store::entry* previous,
                      std::vector<event_ptr> parts) {
  const std::string_view previous_value = previous ? previous->value() : std::string_view();
  void* p = ::operator new(sizeof(event) + key.size() + value.size() + previous_value.size());
  auto* e = new (p) event(k, std::move(parts));
  e->key_size_ = static_cast<uint32_t>(key.size());
  e->value_size_ = static_cast<uint32_t>(value.size());
  e->previous_value_size_ = static_cast<uint32_t>(previous_value.size());
  e->meta_ = m;
  if (previous) {
    e->has_previous_ = true;
    e->previous_meta_ = previous->metadata();
  }
  // memcpy from an empty view may get a null pointer, which it must not.
  if (!key.empty()) std::memcpy(e->data_, key.data(), key.size());
  if (!value.empty()) std::memcpy(e->data_ + key.size(), value.data(), value.size());
  if (!previous_value.empty()) {
    std::memcpy(e->data_ + key.size() + value.size(), previous_value.data(), previous_value.size());
  }
  return event_ptr(e);
}

event_ptr event::put(std::string_view key, std::string_view value, const store::entry::meta& m,
                     const store::entry* previous) {
  return make(kind::put, key, value, m, previous, {});
}

event_ptr event::removal(kind k, const store::entry& removed) {
  return make(k, removed.key(), {}, {}, &removed, {});
}

event_ptr event::group(uint64_t revision, std::vector<event_ptr> parts) {
  event_ptr e = make(kind::txn, {}, {}, {}, nullptr, std::move(parts));
  e.unpublished()->revision = revision;
  return e;
}

event_ptr event::control(kind k, uint64_t revision) {
  event_ptr e = make(k, {}, {}, {}, nullptr, {});
  e.unpublished()->revision = revision;
  return e;
}

void event::unref() const noexcept {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    auto* self = const_cast<event*>(this);
    self->~event();
    ::operator delete(static_cast<void*>(self));
  }
}

}  // namespace shoal::service::watch
