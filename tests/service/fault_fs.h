// fault_fs: a file system that forgets, at a crash point, what a power loss would take back.
//
// It runs on real files (through posix_file_system) and remembers, per file, how many bytes were
// synced, and which directory entries (files created, renamed or removed) were made durable by a
// sync of their directory. power_loss() then truncates every file to its synced size, deletes
// files whose creation was never synced into their directory, and puts back what an unsynced
// rename replaced — the model of LevelDB's fault-injection environment, applied to Shoal's seam.
//
//   fault_fs fs(dir);
//   ... a journal writes through fs ...
//   fs.power_loss();      // nothing may use the files after this but a fresh start
//
// A file's data counts as synced only through its own append_file::sync(). fail_after(n) makes
// every change after the first n fail (the crash point of a multi-step update).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "service/wal/file_system.h"

namespace shoal::testing {

class fault_fs final : public service::wal::file_system {
 public:
  using status = absl::Status;
  template <class T>
  using status_or = absl::StatusOr<T>;

  void fail_after(int n) { budget_ = n; }

  status_or<std::unique_ptr<service::wal::append_file>> open_append(
      const std::string& path) override {
    if (auto st = spend(); !st.ok()) return st;
    const bool existed = real().file_size(path).ok();
    auto f = real().open_append(path);
    if (!f.ok()) return f.status();
    std::lock_guard lock(mu_);
    file_state& s = files_[path];
    if (!s.known) {
      // A file that existed before this file system first saw it counts as durable, as it was.
      s.known = true;
      s.synced_size = (*f)->size();
      s.durable_entry = existed;
    }
    return std::unique_ptr<service::wal::append_file>(new tracked(this, path, std::move(*f)));
  }
  status read_file(const std::string& path, std::string* out) override {
    return real().read_file(path, out);
  }
  status_or<uint64_t> file_size(const std::string& path) override { return real().file_size(path); }
  status_or<std::vector<std::string>> list(const std::string& dir) override {
    return real().list(dir);
  }
  status make_dir(const std::string& path) override { return real().make_dir(path); }
  status rename(const std::string& from, const std::string& to) override {
    if (auto st = spend(); !st.ok()) return st;
    std::string replaced;
    const bool had_target = real().read_file(to, &replaced).ok();
    if (auto st = real().rename(from, to); !st.ok()) return st;
    std::lock_guard lock(mu_);
    file_state moved = files_[from];
    files_.erase(from);
    // Until the directory is synced, a power loss brings the old target back.
    pending_renames_.push_back(
        {to, had_target ? std::optional<std::string>(replaced) : std::nullopt});
    moved.durable_entry = false;
    moved.known = true;
    files_[to] = moved;
    return absl::OkStatus();
  }
  status remove(const std::string& path) override {
    if (auto st = spend(); !st.ok()) return st;
    std::lock_guard lock(mu_);
    files_.erase(path);
    return real().remove(path);
  }
  status truncate(const std::string& path, uint64_t size) override {
    if (auto st = spend(); !st.ok()) return st;
    if (auto st = real().truncate(path, size); !st.ok()) return st;
    std::lock_guard lock(mu_);
    auto it = files_.find(path);
    if (it != files_.end() && it->second.synced_size > size) it->second.synced_size = size;
    return absl::OkStatus();
  }
  status sync_dir(const std::string& dir) override {
    if (auto st = spend(); !st.ok()) return st;
    if (auto st = real().sync_dir(dir); !st.ok()) return st;
    std::lock_guard lock(mu_);
    for (auto& [path, s] : files_) {
      if (parent(path) == dir) s.durable_entry = true;
    }
    std::vector<rename_undo> keep;
    for (auto& r : pending_renames_) {
      if (parent(r.path) != dir) keep.push_back(r);
    }
    pending_renames_ = std::move(keep);
    return absl::OkStatus();
  }

  // The crash: every file back to what a sync made durable.
  void power_loss() {
    std::lock_guard lock(mu_);
    for (auto& [path, s] : files_) {
      if (!s.durable_entry) {
        (void)real().remove(path);
        continue;
      }
      (void)real().truncate(path, s.synced_size);
    }
    for (auto it = pending_renames_.rbegin(); it != pending_renames_.rend(); ++it) {
      if (it->previous) {
        (void)real().remove(it->path);
        auto f = real().open_append(it->path);
        if (f.ok()) (void)(*f)->append(*it->previous);
      }
    }
    files_.clear();
    pending_renames_.clear();
  }

 private:
  struct file_state {
    bool known = false;
    uint64_t synced_size = 0;
    bool durable_entry = false;
  };
  struct rename_undo {
    std::string path;
    std::optional<std::string> previous;
  };
  class tracked final : public service::wal::append_file {
   public:
    tracked(fault_fs* fs, std::string path, std::unique_ptr<service::wal::append_file> f)
        : fs_(fs), path_(std::move(path)), f_(std::move(f)) {}
    status append(std::string_view data) override {
      if (auto st = fs_->spend(); !st.ok()) return st;
      return f_->append(data);
    }
    status sync() override {
      if (auto st = fs_->spend(); !st.ok()) return st;
      if (auto st = f_->sync(); !st.ok()) return st;
      std::lock_guard lock(fs_->mu_);
      fs_->files_[path_].synced_size = f_->size();
      return absl::OkStatus();
    }
    uint64_t size() const override { return f_->size(); }

   private:
    fault_fs* fs_;
    std::string path_;
    std::unique_ptr<service::wal::append_file> f_;
  };

  status spend() {
    std::lock_guard lock(mu_);
    if (budget_ < 0) return absl::OkStatus();
    if (budget_ == 0) return absl::UnavailableError("fault_fs: the power is out");
    --budget_;
    return absl::OkStatus();
  }

  static service::wal::file_system& real() { return service::wal::posix_file_system(); }
  static std::string parent(const std::string& path) { return path.substr(0, path.rfind('/')); }

  std::mutex mu_;
  std::map<std::string, file_state> files_;
  std::vector<rename_undo> pending_renames_;
  int budget_ = -1;  // changes left before the crash; -1: no crash
};

}  // namespace shoal::testing
