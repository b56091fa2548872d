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
    // Same key: swap the pointer in place in both indexes (the key, hash and order are equal).
    by_key_.erase(it);
    by_key_.insert(e);
    ordered_.erase(old);
    unindex_expiry(old);
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
