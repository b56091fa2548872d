// permissions: what one user may do — read, write or admin — on which keys, kept as merged
// intervals of the key space, so that a key, a prefix or an interval [start, end) is checked with
// one binary search whatever the number of grants.
//
// When: built once per user when the auth rules are loaded (policy.h); checked on every call that
// names keys (check.h). Levels include the ones below them: write allows read, admin allows both.
// Grants add up: read on "a" and on "b" allow a Range from "a" to "c".
//
//   auth::permissions p;
//   p.grant(auth::access::read, "app/");
//   p.grant(auth::access::write, "app/tmp/");
//   p.seal();                                                  // merges; no grant after
//   p.allows(auth::access::read, auth::keys::prefix("app/"));  // true
//   p.allows(auth::access::write, auth::keys::one("app/x"));   // false
//   p.allows(auth::access::read, auth::keys::interval("app/", "b"));  // false: past "app/"
//
// Immutable once sealed: read from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace shoal::service::auth {

enum class access : uint8_t { read = 0, write = 1, admin = 2 };
inline constexpr int k_access_levels = 3;

const char* name_of(access a);
// "read", "write" or "admin".
bool parse_access(std::string_view s, access* out);

// The keys a call names: one key, every key with a prefix, or [start, end) (end empty: no bound).
// Views: the strings belong to the request.
struct keys {
  enum class kind : uint8_t { one, prefix, interval };
  kind what = kind::one;
  std::string_view start;
  std::string_view end;

  static keys one(std::string_view k) { return {kind::one, k, {}}; }
  static keys prefix(std::string_view p) { return {kind::prefix, p, {}}; }
  static keys interval(std::string_view start, std::string_view end) {
    return {kind::interval, start, end};
  }
  static keys all() { return prefix({}); }
};

// The least key greater than every key that starts with `prefix`, or false when there is none
// (an empty prefix, or one of 0xff bytes only).
bool prefix_end(std::string_view prefix, std::string* out);

class permissions {
 public:
  void grant(access a, std::string_view prefix);
  void seal();
  bool allows(access a, const keys& k) const;

 private:
  struct span {
    std::string start;
    std::string end;  // exclusive
    bool bounded = true;
  };
  static void merge(std::vector<span>& spans);
  // The span that holds `start`, or null.
  const span* holding(access a, std::string_view start) const;

  std::array<std::vector<span>, k_access_levels> spans_;
};

}  // namespace shoal::service::auth
