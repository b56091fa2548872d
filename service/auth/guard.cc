#include "service/auth/guard.h"

#include "service/log.h"

namespace shoal::service::auth {

void audit_unauthenticated(const grpc::ServerContext& call, metrics::method m,
                           const grpc::Status& why) {
  metrics::count(metrics::event::auth_unauthenticated);
  SHOAL_LOG(warn, "call refused: unauthenticated",
            {{"peer", call.peer()},
             {"method", metrics::method_name(m)},
             {"reason", why.error_message()}});
}

void audit_denied(const grpc::ServerContext& call, metrics::method m, const verdict& v) {
  metrics::count(metrics::event::auth_denied);
  SHOAL_LOG(warn, "call refused: permission denied",
            {{"user", v.who().name},
             {"peer", call.peer()},
             {"method", metrics::method_name(m)},
             {"access", name_of(v.denied_access())},
             {"keys", v.denied_keys()}});
}

void audit_revoked(const grpc::ServerContext& call, metrics::method m, std::string_view who) {
  metrics::count(metrics::event::auth_revoked);
  SHOAL_LOG(warn, "stream ended: its permission was revoked",
            {{"user", who}, {"peer", call.peer()}, {"method", metrics::method_name(m)}});
}

grpc::Status identify(const config::snapshot& cfg, const grpc::ServerContext& call,
                      metrics::method m, const user** who) {
  *who = nullptr;
  if (!cfg.auth_on()) return grpc::Status::OK;
  grpc::Status st = authenticate(*cfg.auth, call, who);
  if (!st.ok()) audit_unauthenticated(call, m, st);
  return st;
}

bool stream_caller::follow(const config::snapshot_ptr& cfg) {
  if (refused_) return false;  // once refused, the stream is over
  if (!cfg->auth_on()) {
    held_.reset();
    rules_ = nullptr;
    who_ = nullptr;
    return true;
  }
  if (cfg->auth.get() == rules_) return true;
  held_ = cfg;
  rules_ = cfg->auth.get();
  if (authenticate(*rules_, call_, &who_).ok()) return true;
  audit_revoked(call_, method_, "-");
  refused_ = true;
  return false;
}

grpc::Status stream_caller::revoked() const {
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      "the rules changed (live.auth): this stream's credentials or permissions "
                      "no longer allow it");
}

}  // namespace shoal::service::auth
