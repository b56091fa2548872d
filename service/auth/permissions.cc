#include "service/auth/permissions.h"

#include <algorithm>

namespace shoal::service::auth {

const char* name_of(access a) {
  switch (a) {
    case access::read:
      return "read";
    case access::write:
      return "write";
    case access::admin:
      return "admin";
  }
  return "?";
}

bool parse_access(std::string_view s, access* out) {
  for (access a : {access::read, access::write, access::admin}) {
    if (s == name_of(a)) {
      *out = a;
      return true;
    }
  }
  return false;
}

bool prefix_end(std::string_view prefix, std::string* out) {
  std::string end(prefix);
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) end.pop_back();
  if (end.empty()) return false;
  end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
  *out = std::move(end);
  return true;
}

void permissions::grant(access a, std::string_view prefix) {
  span s{std::string(prefix), {}, true};
  s.bounded = prefix_end(prefix, &s.end);
  // A level allows the ones below it.
  for (int level = 0; level <= static_cast<int>(a); ++level) spans_[level].push_back(s);
}

void permissions::merge(std::vector<span>& spans) {
  std::sort(spans.begin(), spans.end(),
            [](const span& x, const span& y) { return x.start < y.start; });
  std::vector<span> out;
  for (span& s : spans) {
    if (!out.empty()) {
      span& last = out.back();
      if (!last.bounded) continue;  // it already reaches the end of the key space
      if (s.start <= last.end) {    // overlapping or adjacent
        if (!s.bounded) {
          last.bounded = false;
          last.end.clear();
        } else if (s.end > last.end) {
          last.end = std::move(s.end);
        }
        continue;
      }
    }
    out.push_back(std::move(s));
  }
  spans = std::move(out);
}

void permissions::seal() {
  for (auto& level : spans_) merge(level);
}

const permissions::span* permissions::holding(access a, std::string_view start) const {
  const auto& spans = spans_[static_cast<int>(a)];
  // The last span that starts at or before `start`: spans are disjoint, so only it can hold it.
  auto it = std::upper_bound(spans.begin(), spans.end(), start,
                             [](std::string_view k, const span& s) { return k < s.start; });
  if (it == spans.begin()) return nullptr;
  const span& s = *std::prev(it);
  if (s.bounded && !(start < s.end)) return nullptr;
  return &s;
}

bool permissions::allows(access a, const keys& k) const {
  const span* s = holding(a, k.start);
  if (s == nullptr) return false;
  if (!s->bounded) return true;
  switch (k.what) {
    case keys::kind::one:
      return true;  // holding() checked start < end
    case keys::kind::prefix: {
      std::string end;
      return prefix_end(k.start, &end) && end <= s->end;
    }
    case keys::kind::interval:
      return !k.end.empty() && k.end <= s->end;
  }
  return false;
}

}  // namespace shoal::service::auth
