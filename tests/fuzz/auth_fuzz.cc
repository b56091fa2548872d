// Fuzzes the auth checks: bytes as an `authorization` metadata value (the bearer token parser),
// and as grants and the keys a call names (permissions). The parser never crashes and only ever
// returns a printable token from inside the value; a permission check never allows what the
// grants do not: a key is allowed exactly when a grant of that level or above is a prefix of it,
// and a prefix or an interval allowed holds only allowed keys (checked on keys drawn from it).
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "service/auth/credentials.h"
#include "service/auth/permissions.h"

namespace {

namespace auth = shoal::service::auth;

void check(bool ok) {
  if (!ok) std::abort();
}

void fuzz_bearer(const std::string& value) {
  const auto token = auth::bearer_token(value);
  if (!token) return;
  check(!token->empty() && token->size() <= 4096);
  check(token->data() >= value.data() &&
        token->data() + token->size() <= value.data() + value.size());
  for (char ch : *token) check(ch > ' ' && ch < 0x7f);
}

bool starts_with(const std::string& s, const std::string& p) {
  return s.compare(0, p.size(), p) == 0;
}

// The model: a key is allowed at level `a` if a grant at `a` or above is a prefix of it.
bool model_allows(const std::vector<std::pair<auth::access, std::string>>& grants, auth::access a,
                  const std::string& key) {
  for (const auto& [level, prefix] : grants) {
    if (level >= a && starts_with(key, prefix)) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  fuzz_bearer(in.ConsumeRandomLengthString(256));

  std::vector<std::pair<auth::access, std::string>> grants;
  auth::permissions p;
  const int n = in.ConsumeIntegralInRange(0, 6);
  for (int i = 0; i < n; ++i) {
    const auto a = static_cast<auth::access>(in.ConsumeIntegralInRange(0, 2));
    std::string prefix = in.ConsumeRandomLengthString(6);
    p.grant(a, prefix);
    grants.emplace_back(a, std::move(prefix));
  }
  p.seal();
  const auto a = static_cast<auth::access>(in.ConsumeIntegralInRange(0, 2));
  const std::string start = in.ConsumeRandomLengthString(8);
  const std::string end = in.ConsumeRandomLengthString(8);
  check(p.allows(a, auth::keys::one(start)) == model_allows(grants, a, start));
  // Keys inside the prefix `start`, and inside [start, end): drawn from the rest of the input.
  std::vector<std::string> inside;
  while (in.remaining_bytes() > 0 && inside.size() < 16) {
    inside.push_back(start + in.ConsumeRandomLengthString(4));
  }
  if (p.allows(a, auth::keys::prefix(start))) {
    check(model_allows(grants, a, start));
    for (const auto& k : inside) check(model_allows(grants, a, k));
  }
  if (p.allows(a, auth::keys::interval(start, end))) {
    check(model_allows(grants, a, start));
    for (const auto& k : inside) {
      if (end.empty() || k < end) check(model_allows(grants, a, k));
    }
  }
  return 0;
}
