#include "service/store/shard.h"

namespace shoal::service::store {

shard::~shard() {
  rt::plain_lock lock(mu);
  for (entry* e : by_key_) entry::unref(e);
}

entry* shard::find(std::string_view key) const {
  auto it = by_key_.find(key);
  return it == by_key_.end() ? nullptr : *it;
}

entry* shard::upsert(entry* e) {
  entry* old = nullptr;
  auto [it, inserted] = by_key_.insert(e);
  if (!inserted) {
    old = *it;
    // Same key: the new entry takes the old one's slot in both indexes. Its key, hash and order
    // are the old one's, so the sets stay valid, and neither is searched or rebalanced again.
    const_cast<entry*&>(*it) = e;
    const auto pos = ordered_.find(old);
    const_cast<entry*&>(*pos) = e;
    unindex_expiry(old);
    index_expiry(e);
    return old;
  }
  ordered_.insert(e);
  index_expiry(e);
  return old;
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
