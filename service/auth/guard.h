// guard: a call's authentication and permissions, checked at admission — where handlers/call.h
// admits each call by its class, before its handler runs — under the rules of the configuration
// the call reads. With live.auth off it checks nothing. Every refusal is counted (metrics) and
// logged as one audit line: who, which method, the access and keys refused; never a value, a
// token or a hash.
//
//   const config::snapshot_ptr cfg = ctx.current_config();
//   if (grpc::Status st = auth::admit(*cfg, call, metrics::method::put, req); !st.ok()) return st;
//
//   // a stream, at each request, or when the rules change:
//   const auth::user* who = nullptr;
//   grpc::Status st = auth::identify(*cfg, call, m, &who);      // who: null when auth is off
//   if (st.ok() && who) st = auth::permit(*who, call, m, request);
#pragma once

#include <string_view>

#include "grpc/health/v1/health.pb.h"
#include "grpcpp/grpcpp.h"
#include "service/auth/check.h"
#include "service/auth/credentials.h"
#include "service/config/config.h"
#include "service/metrics/metrics.h"
#include "shoal/v1/admin.pb.h"

namespace shoal::service::auth {

// One audit line for a refused call, and its count.
void audit_unauthenticated(const grpc::ServerContext& call, metrics::method m,
                           const grpc::Status& why);
void audit_denied(const grpc::ServerContext& call, metrics::method m, const verdict& v);
void audit_revoked(const grpc::ServerContext& call, metrics::method m, std::string_view who);

// The caller under `cfg`'s rules: OK with `who` null when auth is off; UNAUTHENTICATED (audited)
// when it does not authenticate.
grpc::Status identify(const config::snapshot& cfg, const grpc::ServerContext& call,
                      metrics::method m, const user** who);

// The Admin service's requests need admin on every key; the others, what they name (check.h).
template <class Req>
void require_for(verdict& v, const Req& req) {
  if constexpr (std::is_same_v<Req, v1::StatusRequest> ||
                std::is_same_v<Req, v1::GetConfigRequest> ||
                std::is_same_v<Req, v1::WatchConfigRequest> ||
                std::is_same_v<Req, v1::SnapshotRequest> ||
                std::is_same_v<Req, v1::AddMemberRequest> ||
                std::is_same_v<Req, v1::RemoveMemberRequest> ||
                std::is_same_v<Req, v1::TransferLeadershipRequest>) {
    require_admin(v);
  } else {
    require(v, req);
  }
}

// What the request needs of `who`; PERMISSION_DENIED (audited) if it is not granted.
template <class Req>
grpc::Status permit(const user& who, const grpc::ServerContext& call, metrics::method m,
                    const Req& req) {
  verdict v(who);
  require_for(v, req);
  if (v.ok()) return grpc::Status::OK;
  audit_denied(call, m, v);
  return v.status();
}

// Both, for a call whose request is whole at admission. The health service is open to all: probes
// carry no credentials.
template <class Req>
grpc::Status admit(const config::snapshot& cfg, const grpc::ServerContext& call, metrics::method m,
                   const Req& req) {
  if constexpr (std::is_same_v<Req, grpc::health::v1::HealthCheckRequest>) {
    return grpc::Status::OK;
  } else {
    if (!cfg.auth_on()) return grpc::Status::OK;
    const user* who = nullptr;
    if (grpc::Status st = identify(cfg, call, m, &who); !st.ok()) return st;
    return permit(*who, call, m, req);
  }
}

// Who sends a stream's requests, under the rules of the configuration each request reads: the
// caller is authenticated again only when those rules change (a Pipeline's requests do not each
// hash a token). A rule change that takes the caller's credentials away ends the stream.
//
//   auth::stream_caller caller(call, metrics::method::pipeline);
//   for (each request) {
//     const config::snapshot_ptr cfg = ctx.current_config();
//     if (!caller.follow(cfg)) return caller.revoked();    // PERMISSION_DENIED (audited)
//     if (caller.who()) ... permit(*caller.who(), call, m, request) ...
//   }
//
// One task's: not thread-safe.
class stream_caller {
 public:
  stream_caller(const grpc::ServerContext& call, metrics::method m) : call_(call), method_(m) {}
  // False if `cfg`'s rules no longer let the caller in. Keeps `cfg` while it is the latest seen.
  bool follow(const config::snapshot_ptr& cfg);
  // Null with auth off.
  const user* who() const { return who_; }
  const grpc::ServerContext& call() const { return call_; }
  metrics::method method() const { return method_; }
  grpc::Status revoked() const;
  // The stream may go on under `cfg` with `req` (a Watch's, a WatchConfig's, a Snapshot's):
  // follow(), then what the stream's own request needs; audited as a revocation if not.
  template <class Req>
  bool still_allowed(const config::snapshot_ptr& cfg, const Req& req) {
    if (!follow(cfg)) return false;
    if (who_ == nullptr) return true;
    verdict v(*who_);
    require_for(v, req);
    if (v.ok()) return true;
    audit_revoked(call_, method_, who_->name);
    refused_ = true;
    return false;
  }

 private:
  const grpc::ServerContext& call_;
  const metrics::method method_;
  config::snapshot_ptr held_;  // keeps the rules `who_` points into
  const policy* rules_ = nullptr;
  const user* who_ = nullptr;
  bool refused_ = false;
};

}  // namespace shoal::service::auth
