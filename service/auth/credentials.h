// credentials: who a call is — its bearer token (the `authorization` metadata) or its client
// certificate (mTLS) — under the auth rules in force.
//
// When: at admission, before any handler runs (guard.h), for every call but the health
// service's; again on a stream when the rules change (a revoked token ends it).
//
//   const auth::user* who = nullptr;
//   if (grpc::Status st = auth::authenticate(policy, call, &who); !st.ok()) return st;
//   // `who` stays valid while `policy` is held
//
// A token, when sent, decides: a wrong one is refused even beside a good certificate. Messages
// never quote what the client sent as a credential.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "grpcpp/grpcpp.h"
#include "service/auth/policy.h"

namespace shoal::service::auth {

inline constexpr std::string_view k_authorization = "authorization";

// The token of an `authorization` value: "Bearer <token>" (the scheme in any case, then one space
// or more; the token printable ASCII without spaces, at most 4096 bytes). Null if malformed.
std::optional<std::string_view> bearer_token(std::string_view value);

// The user the call authenticates as under `p`; UNAUTHENTICATED (saying what to send) if none.
grpc::Status authenticate(const policy& p, const grpc::ServerContext& call, const user** who);

}  // namespace shoal::service::auth
