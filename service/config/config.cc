#include "service/config/config.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "service/log.h"

namespace shoal::service::config {

v1::ServerConfig defaults() {
  v1::ServerConfig c;
  auto* s = c.mutable_startup();
  s->set_listen("127.0.0.1:50051");
  s->set_workers(0);
  s->set_runtime("multi_thread");
  s->set_shards(0);
  s->set_max_message_bytes(4u << 20);
  s->set_history_max_events(100'000);
  s->set_history_max_bytes(64ull << 20);
  s->set_shutdown_grace_seconds(10);
  auto* l = c.mutable_live();
  l->set_max_key_bytes(4096);
  l->set_max_value_bytes(1u << 20);
  l->set_max_keys(10'000'000);
  l->set_max_bytes(4ull << 30);
  l->set_max_in_flight(10'000);
  l->set_max_watchers(10'000);
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
  return c;
}

absl::StatusOr<v1::ServerConfig> parse_json(std::string_view json) {
  v1::ServerConfig c;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto st = google::protobuf::util::JsonStringToMessage(std::string(json), &c, options);
  if (!st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config is not valid JSON for shoal.v1.ServerConfig: ", st.message().as_string()));
  }
  return c;
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
    errors.push_back(absl::StrCat("startup.runtime must be multi_thread or current_thread, not \"",
                                  s.runtime(), "\""));
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
  const uint64_t room = static_cast<uint64_t>(s.max_message_bytes()) - l.max_key_bytes() - 1024;
  if (l.max_value_bytes() > room) {
    errors.push_back(absl::StrCat("live.max_value_bytes (", l.max_value_bytes(),
                                  ") must leave room for the key and the envelope in "
                                  "startup.max_message_bytes (",
                                  s.max_message_bytes(), "): at most ", room));
  }
  if (l.max_in_flight() == 0) errors.push_back("live.max_in_flight must be positive");
  if (l.default_ttl_ms() < 0) errors.push_back("live.default_ttl_ms must not be negative");
  if (l.range_page_max_items() == 0) errors.push_back("live.range_page_max_items must be positive");
  if (l.max_batch_ops() == 0) errors.push_back("live.max_batch_ops must be positive");
  if (l.max_txn_ops() == 0) errors.push_back("live.max_txn_ops must be positive");
  if (l.max_pipeline_depth() == 0 || l.max_pipeline_depth() > 4096) {
    errors.push_back("live.max_pipeline_depth must be between 1 and 4096");
  }
  if (l.max_pipeline_bytes() == 0) errors.push_back("live.max_pipeline_bytes must be positive");
  log::level lvl;
  if (!log::parse_level(l.log_level(), &lvl)) {
    errors.push_back(absl::StrCat("live.log_level must be debug, info, warn or error, not \"",
                                  l.log_level(), "\""));
  }
  if (errors.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(errors, "; "));
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
