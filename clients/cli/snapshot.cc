#include "clients/cli/snapshot.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "service/wal/file_system.h"
#include "service/wal/snapshot.h"

namespace shoal::cli {
namespace {

namespace wal = service::wal;

absl::StatusOr<snapshot_summary> check(std::string_view bytes, const std::string& name) {
  auto info = wal::decode_snapshot(
      bytes, name, [](std::string_view, const wal::snap_entry&) { return absl::OkStatus(); });
  if (!info.ok()) return info.status();
  return snapshot_summary{info->revision, info->keys, info->bytes, info->file_bytes,
                          info->checksum};
}

std::string dir_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

absl::StatusOr<snapshot_summary> save_snapshot(
    v1::Admin::Stub& admin, std::chrono::milliseconds deadline, const std::string& path,
    const std::function<void(uint64_t, uint64_t)>& progress) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + deadline);
  auto stream = admin.Snapshot(&ctx, v1::SnapshotRequest());
  std::string bytes;
  uint64_t total = 0;
  v1::SnapshotChunk chunk;
  bool first = true;
  while (stream->Read(&chunk)) {
    if (first) {
      total = chunk.total_bytes();
      bytes.reserve(std::min<uint64_t>(total, 64u << 20));  // the server's word, within reason
      first = false;
    }
    bytes += chunk.data();
    if (progress) progress(bytes.size(), total);
  }
  const grpc::Status st = stream->Finish();
  if (!st.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(st.error_code()), st.error_message());
  }
  if (bytes.size() != total) {
    return absl::DataLossError(absl::StrCat("the server sent ", bytes.size(), " bytes of ", total));
  }
  auto summary = check(bytes, "(received)");
  if (!summary.ok()) return summary.status();
  if (auto w =
          wal::write_file_atomically(wal::posix_file_system(), dir_of(path), base_of(path), bytes);
      !w.ok()) {
    return w;
  }
  return summary;
}

absl::StatusOr<snapshot_summary> describe_snapshot(const std::string& path) {
  std::string bytes;
  if (auto st = wal::posix_file_system().read_file(path, &bytes); !st.ok()) return st;
  return check(bytes, path);
}

absl::StatusOr<snapshot_summary> restore_snapshot(const std::string& path,
                                                  const std::string& data_dir) {
  std::error_code ec;
  if (std::filesystem::exists(data_dir, ec) && !std::filesystem::is_empty(data_dir, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat(data_dir, " is not empty: restore into a new data directory"));
  }
  std::string bytes;
  if (auto st = wal::posix_file_system().read_file(path, &bytes); !st.ok()) return st;
  auto summary = check(bytes, path);
  if (!summary.ok()) return summary.status();
  wal::file_system& fs = wal::posix_file_system();
  const std::string wal_dir = data_dir + "/wal";
  std::filesystem::create_directories(wal_dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(absl::StrCat("cannot create ", wal_dir, ": ", ec.message()));
  }
  if (auto st =
          wal::write_file_atomically(fs, wal_dir, wal::snapshot_name(summary->revision), bytes);
      !st.ok()) {
    return st;
  }
  if (auto st = fs.sync_dir(data_dir); !st.ok()) return st;
  return summary;
}

}  // namespace shoal::cli
