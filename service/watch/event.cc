#include "service/watch/event.h"

#include <cstring>
#include <new>

namespace shoal::service::watch {
namespace {

// memcpy must not be given the null pointer an empty view may hold.
char* append(char* to, std::string_view bytes) {
  if (!bytes.empty()) std::memcpy(to, bytes.data(), bytes.size());
  return to + bytes.size();
}

}  // namespace

event_ptr event::put(std::string_view key, std::string_view value, const store::entry::meta& m,
                     const store::entry* share_written, const store::entry* previous,
                     bool share_previous) {
  const bool copy_previous = previous != nullptr && !share_previous;
  const std::string_view copied_key = share_written ? std::string_view() : key;
  const std::string_view copied_value = share_written ? std::string_view() : value;
  const std::string_view copied_previous = copy_previous ? previous->value() : std::string_view();
  const std::size_t header = copy_previous ? sizeof(previous_meta) : 0;
  void* p = ::operator new(sizeof(event) + header + copied_key.size() + copied_value.size() +
                           copied_previous.size());
  auto* e = new (p) event(kind::put);
  e->create_revision_ = m.create_revision;
  e->version_ = m.version;
  e->expires_at_ns_ = m.expires_at_ns;
  e->revision = m.mod_revision;
  e->key_size_ = static_cast<uint16_t>(copied_key.size());
  e->value_size_ = static_cast<uint32_t>(copied_value.size());
  e->previous_value_size_ = static_cast<uint32_t>(copied_previous.size());
  if (share_written) {
    store::entry::ref(share_written);
    e->shared_written_ = share_written;
  }
  if (previous != nullptr) {
    e->has_previous_ = true;
    if (share_previous) {
      store::entry::ref(previous);
      e->shared_previous_ = previous;
    } else {
      new (e->data_) previous_meta{previous->mod_revision(), previous->expires_at_ns()};
    }
  }
  append(append(append(e->data_ + header, copied_key), copied_value), copied_previous);
  return event_ptr(e);
}

event_ptr event::removal(kind k, const store::entry& removed) {
  auto* e = new (::operator new(sizeof(event))) event(k);
  e->has_previous_ = true;
  store::entry::ref(&removed);
  e->shared_previous_ = &removed;
  return event_ptr(e);
}

event_ptr event::group(uint64_t revision, std::vector<event_ptr> parts) {
  auto* e = new (::operator new(sizeof(event))) event(kind::txn);
  e->revision = revision;
  e->parts_ = new std::vector<event_ptr>(std::move(parts));
  return event_ptr(e);
}

event_ptr event::control(kind k, uint64_t revision) {
  auto* e = new (::operator new(sizeof(event))) event(k);
  e->revision = revision;
  return event_ptr(e);
}

event::~event() {
  if (type == kind::txn) {
    delete parts_;
  } else if (shared_written_) {
    store::entry::unref(shared_written_);
  }
  if (shared_previous_) store::entry::unref(shared_previous_);
}

std::string_view event::key() const {
  if (type == kind::put) {
    return shared_written_ ? shared_written_->key() : std::string_view(bytes_begin(), key_size_);
  }
  return shared_previous_ ? shared_previous_->key() : std::string_view();
}

store::entry_view event::entry() const {
  if (type != kind::put) return {};
  const store::entry::meta m{create_revision_, revision, version_, expires_at_ns_};
  if (shared_written_) return {shared_written_->key(), shared_written_->value(), m};
  return {key(), {bytes_begin() + key_size_, value_size_}, m};
}

store::entry_view event::previous() const {
  if (!has_previous_) return {};
  if (shared_previous_) return store::entry_view::of(*shared_previous_);
  previous_meta p;
  std::memcpy(&p, data_, sizeof p);
  const store::entry::meta m{create_revision_, p.mod_revision, version_ - 1, p.expires_at_ns};
  return {key(), {bytes_begin() + key_size_ + value_size_, previous_value_size_}, m};
}

const std::vector<event_ptr>& event::parts() const {
  static const std::vector<event_ptr> none;
  return type == kind::txn ? *parts_ : none;
}

std::size_t event::bytes() const {
  std::size_t n = sizeof(event) + (previous_copied() ? sizeof(previous_meta) : 0);
  if (has_entry()) n += key().size() + entry().value.size();
  // A shared previous entry is charged whole (a removal event has no entry of its own, so the
  // key is counted here); a copied one shares the key with the written entry.
  if (shared_previous_) {
    n += shared_previous_->charged_bytes();
  } else if (has_previous_) {
    n += previous_value_size_;
  }
  for (const auto& p : parts()) n += p->bytes();
  return n;
}

void event::unref() const noexcept {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    auto* self = const_cast<event*>(this);
    self->~event();
    ::operator delete(static_cast<void*>(self));
  }
}

}  // namespace shoal::service::watch
