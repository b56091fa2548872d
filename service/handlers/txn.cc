// KV/Txn: validates and converts the request, runs it in the store, fills the results.
#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "service/handlers/convert.h"
#include "service/handlers/kv.h"

namespace shoal::service::handlers {
namespace {

grpc::Status to_compare(const v1::Compare& c, const config::snapshot& cfg,
                        store::txn_compare* out) {
  if (auto st = check_key(c.key(), cfg); !st.ok()) return st;
  using T = store::txn_compare::target;
  using R = store::txn_compare::result;
  switch (c.target()) {
    case v1::Compare::VALUE:
      out->what = T::value;
      break;
    case v1::Compare::VERSION:
      out->what = T::version;
      break;
    case v1::Compare::CREATE_REVISION:
      out->what = T::create_revision;
      break;
    case v1::Compare::MOD_REVISION:
      out->what = T::mod_revision;
      break;
    case v1::Compare::EXISTS:
      out->what = T::exists;
      break;
    default:
      return invalid(absl::StrCat("unknown compare target ", c.target()));
  }
  switch (c.result()) {
    case v1::Compare::EQUAL:
      out->how = R::equal;
      break;
    case v1::Compare::NOT_EQUAL:
      out->how = R::not_equal;
      break;
    case v1::Compare::LESS:
      out->how = R::less;
      break;
    case v1::Compare::GREATER:
      out->how = R::greater;
      break;
    default:
      return invalid(absl::StrCat("unknown compare result ", c.result()));
  }
  if (out->what == T::exists && (out->how == R::less || out->how == R::greater)) {
    return invalid("an EXISTS compare takes EQUAL or NOT_EQUAL");
  }
  out->key = c.key();
  out->value = c.value();
  out->number = c.number();
  out->exists = c.exists();
  return grpc::Status::OK;
}

// One branch: each operation checked as its own call would be, no key written twice, and the
// keys and values within `byte_budget`.
grpc::Status to_branch(const google::protobuf::RepeatedPtrField<v1::Op>& ops, const char* name,
                       const config::snapshot& cfg, std::size_t byte_budget,
                       std::vector<store::txn_op>* out) {
  const uint32_t max_ops = cfg.live().max_txn_ops();
  if (static_cast<uint32_t>(ops.size()) > max_ops) {
    return invalid(absl::StrCat("the ", name, " branch has ", ops.size(),
                                " operations; the limit is live.max_txn_ops = ", max_ops));
  }
  std::set<std::string> written;
  std::size_t bytes = 0;
  for (const v1::Op& op : ops) {
    store::txn_op t;
    switch (op.op_case()) {
      case v1::Op::kGet:
        t.type = store::txn_op::kind::get;
        t.key = op.get().key();
        break;
      case v1::Op::kPut: {
        const v1::PutRequest& p = op.put();
        if (p.has_condition() || p.return_previous()) {
          return invalid("a put inside a Txn takes no condition or return_previous: use compares");
        }
        if (auto st = check_value(p.value(), cfg); !st.ok()) return st;
        if (auto st = to_ttl(p.has_ttl_ms(), p.ttl_ms(), p.keep_ttl(), cfg, &t.ttl); !st.ok())
          return st;
        t.type = store::txn_op::kind::put;
        t.key = p.key();
        t.value = p.value();
        break;
      }
      case v1::Op::kDelete: {
        const v1::DeleteRequest& d = op.delete_();
        if (d.by_prefix() || d.all_keys() || d.has_condition() || d.return_previous()) {
          return invalid("a delete inside a Txn names one key, with no condition: use compares");
        }
        t.type = store::txn_op::kind::remove;
        t.key = d.key();
        break;
      }
      case v1::Op::kIncrement: {
        const v1::IncrementRequest& n = op.increment();
        if (auto st = to_ttl(n.has_ttl_ms(), n.ttl_ms(), n.keep_ttl(), cfg, &t.ttl); !st.ok())
          return st;
        t.type = store::txn_op::kind::increment;
        t.key = n.key();
        t.delta = n.delta();
        break;
      }
      case v1::Op::kRange:
        if (op.range().count_only()) return invalid("count_only is not supported inside a Txn");
        if (auto st = to_range_query(op.range(), cfg, &t.range); !st.ok()) return st;
        t.type = store::txn_op::kind::range;
        out->push_back(std::move(t));
        continue;  // no key of its own
      case v1::Op::OP_NOT_SET:
        return invalid("an operation names none of get, put, delete, increment, range");
    }
    if (auto st = check_key(t.key, cfg); !st.ok()) return st;
    if (t.type != store::txn_op::kind::get && !written.insert(t.key).second) {
      return invalid(absl::StrCat("the ", name, " branch writes key '", t.key,
                                  "' twice; a Txn writes a key at most once"));
    }
    bytes += t.key.size() + t.value.size();
    if (bytes > byte_budget) {
      return invalid(absl::StrCat("the ", name, " branch holds more than ", byte_budget,
                                  " bytes of keys and values (half the message limit, so that its "
                                  "events fit in one watch response)"));
    }
    out->push_back(std::move(t));
  }
  return grpc::Status::OK;
}

#ifdef SHOAL_TESTING_NONATOMIC_TXN
// The broken Txn of the test-only build shoald-nonatomic-txn (tests/e2e/CMakeLists.txt): compares,
// then each operation on its own, with no lock held across them, so that the linearizability test
// can show that it catches a Txn that is not atomic. Never compiled into shoald.
absl::StatusOr<store::txn_result> run_txn(context& ctx, const store::txn_request& t,
                                          const config::snapshot& cfg) {
  store::txn_result out;
  out.succeeded = std::all_of(t.compares.begin(), t.compares.end(), [&](const auto& c) {
    bool holds = false;
    if (!ctx.kv->get(c.key, [&](const store::entry& e) { holds = c.holds(&e); })) {
      holds = c.holds(nullptr);
    }
    return holds;
  });
  for (const store::txn_op& op : out.succeeded ? t.success : t.failure) {
    store::txn_op_result& r = out.results.emplace_back();
    auto copy = [&](const store::entry& e) {
      r.found = true;
      r.entry = store::entry_copy{std::string(e.key()), std::string(e.value()), e.metadata()};
    };
    if (op.type == store::txn_op::kind::get) {
      ctx.kv->get(op.key, copy);
    } else if (op.type == store::txn_op::kind::put) {
      auto w = ctx.kv->put(op.key, op.value, op.ttl, store::condition{}, to_limits(cfg),
                           [&](const store::entry_view*, const store::entry_view* after, bool) {
                             if (after) r.entry.meta = after->meta;
                           });
      if (!w.ok()) return w.status();
      out.revision = w->revision;
      // The gap between two puts, widened so that a concurrent read lands in it within
      // seconds on any machine (a loaded 2-core one made it rare).
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    } else {
      return absl::UnimplementedError("the testing Txn runs get and put only");
    }
  }
  return out;
}
#else
absl::StatusOr<store::txn_result> run_txn(context& ctx, const store::txn_request& t,
                                          const config::snapshot& cfg) {
  return ctx.kv->txn(t, to_limits(cfg));
}
#endif

}  // namespace

grpc::Status txn(context& ctx, const v1::TxnRequest& req, v1::TxnResponse& resp) {
  const auto cfg = ctx.current_config();
  store::txn_request t;
  const uint32_t max_ops = cfg->live().max_txn_ops();
  if (static_cast<uint32_t>(req.compares_size()) > max_ops) {
    return invalid(absl::StrCat("the Txn has ", req.compares_size(),
                                " compares; the limit is live.max_txn_ops = ", max_ops));
  }
  for (const v1::Compare& c : req.compares()) {
    if (auto st = to_compare(c, *cfg, &t.compares.emplace_back()); !st.ok()) return st;
  }
  t.reply_budget = reply_room(*cfg);
  const std::size_t budget = cfg->startup().max_message_bytes() / 2;
  if (auto st = to_branch(req.success(), "success", *cfg, budget, &t.success); !st.ok()) return st;
  if (auto st = to_branch(req.failure(), "failure", *cfg, budget, &t.failure); !st.ok()) return st;
  const bool writes =
      std::any_of(t.success.begin(), t.success.end(),
                  [](const auto& op) { return op.type != store::txn_op::kind::get; }) ||
      std::any_of(t.failure.begin(), t.failure.end(),
                  [](const auto& op) { return op.type != store::txn_op::kind::get; });
  if (writes) {
    if (auto st = check_writable(ctx, *cfg); !st.ok()) return st;
  }

  auto r = run_txn(ctx, t, *cfg);
  if (!r.ok()) return from_store(r.status());
  resp.set_succeeded(r->succeeded);
  resp.set_revision(r->revision);
  const auto& ops = r->succeeded ? t.success : t.failure;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const store::txn_op_result& x = r->results[i];
    v1::OpResult& out = *resp.add_results();
    switch (ops[i].type) {
      case store::txn_op::kind::get:
        out.mutable_get()->set_found(x.found);
        if (x.found)
          fill_entry(out.mutable_get()->mutable_entry(), x.entry.key, x.entry.value, x.entry.meta,
                     *ctx.kv);
        break;
      case store::txn_op::kind::put:
        out.mutable_put()->set_applied(true);
        fill_metadata(out.mutable_put()->mutable_entry(), x.entry.meta, *ctx.kv);
        break;
      case store::txn_op::kind::remove:
        out.mutable_delete_()->set_applied(true);
        out.mutable_delete_()->set_deleted(x.found ? 1 : 0);
        break;
      case store::txn_op::kind::range:
        fill_range(x.page, *ctx.kv, *out.mutable_range());
        break;
      case store::txn_op::kind::increment:
        out.mutable_increment()->set_value(x.number);
        fill_entry(out.mutable_increment()->mutable_entry(), x.entry.key, x.entry.value,
                   x.entry.meta, *ctx.kv);
        break;
    }
  }
  ctx.fill(resp.mutable_header());
  return grpc::Status::OK;
}

}  // namespace shoal::service::handlers
