// log: one-line structured logs on stderr, `ts=... level=... msg="..." key=value ...`.
//
//   SHOAL_LOG(info, "listening", {{"address", addr}, {"workers", 2}});
//
// The level is live (set_level from the config watcher); a line below it costs one atomic load.
#pragma once

#include <atomic>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"

namespace shoal::service::log {

enum class level { debug = 0, info = 1, warn = 2, error = 3 };

// Parses "debug" | "info" | "warn" | "error"; false if it is none of them.
bool parse_level(std::string_view s, level* out);
void set_level(level l);
bool enabled(level l);

struct field {
  field(std::string_view k, std::string_view v) : key(k), value(v), quoted(true) {}
  field(std::string_view k, const char* v) : key(k), value(v), quoted(true) {}
  field(std::string_view k, const std::string& v) : key(k), value(v), quoted(true) {}
  template <class N, class = std::enable_if_t<std::is_arithmetic_v<N>>>
  field(std::string_view k, N v) : key(k), value(absl::StrCat(v)), quoted(false) {}
  std::string_view key;
  std::string value;
  bool quoted;
};

void write(level l, std::string_view msg, std::initializer_list<field> fields = {});

}  // namespace shoal::service::log

#define SHOAL_LOG(lvl, ...)                                                         \
  do {                                                                              \
    if (::shoal::service::log::enabled(::shoal::service::log::level::lvl)) {        \
      ::shoal::service::log::write(::shoal::service::log::level::lvl, __VA_ARGS__); \
    }                                                                               \
  } while (0)
