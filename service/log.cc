#include "service/log.h"

#include <cstdio>
#include <ctime>

#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace shoal::service::log {
namespace {

std::atomic<int> g_level{static_cast<int>(level::info)};

const char* name(level l) {
  switch (l) {
    case level::debug:
      return "debug";
    case level::info:
      return "info";
    case level::warn:
      return "warn";
    case level::error:
      return "error";
  }
  return "info";
}

std::string quote(std::string_view s) {
  const absl::string_view in(s.data(), s.size());  // Debian's absl has its own string_view
  return absl::StrCat(
      "\"", absl::StrReplaceAll(in, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}}), "\"");
}

}  // namespace

bool parse_level(std::string_view s, level* out) {
  for (level l : {level::debug, level::info, level::warn, level::error}) {
    if (s == name(l)) {
      *out = l;
      return true;
    }
  }
  return false;
}

void set_level(level l) { g_level.store(static_cast<int>(l), std::memory_order_relaxed); }

bool enabled(level l) { return static_cast<int>(l) >= g_level.load(std::memory_order_relaxed); }

void write(level l, std::string_view msg, std::initializer_list<field> fields) {
  std::string line = absl::StrCat(
      "ts=", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()),
      " level=", name(l), " msg=", quote(msg));
  for (const field& f : fields) {
    line.append(" ").append(f.key).append("=").append(f.quoted ? quote(f.value) : f.value);
  }
  line.push_back('\n');
  std::fwrite(line.data(), 1, line.size(), stderr);  // one write per line: lines never interleave
}

}  // namespace shoal::service::log
