#include "service/auth/credentials.h"

#include <grpc/grpc_security_constants.h>

#include <algorithm>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace shoal::service::auth {
namespace {

constexpr std::size_t k_max_token_bytes = 4096;
constexpr std::string_view k_scheme = "bearer";

grpc::Status unauthenticated(std::string message) {
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::move(message));
}

// The user the verified client certificate names: by its subject alternative names (in the
// certificate's order), or, when it has none, by its subject common name (RFC 6125's rule: a
// certificate with SANs is not named by its CN). False if there is no verified certificate.
bool certificate_user(const policy& p, const grpc::ServerContext& call, const user** who,
                      std::string* shown_name) {
  const std::shared_ptr<const grpc::AuthContext> auth = call.auth_context();
  if (!auth || !auth->IsPeerAuthenticated()) return false;
  std::vector<grpc::string_ref> names = auth->FindPropertyValues(GRPC_X509_SAN_PROPERTY_NAME);
  if (names.empty()) names = auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME);
  for (const grpc::string_ref& name : names) {
    const std::string_view n(name.data(), name.size());
    if (shown_name->empty()) *shown_name = n;
    if (const user* u = p.by_certificate(n)) {
      *who = u;
      return true;
    }
  }
  return true;
}

}  // namespace

std::optional<std::string_view> bearer_token(std::string_view value) {
  if (value.size() <= k_scheme.size() ||
      !absl::EqualsIgnoreCase(absl::string_view(value.data(), k_scheme.size()),
                              absl::string_view(k_scheme.data(), k_scheme.size())) ||
      value[k_scheme.size()] != ' ') {
    return std::nullopt;
  }
  std::string_view token = value.substr(k_scheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  if (token.empty() || token.size() > k_max_token_bytes) return std::nullopt;
  const bool printable =
      std::all_of(token.begin(), token.end(), [](char ch) { return ch > ' ' && ch < 0x7f; });
  if (!printable) return std::nullopt;
  return token;
}

grpc::Status authenticate(const policy& p, const grpc::ServerContext& call, const user** who) {
  *who = nullptr;
  const auto& md = call.client_metadata();
  const auto [first, last] =
      md.equal_range(grpc::string_ref(k_authorization.data(), k_authorization.size()));
  if (first != last) {
    if (std::next(first) != last) {
      return unauthenticated(
          "the call carries more than one authorization metadata entry: send "
          "one, 'Bearer <token>'");
    }
    const std::optional<std::string_view> token =
        bearer_token(std::string_view(first->second.data(), first->second.size()));
    if (!token) {
      return unauthenticated("the authorization metadata is malformed: send 'Bearer <token>'");
    }
    *who = p.by_token(*token);
    if (*who == nullptr) return unauthenticated("the token is not valid (unknown or revoked)");
    return grpc::Status::OK;
  }
  std::string shown_name;
  if (!certificate_user(p, call, who, &shown_name)) {
    return unauthenticated(
        "this server requires credentials: send the metadata "
        "'authorization: Bearer <token>', or a client certificate over TLS");
  }
  if (*who == nullptr) {
    return unauthenticated(absl::StrCat(
        "the client certificate (named '",
        absl::CHexEscape(absl::string_view(shown_name).substr(0, 128)),
        "') names no user that allows certificates: its subject alternative names (or, without "
        "any, its common name) are matched against live.auth.users with certificate set"));
  }
  return grpc::Status::OK;
}

}  // namespace shoal::service::auth
