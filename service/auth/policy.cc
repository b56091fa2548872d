#include "service/auth/policy.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace shoal::service::auth {
namespace {

constexpr std::size_t k_max_name_bytes = 256;
constexpr std::size_t k_max_prefix_bytes = 65535;

// What a name may hold: a certificate's CN or SAN (a DNS name, a URI, an e-mail address).
bool valid_name(std::string_view name) {
  return !name.empty() && name.size() <= k_max_name_bytes &&
         std::all_of(name.begin(), name.end(), [](char ch) {
           return absl::ascii_isalnum(static_cast<unsigned char>(ch)) ||
                  std::string_view("._-@:/=+ ").find(ch) != std::string_view::npos;
         });
}

int hex_value(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

bool parse_digest(std::string_view hex, digest* out) {
  if (hex.size() != 2 * out->size()) return false;
  for (std::size_t i = 0; i < out->size(); ++i) {
    const int hi = hex_value(hex[2 * i]);
    const int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  return true;
}

// The roles by name, each checked; errors name the field, never a value.
absl::flat_hash_map<std::string, const v1::AuthRole*> roles_of(const v1::AuthSettings& s,
                                                               std::vector<std::string>* errors) {
  absl::flat_hash_map<std::string, const v1::AuthRole*> roles;
  for (int i = 0; i < s.roles_size(); ++i) {
    const v1::AuthRole& r = s.roles(i);
    const std::string field = absl::StrCat("live.auth.roles[", i, "]");
    if (!valid_name(r.name())) {
      errors->push_back(absl::StrCat(field, ".name must be 1 to 256 letters, digits or ._-@:/=+"));
    } else if (!roles.emplace(r.name(), &r).second) {
      errors->push_back(absl::StrCat(field, ".name repeats an earlier role's"));
    }
    for (int j = 0; j < r.permissions_size(); ++j) {
      const v1::AuthPermission& p = r.permissions(j);
      access a;
      if (!parse_access(p.access(), &a)) {
        errors->push_back(absl::StrCat(field, ".permissions[", j,
                                       "].access must be read, write or admin (", p.access().size(),
                                       " bytes given)"));
      }
      if (p.prefix().size() > k_max_prefix_bytes) {
        errors->push_back(
            absl::StrCat(field, ".permissions[", j, "].prefix is longer than any key may be"));
      }
    }
  }
  return roles;
}

}  // namespace

digest sha256(std::string_view data) {
  // Fetched once: OpenSSL 3 would otherwise look the algorithm up (under its provider store's
  // lock) at every call. A context per thread, reused.
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  struct context_owner {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~context_owner() { EVP_MD_CTX_free(ctx); }
  };
  thread_local context_owner c;
  digest out{};
  unsigned int size = 0;
  EVP_DigestInit_ex(c.ctx, md, nullptr);
  EVP_DigestUpdate(c.ctx, data.data(), data.size());
  EVP_DigestFinal_ex(c.ctx, out.data(), &size);
  return out;
}

absl::StatusOr<std::shared_ptr<const policy>> policy::build(const v1::AuthSettings& s) {
  std::vector<std::string> errors;
  const auto roles = roles_of(s, &errors);
  auto p = std::make_shared<policy>();
  p->enabled_ = s.enabled();
  absl::flat_hash_set<std::string> tokens;
  for (int i = 0; i < s.users_size(); ++i) {
    const v1::AuthUser& in = s.users(i);
    const std::string field = absl::StrCat("live.auth.users[", i, "]");
    user u;
    u.name = in.name();
    if (!valid_name(in.name())) {
      errors.push_back(absl::StrCat(field,
                                    ".name must be 1 to 256 letters, digits or ._-@:/=+ "
                                    "and spaces"));
    } else if (!p->by_name_.emplace(in.name(), p->users_.size()).second) {
      errors.push_back(absl::StrCat(field, ".name repeats an earlier user's"));
    }
    u.certificate = in.certificate();
    if (in.token_sha256().empty() && !in.certificate()) {
      errors.push_back(absl::StrCat(field,
                                    " has neither token_sha256 nor certificate: it could never "
                                    "authenticate"));
    }
    if (!in.token_sha256().empty()) {
      if (!parse_digest(in.token_sha256(), &u.token)) {
        errors.push_back(absl::StrCat(field,
                                      ".token_sha256 must be 64 hex digits: the SHA-256 of the "
                                      "token (printf %s \"$TOKEN\" | sha256sum)"));
      } else if (!tokens.emplace(reinterpret_cast<const char*>(u.token.data()), u.token.size())
                      .second) {
        errors.push_back(absl::StrCat(field, ".token_sha256 is another user's too"));
      }
      u.has_token = true;
    }
    for (int j = 0; j < in.roles_size(); ++j) {
      auto r = roles.find(in.roles(j));
      if (r == roles.end()) {
        errors.push_back(absl::StrCat(field, ".roles[", j, "] names no role in live.auth.roles"));
        continue;
      }
      for (const v1::AuthPermission& perm : r->second->permissions()) {
        access a;
        if (parse_access(perm.access(), &a)) u.perms.grant(a, perm.prefix());
      }
    }
    u.perms.seal();
    p->users_.push_back(std::move(u));
  }
  if (s.enabled() && s.users_size() == 0) {
    errors.push_back(
        "live.auth.enabled needs at least one user in live.auth.users (else no call "
        "but health could be made)");
  }
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "; "));
  return std::shared_ptr<const policy>(std::move(p));
}

const user* policy::by_token(std::string_view token) const {
  const digest d = sha256(token);
  const user* found = nullptr;
  for (const user& u : users_) {
    // CRYPTO_memcmp takes the same time wherever the bytes differ; every user is compared.
    const bool match = u.has_token && CRYPTO_memcmp(d.data(), u.token.data(), d.size()) == 0;
    if (match) found = &u;
  }
  return found;
}

const user* policy::by_certificate(std::string_view name) const {
  auto it = by_name_.find(absl::string_view(name.data(), name.size()));
  if (it == by_name_.end() || !users_[it->second].certificate) return nullptr;
  return &users_[it->second];
}

}  // namespace shoal::service::auth
