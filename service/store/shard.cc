#include "service/store/shard.h"

namespace shoal::service::store {

shard::~shard() {
  rt::plain_lock lock(mu);
  for (entry* e : by_key_) entry::destroy(e);
}

entry* shard::find(std::string_view key) const {
  auto it = by_key_.find(key);
  return it == by_key_.end() ? nullptr : *it;
}

entry* shard::assign(entry* current, std::string_view key, std::string_view value,
                     const entry::meta& m) {
  if (current == nullptr) {
    entry* e = entry::make(key, value, m);
    by_key_.insert(e);
    ordered_.insert(e);
    index_expiry(e);
    return e;
  }
  if (current->fits(value.size())) {
    const bool expiry_moved = current->expires_at_ns() != m.expires_at_ns;
    if (expiry_moved) unindex_expiry(current);
    current->overwrite(value, m);
    if (expiry_moved) index_expiry(current);
    return current;
  }
  // The value outgrew its entry: the new one takes the old one's slot in both indexes. Its key,
  // hash and order are the old one's, so the sets stay valid, and neither is rebalanced.
  entry* e = entry::make(key, value, m);
  const_cast<entry*&>(*by_key_.find(key)) = e;
  const_cast<entry*&>(*ordered_.find(current)) = e;
  unindex_expiry(current);
  index_expiry(e);
  entry::destroy(current);
  return e;
}

void shard::erase(entry* e) {
  by_key_.erase(e->key());
  ordered_.erase(e);
  unindex_expiry(e);
}

void shard::index_expiry(entry* e) {
  if (e->expires_at_ns() != 0) expiry_.insert({e->expires_at_ns(), e});
}

void shard::unindex_expiry(entry* e) {
  if (e->expires_at_ns() != 0) expiry_.erase({e->expires_at_ns(), e});
}

}  // namespace shoal::service::store
