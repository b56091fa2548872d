// data_dir: a durable shoald's directory — its lock, its identity, and where its log lives.
//
//   <dir>/LOCK   held (flock) while a shoald uses the directory; holds that shoald's pid
//   <dir>/meta   the store id, and whether the last run stopped cleanly (written atomically)
//   <dir>/wal/   the log's segments (replay.h)
//
//   auto d = wal::data_dir::open(fs, "/var/lib/shoal");   // FAILED_PRECONDITION if in use
//   if ((*d)->previous()) reuse((*d)->previous()->store_id);
//   (*d)->write_meta({.store_id = id, .clean = false, .loose = false});
//
// The lock is an advisory flock on LOCK: the kernel drops it when the process dies, however it
// dies, so a crash never leaves the directory locked.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "service/wal/file_system.h"

namespace shoal::service::wal {

class data_dir {
 public:
  struct meta {
    std::string store_id;
    // The run stopped cleanly: everything it acknowledged is in the log.
    bool clean = false;
    // The run acknowledged writes before they were synced (a sync policy other than `always`): if
    // it did not stop cleanly, some of them may be lost.
    bool loose = false;
    // The store's revision when this was written: a start whose log ends before it is missing
    // files (a new store id, and a warning).
    uint64_t revision = 0;
  };

  static absl::StatusOr<std::unique_ptr<data_dir>> open(file_system& fs, const std::string& path);
  ~data_dir();
  data_dir(const data_dir&) = delete;
  data_dir& operator=(const data_dir&) = delete;

  // What the last run left (none for a new directory).
  const std::optional<meta>& previous() const { return previous_; }
  absl::Status write_meta(const meta& m);

  const std::string& path() const { return path_; }
  std::string wal_dir() const { return path_ + "/wal"; }

 private:
  data_dir(file_system& fs, std::string path, int lock_fd);
  file_system& fs_;
  std::string path_;
  int lock_fd_;
  std::optional<meta> previous_;
};

}  // namespace shoal::service::wal
