// config_watcher: reloads the config file when it changes and publishes the new configuration.
//
// Watches the file's directory with inotify, not the file: Kubernetes updates a mounted ConfigMap
// by swapping a `..data` symlink in the directory, which a watch on the file itself never sees.
// A file that fails to parse or validate keeps the running configuration; the error goes to the
// log and to Status (last_config_error). Start-up settings changed in the file are reported and
// ignored until a restart.
//
// Runs on its own thread: inotify is a blocking file descriptor and the runtime has no fd reactor.
// Publishing on the watch channel is thread-safe.
//
// `auth_on`, when given, is the flag calls read to skip the auth checks (context::auth_enabled):
// set before a configuration with auth on is published, cleared only after one with auth off is,
// so that no call admitted after a reload runs under rules older than it.
#pragma once

#include <atomic>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "runtime/sync/watch.h"
#include "service/config/config.h"

namespace shoal::service::config {

class config_watcher {
 public:
  config_watcher(std::string path, v1::ServerConfig flags, rt::watch::sender<snapshot_ptr>* tx,
                 std::atomic<bool>* auth_on = nullptr);
  ~config_watcher();
  config_watcher(const config_watcher&) = delete;
  config_watcher& operator=(const config_watcher&) = delete;

  absl::Status start();
  // Re-reads the file now (also what an inotify event triggers).
  void reload();

 private:
  void run();

  const std::string path_;
  const std::string dir_;
  const v1::ServerConfig flags_;
  rt::watch::sender<snapshot_ptr>* tx_;
  std::atomic<bool>* auth_on_;
  int inotify_fd_ = -1;
  int stop_fd_ = -1;
  std::thread thread_;
};

}  // namespace shoal::service::config
