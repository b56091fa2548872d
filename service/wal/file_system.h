// file_system: the log's view of files, and the seam where tests cut the power.
//
// Everything the log and the data directory do to disk goes through this interface: appending,
// syncing, renaming, syncing a directory. posix_file_system() is the real one. Tests substitute
// one that, at a crash point, forgets what was never synced (tests/service/fault_fs.h: unsynced
// bytes, unsynced directory entries and renames), as a power loss would.
//
//   wal::file_system& fs = wal::posix_file_system();
//   auto f = fs.open_append("/data/wal/seg");          // created if missing
//   (*f)->append("bytes");
//   (*f)->sync();                                      // fdatasync: the bytes survive a crash
//   fs.sync_dir("/data/wal");                          // ... and so does the file's name
//
// Every call blocks: callers run them on the runtime's blocking pool (spawn_blocking) or before
// the runtime serves anything. Errors name the path and the system's reason, never file contents.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shoal::service::wal {

class append_file {
 public:
  virtual ~append_file() = default;
  virtual absl::Status append(std::string_view data) = 0;
  // The data appended so far is on disk (fdatasync).
  virtual absl::Status sync() = 0;
  virtual uint64_t size() const = 0;
};

class file_system {
 public:
  virtual ~file_system() = default;
  virtual absl::StatusOr<std::unique_ptr<append_file>> open_append(const std::string& path) = 0;
  virtual absl::Status read_file(const std::string& path, std::string* out) = 0;
  virtual absl::StatusOr<uint64_t> file_size(const std::string& path) = 0;
  // The names of the regular files in dir (not sorted).
  virtual absl::StatusOr<std::vector<std::string>> list(const std::string& dir) = 0;
  virtual absl::Status make_dir(const std::string& path) = 0;  // no error if it exists
  virtual absl::Status rename(const std::string& from, const std::string& to) = 0;
  virtual absl::Status remove(const std::string& path) = 0;
  virtual absl::Status truncate(const std::string& path, uint64_t size) = 0;
  // The directory's entries (created, renamed, removed files) are on disk.
  virtual absl::Status sync_dir(const std::string& dir) = 0;
};

file_system& posix_file_system();

// Writes `data` to dir/name through a temporary file of this process's (.name.tmp.PID): synced,
// renamed over dir/name, directory synced. A crash leaves either the old file or the new one;
// a failure removes the temporary file. Files are created 0600, directories 0700: a store's data
// is its owner's.
absl::Status write_file_atomically(file_system& fs, const std::string& dir, const std::string& name,
                                   std::string_view data);

}  // namespace shoal::service::wal
