// config: Shoal's configuration model — defaults, the JSON file, validation, merging.
//
// The effective configuration is defaults < file < flags (shoal.v1.ServerConfig, every field
// optional, so each layer sets only what it names). Start-up settings are fixed once the server
// runs; live settings follow the file (config_watcher.h) and reach handlers through a watch
// channel.
//
//   auto file = config::load_file("/etc/shoal/config.json");   // StatusOr<ServerConfig>
//   const v1::ServerConfig base = config::defaults();
//   v1::ServerConfig effective = config::merge({&base, &*file, &flag_overlay});
//   if (auto s = config::validate(effective); !s.ok()) ...
//
// (server.cc does exactly this at start-up.)
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "service/auth/policy.h"
#include "shoal/v1/admin.pb.h"

namespace shoal::service::config {

namespace v1 = ::shoal::v1;

v1::ServerConfig defaults();

// Parses protobuf's JSON mapping of ServerConfig; unknown fields are an error (a typo in a setting
// name must not pass silently).
absl::StatusOr<v1::ServerConfig> parse_json(std::string_view json);
absl::StatusOr<v1::ServerConfig> load_file(const std::string& path);

// protobuf's JSON error for `input`, told without quoting the input: a config file may hold
// secrets, and its errors reach logs and Status. Keeps the problem, the field it names and where
// it is ("line 3, column 14: Unexpected token.").
std::string describe_json_error(std::string_view input, std::string_view message);

// Later layers override earlier ones, field by field.
v1::ServerConfig merge(std::initializer_list<const v1::ServerConfig*> layers);

// Checks a complete (merged) configuration: ranges, powers of two, and that values fit in messages.
absl::Status validate(const v1::ServerConfig& c);

// The configuration as GetConfig shows it: token hashes replaced by "(set)" (a hash is no secret,
// but it lets a weak token be guessed offline).
v1::ServerConfig redacted(const v1::ServerConfig& c);

// Start-up settings that differ between two configurations (a reload cannot apply them).
std::string startup_differences(const v1::ServerConfig& running, const v1::ServerConfig& next);

// What handlers see: an immutable snapshot, replaced as a whole on every change.
struct snapshot {
  v1::ServerConfig config;
  uint64_t version = 0;
  std::string source;      // "defaults", "defaults+file:/path", "...+flags"
  std::string last_error;  // the last reload that failed, if any
  // live.auth, built (seal): null until then, and the rules are then off.
  std::shared_ptr<const auth::policy> auth;
  bool auth_on() const { return auth != nullptr && auth->enabled(); }
  const v1::LiveSettings& live() const { return config.live(); }
  const v1::StartupSettings& startup() const { return config.startup(); }
};
using snapshot_ptr = std::shared_ptr<const snapshot>;

// Builds what a snapshot derives from its configuration (its auth rules). An error only for a
// configuration validate() refuses.
absl::Status seal(snapshot& s);

}  // namespace shoal::service::config
