// convert: between the API's messages and the store's types, and the checks every request gets.
#pragma once

#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "service/context.h"
#include "service/metrics/metrics.h"
#include "service/store/store.h"
#include "service/watch/event.h"
#include "shoal/v1/kv.pb.h"

namespace shoal::service::handlers {

inline grpc::Status invalid(std::string msg) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::move(msg));
}

// A failure reported inside a message (a Batch's or a Pipeline's result) instead of as the call's
// status. Setting it replaces whatever else the result's oneof held.
inline void fill_error(const grpc::Status& st, v1::OpError* out) {
  out->set_code(st.error_code());
  out->set_message(st.error_message());
}

inline void fill_metadata(v1::Entry* out, const store::entry::meta& m, const store::store& kv) {
  out->set_create_revision(m.create_revision);
  out->set_mod_revision(m.mod_revision);
  out->set_version(m.version);
  out->set_ttl_remaining_ms(kv.ttl_remaining_ms(m));
}

inline void fill_entry(v1::Entry* out, std::string_view key, std::string_view value,
                       const store::entry::meta& m, const store::store& kv) {
  out->set_key(key.data(), key.size());
  out->set_value(value.data(), value.size());
  fill_metadata(out, m, kv);
}

inline void fill_entry(v1::Entry* out, const store::entry_view& e, const store::store& kv) {
  fill_entry(out, e.key, e.value, e.meta, kv);
}

inline void fill_entry(v1::Entry* out, const store::entry& e, const store::store& kv) {
  fill_entry(out, store::entry_view::of(e), kv);
}

// What one reply message may hold besides its envelope, in bytes: startup.max_message_bytes
// (which config::validate keeps at 64 KiB or more) less 1 KiB.
inline std::size_t reply_room(const config::snapshot& cfg) {
  return cfg.startup().max_message_bytes() - 1024;
}

inline grpc::Status check_key(const std::string& key, const config::snapshot& cfg) {
  if (key.empty()) return invalid("key is empty");
  if (key.size() > cfg.live().max_key_bytes()) {
    return invalid(absl::StrCat("key is ", key.size(), " bytes; the limit is live.max_key_bytes = ",
                                cfg.live().max_key_bytes()));
  }
  return grpc::Status::OK;
}

inline grpc::Status check_value(const std::string& value, const config::snapshot& cfg) {
  if (value.size() > cfg.live().max_value_bytes()) {
    return invalid(
        absl::StrCat("value is ", value.size(),
                     " bytes; the limit is live.max_value_bytes = ", cfg.live().max_value_bytes()));
  }
  return grpc::Status::OK;
}

inline grpc::Status check_writable(const context& ctx, const config::snapshot& cfg) {
  if (cfg.live().read_only()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "the server is read-only (live.read_only); writes are refused");
  }
  if (ctx.journal != nullptr && ctx.journal->failed()) return ctx.log_failed();
  return grpc::Status::OK;
}

// optional ttl_ms / keep_ttl / the configured default, as the store understands it.
inline grpc::Status to_ttl(bool has_ttl, int64_t ttl_ms, bool keep_ttl, const config::snapshot& cfg,
                           store::ttl_spec* out) {
  if (keep_ttl) {
    out->type = store::ttl_spec::kind::keep;
    return grpc::Status::OK;
  }
  if (has_ttl && ttl_ms < 0) {
    return invalid(absl::StrCat("ttl_ms is ", ttl_ms, "; it must be 0 (no TTL) or positive"));
  }
  if (has_ttl && ttl_ms > store::k_max_ttl_ms) {
    return invalid(absl::StrCat("ttl_ms is ", ttl_ms, "; it must be at most ", store::k_max_ttl_ms,
                                " (100 years)"));
  }
  const int64_t ms = has_ttl ? ttl_ms : cfg.live().default_ttl_ms();
  out->type = ms > 0 ? store::ttl_spec::kind::after_ms : store::ttl_spec::kind::none;
  out->ms = ms;
  return grpc::Status::OK;
}

inline grpc::Status to_condition(const v1::Condition& c, const context& ctx,
                                 store::condition* out) {
  switch (c.kind_case()) {
    case v1::Condition::KIND_NOT_SET:
      out->type = store::condition::kind::none;
      break;
    case v1::Condition::kIfAbsent:
      out->type = c.if_absent() ? store::condition::kind::if_absent : store::condition::kind::none;
      break;
    case v1::Condition::kIfPresent:
      out->type =
          c.if_present() ? store::condition::kind::if_present : store::condition::kind::none;
      break;
    case v1::Condition::kIfModRevision:
      if (c.if_mod_revision() == 0) {
        return invalid("condition.if_mod_revision is 0; use if_absent for \"only if absent\"");
      }
      out->type = store::condition::kind::if_mod_revision;
      out->revision = c.if_mod_revision();
      break;
  }
  if (!c.store_id().empty() && c.store_id() != ctx.store_id) {
    return grpc::Status(
        grpc::StatusCode::OUT_OF_RANGE,
        absl::StrCat("condition names store ", c.store_id(), ", but this is store ", ctx.store_id,
                     " (the server restarted; its revisions start over)"));
  }
  return grpc::Status::OK;
}

// A store's refusal as the call's status. A refusal at a store-wide limit is counted for
// /metrics here, at the handler edge.
inline grpc::Status from_store(const absl::Status& s) {
  if (const auto limit = s.GetPayload(store::k_limit_payload)) {
    metrics::count(*limit == store::k_limit_max_keys ? metrics::event::rejected_keys
                                                     : metrics::event::rejected_bytes);
  }
  return to_grpc(s);
}

inline store::limits to_limits(const config::snapshot& cfg) {
  return store::limits{cfg.live().max_keys(), cfg.live().max_bytes()};
}

}  // namespace shoal::service::handlers
