// policy: the auth rules in force — users, their token hashes and their permissions — built from
// live.auth (shoal.v1.AuthSettings) each time the configuration changes, and checked as it is
// built: a rule that cannot be followed never takes effect (config::validate reports it).
//
// When: config.cc builds one per configuration snapshot; handlers reach it through the snapshot
// (config::snapshot::auth) and never hold it past the call that read it, so a reload applies to
// the next call.
//
//   auto p = auth::policy::build(cfg.live().auth());         // StatusOr<shared_ptr<const policy>>
//   if (!p.ok()) ...                                         // names the field, never its value
//   if ((*p)->enabled()) {
//     const auth::user* u = (*p)->by_token(token);          // null: no such token
//     if (u && u->perms.allows(auth::access::read, auth::keys::one("app/x"))) ...
//   }
//
// Immutable once built: shared between threads.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "service/auth/permissions.h"
#include "shoal/v1/admin.pb.h"

namespace shoal::service::auth {

using digest = std::array<unsigned char, 32>;  // SHA-256

// SHA-256 of `data`.
digest sha256(std::string_view data);

struct user {
  std::string name;
  bool has_token = false;
  digest token{};
  bool certificate = false;  // a client certificate that names the user may authenticate as it
  permissions perms;
};

class policy {
 public:
  static absl::StatusOr<std::shared_ptr<const policy>> build(const v1::AuthSettings& s);

  bool enabled() const { return enabled_; }
  // The user whose token this is, or null. The time it takes does not depend on which user's
  // token matches, or on how much of a hash does: every user's is compared, whole.
  const user* by_token(std::string_view token) const;
  // The user a client certificate naming `name` authenticates as: one of that name that allows
  // certificates (AuthUser.certificate), or null.
  const user* by_certificate(std::string_view name) const;
  std::size_t users() const { return users_.size(); }

 private:
  bool enabled_ = false;
  std::vector<user> users_;
  absl::flat_hash_map<std::string, std::size_t> by_name_;
};

}  // namespace shoal::service::auth
