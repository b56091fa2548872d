#include "absl/strings/str_cat.h"
#include "service/handlers/convert.h"
#include "service/handlers/kv.h"

namespace shoal::service::handlers {
grpc::Status to_range_query(const v1::RangeRequest& req, const config::snapshot& cfg,
                            store::range_query* out) {
  store::range_query& q = *out;
  switch (req.selector_case()) {
    case v1::RangeRequest::kPrefix:
      q.from = req.prefix();
      q.has_to = store::prefix_end(req.prefix(), &q.to);
      break;
    case v1::RangeRequest::kInterval:
      q.from = req.interval().start();
      q.has_to = !req.interval().end().empty();
      q.to = req.interval().end();
      if (q.has_to && q.to <= q.from) {
        return invalid("interval.end must be greater than interval.start (or empty for no bound)");
      }
      break;
    case v1::RangeRequest::SELECTOR_NOT_SET:
      return invalid("set prefix (empty for every key) or interval");
  }
  if (!req.continuation().empty()) {
    if (req.continuation() < q.from || (q.has_to && req.continuation() >= q.to)) {
      return invalid("continuation is outside the requested range (pass back the one returned)");
    }
    q.from = req.continuation();
  }
  const uint32_t cap = cfg.live().range_page_max_items();
  q.max_items = req.limit() == 0 || req.limit() > cap ? cap : req.limit();
  // A page must fit in a message; a single entry of the largest allowed size always does.
  q.max_bytes = std::min<std::size_t>(cfg.live().range_page_max_bytes(),
                                      cfg.startup().max_message_bytes() / 2);
  q.keys_only = req.keys_only();
  return grpc::Status::OK;
}

void fill_range(const store::range_page& page, const store::store& kv, v1::RangeResponse& resp) {
  for (const auto& e : page.entries) fill_entry(resp.add_entries(), e.key, e.value, e.meta, kv);
  resp.set_count(page.entries.size());
  resp.set_continuation(page.continuation);
}

grpc::Status range_with(context& ctx, const op_env& env, const v1::RangeRequest& req,
                        v1::RangeResponse& resp) {
  const config::snapshot* cfg = &env.cfg;
  // Range is not a snapshot: the revision is read before the first shard.
  if (env.header) ctx.fill(resp.mutable_header());
  store::range_query q;
  if (auto st = to_range_query(req, *cfg, &q); !st.ok()) return st;
  if (req.count_only()) {
    resp.set_count(ctx.kv->count(q));
    return grpc::Status::OK;
  }
  if (env.budget != nullptr) {
    // In a shared reply: the page takes at most what is left, and may come back empty. Half of
    // the room goes to keys and values, half to each entry's overhead (revisions, framing).
    const std::size_t half = env.budget->left() / 2;
    const std::size_t entries = half / store::k_result_overhead_bytes;
    if (entries == 0) return env.budget->refuse(2 * store::k_result_overhead_bytes);
    q.max_items = std::min(q.max_items, entries);
    q.max_bytes = std::min(q.max_bytes, half);
    q.strict_bytes = true;
  }
  store::range_page page = ctx.kv->range(q);
  if (page.entries.empty() && !page.continuation.empty()) {
    return env.budget->refuse(store::k_result_overhead_bytes + q.max_bytes + 1);
  }
  fill_range(page, *ctx.kv, resp);
  return grpc::Status::OK;
}

grpc::Status range(context& ctx, const v1::RangeRequest& req, v1::RangeResponse& resp) {
  return as_call(ctx, req, resp, &range_with);
}

}  // namespace shoal::service::handlers
