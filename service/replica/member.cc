#include "service/replica/member.h"

#include <charconv>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace shoal::service::replica {
namespace {

template <class T>
bool parse_number(std::string_view text, T* out) {
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && p == end && !text.empty();
}

}  // namespace

bool split_host_port(std::string_view hp, std::string* host, std::string* port) {
  const std::size_t colon = hp.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == hp.size()) return false;
  std::string_view h = hp.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  uint32_t p = 0;
  if (!parse_number(hp.substr(colon + 1), &p) || p == 0 || p > 65535) return false;
  *host = std::string(h);
  *port = std::string(hp.substr(colon + 1));
  return true;
}

bool split_address(std::string_view address, member* out) {
  const std::size_t slash = address.find('/');
  if (slash == std::string_view::npos) return false;
  std::string host;
  std::string port;
  if (!split_host_port(address.substr(0, slash), &host, &port) ||
      !split_host_port(address.substr(slash + 1), &host, &port)) {
    return false;
  }
  out->peer = std::string(address.substr(0, slash));
  out->client = std::string(address.substr(slash + 1));
  return true;
}

absl::StatusOr<std::vector<member>> parse_members(std::string_view text) {
  std::vector<member> out;
  int n = 0;
  for (absl::string_view piece :
       absl::StrSplit(absl::string_view(text.data(), text.size()), ',', absl::SkipWhitespace())) {
    const absl::string_view trimmed = absl::StripAsciiWhitespace(piece);
    const std::string_view item(trimmed.data(), trimmed.size());
    ++n;
    const std::size_t eq = item.find('=');
    member m;
    if (eq == std::string_view::npos || !parse_number(item.substr(0, eq), &m.id) || m.id == 0 ||
        !split_address(item.substr(eq + 1), &m)) {
      return absl::InvalidArgumentError(
          absl::StrCat("startup.raft_members item ", n,
                       " must be id=peer_host:port/client_host:port with an id of 1 or more"));
    }
    for (const member& o : out) {
      if (o.id == m.id) {
        return absl::InvalidArgumentError(
            absl::StrCat("startup.raft_members names id ", m.id, " twice"));
      }
    }
    out.push_back(std::move(m));
  }
  if (out.empty()) {
    return absl::InvalidArgumentError("startup.raft_members names no member");
  }
  return out;
}

}  // namespace shoal::service::replica
