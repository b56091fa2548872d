// shoald: flags -> configuration -> server; SIGTERM/SIGINT drain it. Nothing else lives here.
#include <signal.h>

#include <cstdio>
#include <set>
#include <string>
#include <string_view>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "service/build_info.h"
#include "service/log.h"
#include "service/server.h"

// jemalloc's options, read at start-up when shoald is linked with it (SHOAL_JEMALLOC): a
// background thread returns freed pages to the system within a second, as Redis configures its
// jemalloc, instead of keeping them until the next allocation burst. (Memory freed by a growing
// hash table would otherwise stay resident.) Ignored by other allocators.
extern "C" {
const char* malloc_conf = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";
}

ABSL_FLAG(std::string, config, "", "JSON config file (shoal.v1.ServerConfig); watched for changes");
// Start-up settings.
ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "address to listen on; port 0 picks one");
ABSL_FLAG(uint32_t, workers, 0, "worker threads (0: one per core)");
ABSL_FLAG(std::string, runtime, "multi_thread", "multi_thread or current_thread");
ABSL_FLAG(uint32_t, shards, 0, "store shards, a power of two (0: 2 per worker, at least 4)");
ABSL_FLAG(uint32_t, max_message_bytes, 4u << 20, "largest gRPC message");
ABSL_FLAG(uint32_t, history_max_events, 100'000, "watch history length, in events");
ABSL_FLAG(uint64_t, history_max_bytes, 64ull << 20, "watch history size, in bytes");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9090",
          "Prometheus endpoint (GET /metrics); port 0 picks one; empty: none");
ABSL_FLAG(std::string, data_dir, "",
          "directory of the write-ahead log (empty: in memory only; a restart empties the store)");
ABSL_FLAG(uint64_t, wal_segment_bytes, 16ull << 20, "log segment size, in bytes");
ABSL_FLAG(uint64_t, snapshot_log_bytes, 64ull << 20,
          "take a snapshot (and drop the log it covers) once this much closed log has grown");
ABSL_FLAG(bool, wal_truncate_damaged, false,
          "recovering a damaged log: cut it at the first damaged record instead of refusing to "
          "start (the store id changes)");
ABSL_FLAG(std::string, fsync, "always",
          "with --data_dir: always (sync before each reply; concurrent writes share a sync), "
          "interval (every --fsync_interval_ms) or none");
ABSL_FLAG(uint32_t, fsync_interval_ms, 100, "sync period of --fsync=interval");
ABSL_FLAG(uint32_t, shutdown_grace_seconds, 10, "time calls in flight get on SIGTERM");
ABSL_FLAG(std::string, tls_cert_file, "",
          "TLS: the server's certificate chain (PEM); with --tls_key_file. Reloaded when changed");
ABSL_FLAG(std::string, tls_key_file, "", "TLS: the certificate's private key (PEM)");
ABSL_FLAG(std::string, tls_client_ca_file, "", "mTLS: the CAs that sign client certificates");
ABSL_FLAG(std::string, tls_client_auth, "off", "client certificates: off, optional or require");
ABSL_FLAG(uint32_t, tls_refresh_seconds, 10, "how often the TLS files are read again");
ABSL_FLAG(std::string, probe_listen, "",
          "plaintext health checks only (for probes that cannot use TLS); empty: none");
ABSL_FLAG(uint64_t, raft_id, 0, "replication: this replica's id (1 and up; 0: a single server)");
ABSL_FLAG(std::string, raft_members, "",
          "replication: the first members, id=peer_host:port/client_host:port,...");
ABSL_FLAG(bool, raft_bootstrap, false,
          "replication: an empty data directory creates the cluster from --raft_members");
ABSL_FLAG(std::string, raft_listen, "",
          "replication: host:port of the Raft port (default: own peer)");
ABSL_FLAG(uint32_t, raft_election_ms, 1000, "replication: the election timeout");
ABSL_FLAG(uint32_t, raft_heartbeat_ms, 100, "replication: the leader's heartbeat");
ABSL_FLAG(std::string, raft_tls_cert_file, "",
          "replication: this replica's certificate for its peers (default: --tls_cert_file)");
ABSL_FLAG(std::string, raft_tls_key_file, "", "replication: its key (default: --tls_key_file)");
ABSL_FLAG(uint32_t, raft_snapshot_entries, 16384,
          "replication: Raft log entries (each the writes the leader took together) between "
          "snapshots of the store");
