#include "service/handlers/kv.h"

#include "absl/strings/str_cat.h"
#include "service/handlers/convert.h"

namespace shoal::service::handlers {

grpc::Status reply_budget::refuse(std::size_t bytes) const {
  return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                      absl::StrCat("not run: its result (", bytes,
                                   " bytes) does not fit in what is left of the "
                                   "reply (",
                                   left_,
                                   " bytes; one reply holds at most startup.max_message_bytes). "
                                   "Send it on its own"));
}

grpc::Status get_with(context& ctx, const op_env& env, const v1::GetRequest& req,
                      v1::GetResponse& resp) {
  const config::snapshot* cfg = &env.cfg;
  if (auto st = check_key(req.key(), *cfg); !st.ok()) return st;
  std::size_t too_large = 0;  // a result that did not fit in a shared reply
  const bool found = ctx.kv->get(req.key(), [&](const store::entry& e) {
    const std::size_t size = e.key().size() + e.value().size() + store::k_result_overhead_bytes;
    if (env.budget != nullptr && !env.budget->fits(size)) {
      too_large = size;
      return;
    }
    fill_entry(resp.mutable_entry(), e, *ctx.kv);
  });
  if (too_large != 0) return env.budget->refuse(too_large);
  resp.set_found(found);
  if (env.header) ctx.fill(resp.mutable_header());
  return grpc::Status::OK;
}

grpc::Status put_with(context& ctx, const op_env& env, const v1::PutRequest& req,
                      v1::PutResponse& resp) {
  const config::snapshot* cfg = &env.cfg;
  if (auto st = check_writable(ctx, *cfg); !st.ok()) return st;
  if (auto st = check_key(req.key(), *cfg); !st.ok()) return st;
  if (auto st = check_value(req.value(), *cfg); !st.ok()) return st;
  store::ttl_spec ttl;
  if (auto st = to_ttl(req.has_ttl_ms(), req.ttl_ms(), req.keep_ttl(), *cfg, &ttl); !st.ok()) {
    return st;
  }
  store::condition cond;
  if (auto st = to_condition(req.condition(), ctx, &cond); !st.ok()) return st;
  auto r = ctx.kv->put(
      req.key(), req.value(), ttl, cond, to_limits(*cfg),
      [&](const store::entry_view* before, const store::entry_view* after, bool applied) {
        // The caller sent the key and value it wrote: only the metadata goes back.
        if (after && applied) fill_metadata(resp.mutable_entry(), after->meta, *ctx.kv);
        if (after && !applied) fill_entry(resp.mutable_entry(), *after, *ctx.kv);
        if (before && req.return_previous()) {
          fill_entry(resp.mutable_previous(), *before, *ctx.kv);
        }
      });
  if (!r.ok()) return from_store(r.status());
  resp.set_applied(r->applied);
  if (env.header) ctx.fill(resp.mutable_header());
  return grpc::Status::OK;
}

grpc::Status remove_with(context& ctx, const op_env& env, const v1::DeleteRequest& req,
                         v1::DeleteResponse& resp) {
  const config::snapshot* cfg = &env.cfg;
  if (auto st = check_writable(ctx, *cfg); !st.ok()) return st;
  if (req.by_prefix()) {
    if (req.key().empty() && !req.all_keys()) {
      return invalid("deleting with an empty prefix deletes every key; set all_keys to confirm");
    }
    if (req.key().size() > cfg->live().max_key_bytes()) return check_key(req.key(), *cfg);
    if (req.condition().kind_case() != v1::Condition::KIND_NOT_SET) {
      return invalid("a condition applies to a single key, not to a prefix delete");
    }
    // The deleted entries go back while they fit in half a message (and in what is left of a
    // shared reply); the rest is only counted.
    std::size_t budget = cfg->startup().max_message_bytes() / 2;
    if (env.budget != nullptr) budget = std::min(budget, env.budget->left());
    std::size_t used = 0;
    const uint64_t n = ctx.kv->remove_prefix(req.key(), [&](const store::entry& e) {
      if (!req.return_previous()) return;
      const std::size_t size = e.key().size() + e.value().size() + 64;
      if (used + size > budget) {
        resp.set_previous_truncated(true);
        return;
      }
      used += size;
      fill_entry(resp.add_previous(), e, *ctx.kv);
    });
    resp.set_applied(true);
    resp.set_deleted(n);
    if (env.header) ctx.fill(resp.mutable_header());
    return grpc::Status::OK;
  }
  if (req.all_keys()) return invalid("all_keys applies only with by_prefix");
  if (auto st = check_key(req.key(), *cfg); !st.ok()) return st;
  store::condition cond;
  if (auto st = to_condition(req.condition(), ctx, &cond); !st.ok()) return st;
  bool deleted = false;
  auto r = ctx.kv->remove(req.key(), cond,
                          [&](const store::entry_view* before, const store::entry_view* current) {
                            if (before) {
                              deleted = true;
                              if (req.return_previous())
                                fill_entry(resp.add_previous(), *before, *ctx.kv);
                            } else if (current) {
                              fill_entry(resp.mutable_current(), *current, *ctx.kv);
                            }
                          });
  if (!r.ok()) return from_store(r.status());
  resp.set_applied(r->applied);
  resp.set_deleted(deleted ? 1 : 0);
  if (env.header) ctx.fill(resp.mutable_header());
  return grpc::Status::OK;
}

grpc::Status increment_with(context& ctx, const op_env& env, const v1::IncrementRequest& req,
                            v1::IncrementResponse& resp) {
  const config::snapshot* cfg = &env.cfg;
  if (auto st = check_writable(ctx, *cfg); !st.ok()) return st;
  if (auto st = check_key(req.key(), *cfg); !st.ok()) return st;
  store::ttl_spec ttl;
  if (auto st = to_ttl(req.has_ttl_ms(), req.ttl_ms(), req.keep_ttl(), *cfg, &ttl); !st.ok()) {
    return st;
  }
  auto r = ctx.kv->increment(
      req.key(), req.delta(), ttl, to_limits(*cfg),
      [&](const store::entry& e) { fill_entry(resp.mutable_entry(), e, *ctx.kv); });
  if (!r.ok()) return from_store(r.status());
  resp.set_value(*r);
  if (env.header) ctx.fill(resp.mutable_header());
  return grpc::Status::OK;
}

grpc::Status get(context& ctx, const v1::GetRequest& req, v1::GetResponse& resp) {
  return as_call(ctx, req, resp, &get_with);
}

grpc::Status put(context& ctx, const v1::PutRequest& req, v1::PutResponse& resp) {
  return as_call(ctx, req, resp, &put_with);
}

grpc::Status remove(context& ctx, const v1::DeleteRequest& req, v1::DeleteResponse& resp) {
  return as_call(ctx, req, resp, &remove_with);
}

grpc::Status increment(context& ctx, const v1::IncrementRequest& req, v1::IncrementResponse& resp) {
  return as_call(ctx, req, resp, &increment_with);
}

}  // namespace shoal::service::handlers
