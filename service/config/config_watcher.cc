#include "service/config/config_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "service/log.h"
#include "service/metrics/metrics.h"

namespace shoal::service::config {
namespace {

std::string directory_of(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

config_watcher::config_watcher(std::string path, v1::ServerConfig flags,
                               rt::watch::sender<snapshot_ptr>* tx, std::atomic<bool>* auth_on)
    : path_(std::move(path)),
      dir_(directory_of(path_)),
      flags_(std::move(flags)),
      tx_(tx),
      auth_on_(auth_on) {}

config_watcher::~config_watcher() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    (void)!::write(stop_fd_, &one, sizeof one);
    thread_.join();
  }
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

absl::Status config_watcher::start() {
  inotify_fd_ = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (inotify_fd_ < 0 || stop_fd_ < 0) {
    return absl::InternalError(absl::StrCat("inotify: ", std::strerror(errno)));
  }
  // Creations, writes, renames and deletions in the directory: covers editors that write in place,
  // editors that rename a temporary over the file, and the ConfigMap symlink swap.
  const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MODIFY;
  if (::inotify_add_watch(inotify_fd_, dir_.c_str(), mask) < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot watch ", dir_, " for config changes: ", std::strerror(errno)));
  }
  thread_ = std::thread([this] { run(); });
  return absl::OkStatus();
}

void config_watcher::run() {
  pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  char buf[4096];
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      SHOAL_LOG(error, "config watch stopped", {{"error", std::strerror(errno)}});
      return;
    }
    if (fds[1].revents & POLLIN) return;
    // Drain the burst of events one change produces, then reload once.
    for (;;) {
      while (::read(inotify_fd_, buf, sizeof buf) > 0) {
      }
      pollfd quiet = {inotify_fd_, POLLIN, 0};
      if (::poll(&quiet, 1, 50) <= 0) break;
    }
    reload();
  }
}

void config_watcher::reload() {
  const snapshot_ptr running = *tx_->borrow();
  auto file = load_file(path_);
  absl::Status problem = file.status();
  v1::ServerConfig next;
  std::string restart_needed;
  if (problem.ok()) {
    const v1::ServerConfig base = defaults();
    next = merge({&base, &*file, &flags_});
    // Start-up settings apply at the next restart: the live ones are checked against those the
    // server runs with, not the file's.
    restart_needed = startup_differences(running->config, next);
    *next.mutable_startup() = running->config.startup();
    problem = validate(next);
  }
  if (!problem.ok()) {
    if (running->last_error == problem.message()) return;
    metrics::count(metrics::event::config_reload_failed);
    SHOAL_LOG(error, "config reload failed; keeping the running configuration",
              {{"path", path_}, {"error", std::string(problem.message())}});
    auto s = std::make_shared<snapshot>(*running);
    s->last_error = std::string(problem.message());
    tx_->send_replace(std::move(s));
    return;
  }
  if (!restart_needed.empty()) {
    SHOAL_LOG(warn, "config file changes start-up settings; they apply at the next restart",
              {{"fields", restart_needed}});
  }
  if (google::protobuf::util::MessageDifferencer::Equals(next, running->config) &&
      running->last_error.empty()) {
    return;
  }
  auto s = std::make_shared<snapshot>();
  s->config = std::move(next);
  s->version = running->version + 1;
  s->source = running->source;
  s->last_error.clear();
  if (absl::Status sealed = seal(*s); !sealed.ok()) {  // validate() builds the same rules
    SHOAL_LOG(error, "config reload failed; keeping the running configuration",
              {{"path", path_}, {"error", std::string(sealed.message())}});
    return;
  }
  log::level lvl;
  if (log::parse_level(s->live().log_level(), &lvl)) log::set_level(lvl);
  metrics::count(metrics::event::config_reloaded);
  SHOAL_LOG(info, "config reloaded", {{"path", path_}, {"version", s->version}});
  const bool auth_on = s->auth_on();
  if (auth_on_ != nullptr && auth_on) auth_on_->store(true);  // before: checks start now
  tx_->send_replace(std::move(s));
  if (auth_on_ != nullptr && !auth_on) auth_on_->store(false);  // after: no call is left unchecked
}

}  // namespace shoal::service::config