ABSL_FLAG(uint32_t, raft_snapshot_trailing, 8192,
          "replication: entries kept after a snapshot, for followers a little behind");
ABSL_FLAG(uint64_t, raft_log_max_bytes, 64u << 20,
          "replication: bytes of entries kept in memory: a snapshot once half of it was applied "
          "since the last, at most the other half kept after one");
ABSL_FLAG(std::string, raft_tls_ca_file, "",
          "replication: the CA of the replicas' certificates; set, peers talk mutual TLS");
// Live settings.
ABSL_FLAG(uint32_t, max_key_bytes, 4096, "largest key");
ABSL_FLAG(uint32_t, max_value_bytes, 1u << 20, "largest value");
ABSL_FLAG(uint64_t, max_keys, 10'000'000, "most keys stored");
ABSL_FLAG(uint64_t, max_bytes, 4ull << 30, "most bytes stored (keys + values)");
ABSL_FLAG(uint32_t, max_in_flight, 10'000, "most unary KV calls in flight");
ABSL_FLAG(uint32_t, max_watchers, 10'000, "most watch streams");
ABSL_FLAG(uint32_t, max_streams, 10'000,
          "most streams open (Watch, Pipeline, WatchConfig, health Watch)");
ABSL_FLAG(uint32_t, max_control_calls, 256,
          "most Status, GetConfig and health Check calls in flight");
ABSL_FLAG(int64_t, default_ttl_ms, 0, "TTL of puts that name none (0: none)");
ABSL_FLAG(bool, read_only, false, "refuse writes (reads go on; readiness stays SERVING)");
ABSL_FLAG(uint32_t, range_page_max_items, 1000, "most entries in a Range page");
ABSL_FLAG(uint32_t, max_batch_ops, 1000, "most operations in one Batch");
ABSL_FLAG(uint32_t, max_txn_ops, 128, "most operations in one branch of a Txn");
ABSL_FLAG(uint32_t, max_pipeline_depth, 16, "most requests read ahead on one Pipeline stream");
ABSL_FLAG(uint32_t, max_pipeline_bytes, 1u << 20, "most reply bytes queued on one Pipeline stream");
ABSL_FLAG(uint32_t, range_page_max_bytes, 1u << 20, "most bytes in a Range page");
ABSL_FLAG(uint32_t, progress_interval_ms, 0, "default watch progress interval (0: none)");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warn or error");

namespace {

// Flags named on the command line (Debian's abseil keeps IsSpecifiedOnCommandLine private).
std::set<std::string> g_given;

void note_given_flags(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--") break;
    if (a.substr(0, 1) != "-") continue;
    a.remove_prefix(a.substr(0, 2) == "--" ? 2 : 1);  // abseil takes -name as --name
    a = a.substr(0, a.find('='));
    g_given.emplace(a);
    if (a.substr(0, 2) == "no") g_given.emplace(a.substr(2));  // --noread_only
  }
}

bool given(const char* name) { return g_given.count(name) > 0; }

// Only the flags given on the command line override the file.
shoal::v1::ServerConfig flag_overlay() {
  shoal::v1::ServerConfig c;
  auto* s = c.mutable_startup();
  auto* l = c.mutable_live();
#define SHOAL_OVERLAY(msg, name) \
  if (given(#name)) msg->set_##name(absl::GetFlag(FLAGS_##name))
  SHOAL_OVERLAY(s, listen);
  SHOAL_OVERLAY(s, workers);
  SHOAL_OVERLAY(s, runtime);
  SHOAL_OVERLAY(s, shards);
  SHOAL_OVERLAY(s, max_message_bytes);
  SHOAL_OVERLAY(s, history_max_events);
  SHOAL_OVERLAY(s, history_max_bytes);
  SHOAL_OVERLAY(s, shutdown_grace_seconds);
  SHOAL_OVERLAY(s, metrics_listen);
  SHOAL_OVERLAY(s, data_dir);
  SHOAL_OVERLAY(s, wal_segment_bytes);
  SHOAL_OVERLAY(s, snapshot_log_bytes);
  SHOAL_OVERLAY(s, wal_truncate_damaged);
  SHOAL_OVERLAY(s, tls_cert_file);
  SHOAL_OVERLAY(s, tls_key_file);
  SHOAL_OVERLAY(s, tls_client_ca_file);
  SHOAL_OVERLAY(s, tls_client_auth);
  SHOAL_OVERLAY(s, tls_refresh_seconds);
  SHOAL_OVERLAY(s, probe_listen);
  SHOAL_OVERLAY(s, raft_id);
  SHOAL_OVERLAY(s, raft_members);
  SHOAL_OVERLAY(s, raft_bootstrap);
  SHOAL_OVERLAY(s, raft_listen);
  SHOAL_OVERLAY(s, raft_election_ms);
  SHOAL_OVERLAY(s, raft_heartbeat_ms);
  SHOAL_OVERLAY(s, raft_tls_cert_file);
  SHOAL_OVERLAY(s, raft_tls_key_file);
  SHOAL_OVERLAY(s, raft_tls_ca_file);
  SHOAL_OVERLAY(s, raft_snapshot_entries);
  SHOAL_OVERLAY(s, raft_snapshot_trailing);
  SHOAL_OVERLAY(s, raft_log_max_bytes);
  SHOAL_OVERLAY(l, max_key_bytes);
  SHOAL_OVERLAY(l, max_value_bytes);
  SHOAL_OVERLAY(l, max_keys);
  SHOAL_OVERLAY(l, max_bytes);
  SHOAL_OVERLAY(l, max_in_flight);
  SHOAL_OVERLAY(l, max_watchers);
  SHOAL_OVERLAY(l, max_streams);
  SHOAL_OVERLAY(l, max_control_calls);
  SHOAL_OVERLAY(l, default_ttl_ms);
  SHOAL_OVERLAY(l, read_only);
  SHOAL_OVERLAY(l, range_page_max_items);
  SHOAL_OVERLAY(l, max_batch_ops);
  SHOAL_OVERLAY(l, max_txn_ops);
  SHOAL_OVERLAY(l, max_pipeline_depth);
  SHOAL_OVERLAY(l, max_pipeline_bytes);
  SHOAL_OVERLAY(l, range_page_max_bytes);
  SHOAL_OVERLAY(l, progress_interval_ms);
  SHOAL_OVERLAY(l, log_level);
  SHOAL_OVERLAY(l, fsync);
  SHOAL_OVERLAY(l, fsync_interval_ms);
#undef SHOAL_OVERLAY
  if (s->ByteSizeLong() == 0) c.clear_startup();
  if (l->ByteSizeLong() == 0) c.clear_live();
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Shoal's key-value server.\n"
      "  shoald [--listen=127.0.0.1:50051] [--config=/etc/shoal/config.json] [--<setting>=...]\n"
      "Settings: defaults < config file < flags. See proto/shoal/v1/admin.proto.");
  // --help lists the flags of this file (abseil's default looks for a file named after the binary).
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "service/main.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  usage.version_string = [] { return shoal::service::build_info::describe() + "\n"; };
  absl::SetFlagsUsageConfig(usage);
  note_given_flags(argc, argv);
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a.find("flagfile") != std::string_view::npos ||
        a.find("fromenv") != std::string_view::npos) {
      std::fprintf(stderr, "shoald: %s is not supported: put settings in --config instead\n",
                   argv[i]);
      return 2;
    }
  }
  absl::ParseCommandLine(argc, argv);

  // Block the stop signals in every thread (gRPC's and the runtime's included); main waits for
  // them and drains from here, a thread that is not a worker.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  auto server = shoal::service::server::create(
      {.flags = flag_overlay(), .config_path = absl::GetFlag(FLAGS_config)});
  if (!server.ok()) {
    std::fprintf(stderr, "shoald: %s\n", std::string(server.status().message()).c_str());
    return 2;
  }
  std::printf("shoald listening on %s\n", (*server)->address().c_str());
  if (!(*server)->metrics_address().empty()) {
    std::printf("shoald metrics on %s\n", (*server)->metrics_address().c_str());
  }
  if (!(*server)->probe_address().empty()) {
    std::printf("shoald probes on %s\n", (*server)->probe_address().c_str());
  }
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop, &sig);
  SHOAL_LOG(info, "signal received", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  (*server)->shutdown();
  server->reset();
  return 0;
}
