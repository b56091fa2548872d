// snapshot: shoalctl's snapshot commands — a durable server's store saved to a file, a file
// described, and a file restored into a new data directory.
//
//   auto s = save_snapshot(admin, 10min, "backup.snap", [](uint64_t got, uint64_t total) {...});
//   auto d = describe_snapshot("backup.snap");        // revision, keys, checksum
//   auto r = restore_snapshot("backup.snap", "/var/lib/shoal-new");
//   // then: shoald --data_dir=/var/lib/shoal-new  (a new store id: a restore is a new store)
//
// The file is Shoal's snapshot format (service/wal/snapshot.h): save checks it whole before it
// takes the file's name, so a file by that name is always a complete snapshot.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "shoal/v1/admin.grpc.pb.h"

namespace shoal::cli {

struct snapshot_summary {
  uint64_t revision = 0;
  uint64_t keys = 0;
  uint64_t bytes = 0;  // keys and values
  uint64_t file_bytes = 0;
  uint32_t checksum = 0;  // crc32c of the file before its footer
};

absl::StatusOr<snapshot_summary> save_snapshot(
    v1::Admin::Stub& admin, std::chrono::milliseconds deadline, const std::string& path,
    const std::function<void(uint64_t received, uint64_t total)>& progress);
absl::StatusOr<snapshot_summary> describe_snapshot(const std::string& path);
// data_dir must not exist, or be empty.
absl::StatusOr<snapshot_summary> restore_snapshot(const std::string& path,
                                                  const std::string& data_dir);

}  // namespace shoal::cli
