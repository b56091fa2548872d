#include "service/config/config.h"

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "service/log.h"
#include "service/store/store.h"

namespace shoal::service::config {
namespace {

// What a reply holds besides one key and one value: header, revisions, framing.
constexpr uint64_t k_envelope_bytes = 1024;

}  // namespace

v1::ServerConfig defaults() {
  v1::ServerConfig c;
  auto* s = c.mutable_startup();
  s->set_listen("127.0.0.1:50051");
  s->set_metrics_listen("127.0.0.1:9090");
  s->set_workers(0);
  s->set_runtime("multi_thread");
  s->set_shards(0);
  s->set_max_message_bytes(4u << 20);
  s->set_history_max_events(100'000);
  s->set_history_max_bytes(64ull << 20);
  s->set_shutdown_grace_seconds(10);
  s->set_data_dir("");
  s->set_wal_segment_bytes(16ull << 20);
  s->set_snapshot_log_bytes(64ull << 20);
  s->set_wal_truncate_damaged(false);
  s->set_tls_cert_file("");
  s->set_tls_key_file("");
  s->set_tls_client_ca_file("");
  s->set_tls_client_auth("off");
  s->set_tls_refresh_seconds(10);
  s->set_probe_listen("");
  s->set_raft_id(0);
  s->set_raft_members("");
  s->set_raft_bootstrap(false);
  s->set_raft_listen("");
  s->set_raft_election_ms(1000);
  s->set_raft_heartbeat_ms(100);
  s->set_raft_tls_cert_file("");
  s->set_raft_tls_key_file("");
  s->set_raft_tls_ca_file("");
  s->set_raft_snapshot_entries(16384);
  s->set_raft_snapshot_trailing(8192);
  s->set_raft_log_max_bytes(64u << 20);
  auto* l = c.mutable_live();
  l->set_max_key_bytes(4096);
  l->set_max_value_bytes(1u << 20);
  l->set_max_keys(10'000'000);
  l->set_max_bytes(4ull << 30);
  l->set_max_in_flight(10'000);
  l->set_max_watchers(10'000);
  l->set_max_streams(10'000);
  l->set_max_control_calls(256);
  l->set_default_ttl_ms(0);
  l->set_read_only(false);
  l->set_range_page_max_items(1000);
  l->set_max_batch_ops(1000);
  l->set_max_txn_ops(128);
  l->set_max_pipeline_depth(16);
  l->set_max_pipeline_bytes(1u << 20);
  l->set_range_page_max_bytes(1u << 20);
  l->set_progress_interval_ms(0);
  l->set_log_level("info");
  l->set_fsync("always");
  l->set_fsync_interval_ms(100);
  return c;
}

absl::StatusOr<v1::ServerConfig> parse_json(std::string_view json) {
  v1::ServerConfig c;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto st = google::protobuf::util::JsonStringToMessage(std::string(json), &c, options);
  if (!st.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config is not valid JSON for shoal.v1.ServerConfig: ",
                     describe_json_error(json, st.message().as_string())));
  }
  return c;
}

namespace {

// An address gRPC listens on as given: host:port (the host a name, an IPv4 address or a
// bracketed IPv6 one) with a decimal port from 0 to 65535 — gRPC's resolver would take 80000 as
// another port, and an empty one as 443 — or unix:path.
bool listen_address(std::string_view a) {
  if (a.rfind("unix:", 0) == 0) return a.size() > 5;
  const auto colon = a.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  const std::string_view port = a.substr(colon + 1);
  if (port.empty() || port.size() > 5) return false;
  if (!std::all_of(port.begin(), port.end(), absl::ascii_isdigit)) return false;
  if (std::stoi(std::string(port)) > 65535) return false;
  const std::string_view host = a.substr(0, colon);
  return std::all_of(host.begin(), host.end(), [](char ch) {
    return absl::ascii_isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-' ||
           ch == ':' || ch == '[' || ch == ']' || ch == '_';
  });
}

// A name as settings have: letters, digits and underscores, not too long to read.
bool plain_name(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char ch) {
    return absl::ascii_isalnum(static_cast<unsigned char>(ch)) || ch == '_';
  });
}

// protobuf's message for a key that names no field: "(live) maxKeyBites: Cannot find field.",
// the path of the message it is in, then the key as written (any bytes, a line break too). The
// key is named when it looks like a setting's name, which says what to fix; otherwise not shown.
std::optional<std::string> describe_unknown_field(std::string_view message) {
  constexpr auto npos = std::string_view::npos;
  constexpr std::string_view k_unknown = ": Cannot find field";
  const std::size_t name_end = message.find(k_unknown);
  if (name_end == npos) return std::nullopt;
  // The path opens the message, made of known fields' names; else the key starts at once.
  const std::size_t path_end = message.starts_with('(') ? message.find(") ") : npos;
  const bool has_path =
      path_end != npos && path_end < name_end &&
      std::all_of(message.begin() + 1, message.begin() + path_end, [](char ch) {
        return absl::ascii_isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.';
      });
  const std::size_t name_at = has_path ? path_end + 2 : 0;
  const std::string_view name = message.substr(name_at, name_end - name_at);
  std::string out(message.substr(0, name_at));
  out += plain_name(name) ? name : std::string_view("(a name not shown)");
  out += k_unknown;
  out += '.';
  return out;
}

// The TLS settings go together: a certificate with its key, client certificates with a CA.
void validate_tls(const v1::StartupSettings& s, std::vector<std::string>* errors) {
  if (s.tls_cert_file().empty() != s.tls_key_file().empty()) {
    errors->push_back(
        "startup.tls_cert_file and startup.tls_key_file go together: set both "
        "(TLS) or neither (plaintext)");
  }
  const std::string& client = s.tls_client_auth();
  if (client != "off" && client != "optional" && client != "require") {
    errors->push_back(absl::StrCat("startup.tls_client_auth must be off, optional or require (",
                                   client.size(), " bytes given)"));
  } else if (client != "off" && s.tls_client_ca_file().empty()) {
    errors->push_back("startup.tls_client_auth " + client +
                      " needs startup.tls_client_ca_file (the CAs that sign client certificates)");
  }
  if (!s.tls_client_ca_file().empty() && s.tls_cert_file().empty()) {
    errors->push_back(
        "startup.tls_client_ca_file needs TLS (startup.tls_cert_file and "
        "startup.tls_key_file)");
  }
  if (s.tls_refresh_seconds() == 0 || s.tls_refresh_seconds() > 86'400) {
    errors->push_back("startup.tls_refresh_seconds must be between 1 and 86400");
  }
}

}  // namespace

std::string describe_json_error(std::string_view input, std::string_view message) {
  constexpr auto npos = std::string_view::npos;
  if (auto unknown = describe_unknown_field(message)) return *std::move(unknown);
  // protobuf's message: the problem, then (for a syntax error) the input around it and a caret.
  const std::size_t first_break = message.find('\n');
  const std::string_view problem = message.substr(0, first_break);
  std::string where;
  const std::size_t last_break = message.rfind('\n');
  if (first_break != npos && last_break > first_break) {
    const std::string_view around = message.substr(first_break + 1, last_break - first_break - 1);
    const std::size_t caret = message.substr(last_break + 1).find('^');
    const std::size_t at = around.empty() ? npos : input.find(around);
    if (caret != npos && at != npos) {
      const std::string_view before = input.substr(0, std::min(at + caret, input.size()));
      const std::size_t line_start = before.rfind('\n');
      const std::size_t line = 1 + std::count(before.begin(), before.end(), '\n');
      const std::size_t column = before.size() - (line_start == npos ? 0 : line_start + 1) + 1;
      where = absl::StrCat("line ", line, ", column ", column, ": ");
    }
  }
  // Quoted text is the file's (a value it could not take): left out.
  std::string out;
  bool quoted = false;
  for (char ch : problem) {
    if (ch == '"') {
      if (!quoted) out += "(a value not shown)";
      quoted = !quoted;
    } else if (!quoted) {
      out += ch;
    }
  }
  return absl::StrCat(where, out);
}

absl::StatusOr<v1::ServerConfig> load_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read config file ", path));
  std::stringstream buf;
  buf << in.rdbuf();
  auto c = parse_json(buf.str());
  if (!c.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", c.status().message()));
  return c;
}

v1::ServerConfig merge(std::initializer_list<const v1::ServerConfig*> layers) {
  v1::ServerConfig out;
  for (const v1::ServerConfig* layer : layers) {
    if (layer != nullptr) out.MergeFrom(*layer);  // only fields present in the layer override
  }
  return out;
}

absl::Status validate(const v1::ServerConfig& c) {
  std::vector<std::string> errors;
  const auto& s = c.startup();
  const auto& l = c.live();
  if (s.runtime() != "multi_thread" && s.runtime() != "current_thread") {
    // The value itself is not quoted: errors reach logs and Status, and a file may hold secrets.
    errors.push_back(absl::StrCat("startup.runtime must be multi_thread or current_thread (",
                                  s.runtime().size(), " bytes given)"));
  }
  if (!listen_address(s.listen())) {
    errors.push_back(
        absl::StrCat("startup.listen must be host:port with a port from 0 to 65535, "
                     "or unix:path (",
                     s.listen().size(), " bytes given)"));
  }
  if (!s.metrics_listen().empty() && !listen_address(s.metrics_listen())) {
    errors.push_back(
        absl::StrCat("startup.metrics_listen must be host:port with a port from 0 to "
                     "65535 (",
                     s.metrics_listen().size(), " bytes given)"));
  }
  if (!s.probe_listen().empty() && !listen_address(s.probe_listen())) {
    errors.push_back(
        absl::StrCat("startup.probe_listen must be host:port with a port from 0 to 65535 (",
                     s.probe_listen().size(), " bytes given)"));
  }
  if (s.raft_id() != 0 && s.data_dir().empty()) {
    errors.push_back("startup.raft_id needs startup.data_dir (where the Raft log lives)");
  }
  if (s.raft_id() != 0 && s.raft_members().empty()) {
    errors.push_back("startup.raft_id needs startup.raft_members (the cluster's members)");
  }
  if (s.raft_id() != 0 &&
      (s.raft_heartbeat_ms() == 0 || s.raft_election_ms() < 2 * s.raft_heartbeat_ms())) {
    errors.push_back(
        "startup.raft_election_ms must be at least twice startup.raft_heartbeat_ms (above 0)");
  }
  if (!s.raft_tls_ca_file().empty() &&
      (s.raft_tls_cert_file().empty() ? s.tls_cert_file() : s.raft_tls_cert_file()).empty()) {
    errors.push_back(
        "startup.raft_tls_ca_file needs a certificate for this replica: startup.raft_tls_cert_file "
        "and raft_tls_key_file, or tls_cert_file and tls_key_file");
  }
  if (s.raft_snapshot_trailing() == 0 || s.raft_snapshot_trailing() > s.raft_snapshot_entries()) {
    errors.push_back(
        "startup.raft_snapshot_trailing must be at least 1 (0 would drop the whole log at each "
        "snapshot), and raft_snapshot_entries at least it");
  }
  // A write may be one entry of up to a whole message: room for a few before each snapshot.
  if (s.raft_id() != 0 && s.raft_log_max_bytes() < 4ull * s.max_message_bytes()) {
    errors.push_back(
        absl::StrCat("startup.raft_log_max_bytes must be at least four times "
                     "startup.max_message_bytes (",
                     4ull * s.max_message_bytes(), " here)"));
  }
  if (s.raft_tls_cert_file().empty() != s.raft_tls_key_file().empty()) {
    errors.push_back(
        "startup.raft_tls_cert_file and raft_tls_key_file go together: both or neither");
  }
  if (s.shards() != 0 && (s.shards() & (s.shards() - 1)) != 0) {
    errors.push_back(
        absl::StrCat("startup.shards must be a power of two (or 0), not ", s.shards()));
  }
  if (s.shards() > 4096) errors.push_back("startup.shards must be at most 4096");
  if (s.workers() > 256) errors.push_back("startup.workers must be at most 256");
  if (s.max_message_bytes() < (64u << 10)) {
    errors.push_back("startup.max_message_bytes must be at least 65536");
  }
  if (s.history_max_events() == 0) errors.push_back("startup.history_max_events must be positive");
  if (l.max_key_bytes() == 0 || l.max_key_bytes() > 65535) {
    errors.push_back("live.max_key_bytes must be between 1 and 65535");
  }
  // A value must fit in a message with its key and the envelope (header, revisions, framing).
  const uint64_t taken = uint64_t{l.max_key_bytes()} + k_envelope_bytes;
  const uint64_t room = s.max_message_bytes() > taken ? s.max_message_bytes() - taken : 0;
  if (l.max_value_bytes() > room) {
    errors.push_back(absl::StrCat("live.max_value_bytes (", l.max_value_bytes(),
                                  ") must leave room for the key and the envelope in "
                                  "startup.max_message_bytes (",
                                  s.max_message_bytes(), "): at most ", room));
  }
  if (l.max_in_flight() == 0) errors.push_back("live.max_in_flight must be positive");
  if (l.max_streams() == 0) errors.push_back("live.max_streams must be positive");
  if (l.max_control_calls() == 0) errors.push_back("live.max_control_calls must be positive");
  if (l.default_ttl_ms() < 0 || l.default_ttl_ms() > store::k_max_ttl_ms) {
    errors.push_back(absl::StrCat("live.default_ttl_ms must be between 0 and ", store::k_max_ttl_ms,
                                  " (100 years)"));
  }
  if (l.range_page_max_items() == 0) errors.push_back("live.range_page_max_items must be positive");
  if (l.max_batch_ops() == 0) errors.push_back("live.max_batch_ops must be positive");
  if (l.max_txn_ops() == 0) errors.push_back("live.max_txn_ops must be positive");
  if (l.max_pipeline_depth() == 0 || l.max_pipeline_depth() > 4096) {
    errors.push_back("live.max_pipeline_depth must be between 1 and 4096");
  }
  if (l.max_pipeline_bytes() == 0) errors.push_back("live.max_pipeline_bytes must be positive");
  if (l.fsync() != "always" && l.fsync() != "interval" && l.fsync() != "none") {
    errors.push_back(absl::StrCat("live.fsync must be always, interval or none (", l.fsync().size(),
                                  " bytes given)"));
  }
  if (l.fsync_interval_ms() == 0 || l.fsync_interval_ms() > 60'000) {
    errors.push_back("live.fsync_interval_ms must be between 1 and 60000");
  }
  if (s.wal_segment_bytes() < (1u << 20)) {
    errors.push_back("startup.wal_segment_bytes must be at least 1048576");
  }
  if (s.snapshot_log_bytes() < s.wal_segment_bytes()) {
    errors.push_back("startup.snapshot_log_bytes must be at least startup.wal_segment_bytes");
  }
  validate_tls(s, &errors);
  if (auto rules = auth::policy::build(l.auth()); !rules.ok()) {
    errors.push_back(std::string(rules.status().message()));
  }
  log::level lvl;
  if (!log::parse_level(l.log_level(), &lvl)) {
    errors.push_back(absl::StrCat("live.log_level must be debug, info, warn or error (",
                                  l.log_level().size(), " bytes given)"));
  }
  if (errors.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(errors, "; "));
}

v1::ServerConfig redacted(const v1::ServerConfig& c) {
  v1::ServerConfig out = c;
  for (v1::AuthUser& u : *out.mutable_live()->mutable_auth()->mutable_users()) {
    if (!u.token_sha256().empty()) u.set_token_sha256("(set)");
  }
  if (!c.live().has_auth()) out.mutable_live()->clear_auth();
  return out;
}

absl::Status seal(snapshot& s) {
  auto rules = auth::policy::build(s.live().auth());
  if (!rules.ok()) return rules.status();
  s.auth = *std::move(rules);
  return absl::OkStatus();
}

std::string startup_differences(const v1::ServerConfig& running, const v1::ServerConfig& next) {
  std::vector<std::string> changed;
  const auto* d = v1::StartupSettings::descriptor();
  const auto* r = running.startup().GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const auto* f = d->field(i);
    google::protobuf::util::MessageDifferencer diff;
    std::vector<const google::protobuf::FieldDescriptor*> fields{f};
    if (!diff.CompareWithFields(running.startup(), next.startup(), fields, fields)) {
      changed.push_back(f->name());
    }
  }
  (void)r;
  return absl::StrJoin(changed, ", ");
}

}  // namespace shoal::service::config
