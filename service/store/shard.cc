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

void shard::insert(entry* e) {
  by_key_.insert(e);
  ordered_.insert(e);
  index_expiry(e);
}

void shard::overwrite(entry* e, std::string_view value, const entry::meta& m) {
  const bool expiry_moves = e->expires_at_ns() != m.expires_at_ns;
  if (expiry_moves) unindex_expiry(e);
  e->overwrite(value, m);
  if (expiry_moves) index_expiry(e);
}

void shard::replace(entry* old, entry* fresh) {
  // Same key: `fresh` takes `old`'s slot in both indexes. Its key, hash and order are `old`'s,
  // so the sets stay valid, and neither is rebalanced.
  const_cast<entry*&>(*by_key_.find(old->key())) = fresh;
  const_cast<entry*&>(*ordered_.find(old)) = fresh;
  unindex_expiry(old);
  index_expiry(fresh);
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
