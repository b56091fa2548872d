#include "service/wal/data_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "service/wal/crc32c.h"

namespace shoal::service::wal {
namespace {

constexpr char k_meta_name[] = "meta";

// Debian's abseil has a string_view of its own.
absl::string_view av(std::string_view s) { return {s.data(), s.size()}; }
constexpr char k_meta_magic[] = "shoal-data 1";

std::string encode_meta(const data_dir::meta& m) {
  std::string body =
      absl::StrCat(k_meta_magic, "\nstore_id=", m.store_id, "\nclean=", m.clean ? 1 : 0,
                   "\nloose=", m.loose ? 1 : 0, "\nrevision=", m.revision, "\n");
  return absl::StrCat(body, absl::StrFormat("crc=%08x\n", crc32c::of(body)));
}

bool decode_meta(std::string_view text, data_dir::meta* out) {
  const std::size_t crc_at = text.rfind("crc=");
  if (crc_at == std::string_view::npos) return false;
  uint32_t crc = 0;
  std::string_view crc_text = text.substr(crc_at + 4);
  if (!crc_text.empty() && crc_text.back() == '\n') crc_text.remove_suffix(1);
  if (!absl::SimpleHexAtoi(av(crc_text), &crc) || crc != crc32c::of(text.substr(0, crc_at))) {
    return false;
  }
  const std::vector<absl::string_view> lines = absl::StrSplit(av(text.substr(0, crc_at)), '\n');
  if (lines.empty() || lines[0] != k_meta_magic) return false;
  for (absl::string_view line : lines) {
    if (line.substr(0, 9) == "store_id=") out->store_id = std::string(line.substr(9));
    if (line == "clean=1") out->clean = true;
    if (line == "loose=1") out->loose = true;
    if (line.substr(0, 9) == "revision=" && !absl::SimpleAtoi(line.substr(9), &out->revision)) {
      return false;
    }
  }
  return !out->store_id.empty();
}

}  // namespace

absl::StatusOr<std::unique_ptr<data_dir>> data_dir::open(file_system& fs, const std::string& path) {
  if (auto st = fs.make_dir(path); !st.ok()) return st;
  const std::string lock_path = path + "/LOCK";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open ", lock_path, ": ", std::strerror(errno)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = {};
    const ssize_t n = ::pread(fd, pid, sizeof(pid) - 1, 0);
    ::close(fd);
    std::string holder;
    int64_t p = 0;
    if (n > 0 &&
        absl::SimpleAtoi(
            absl::StripAsciiWhitespace(absl::string_view(pid, static_cast<std::size_t>(n))), &p)) {
      holder = absl::StrCat(" (pid ", p, ")");
    }
    return absl::FailedPreconditionError(absl::StrCat("the data directory ", path,
                                                      " is in use by another shoald", holder,
                                                      "; each shoald needs its own --data_dir"));
  }
  const std::string pid = absl::StrCat(::getpid(), "\n");
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // The pid is only a courtesy to whoever finds the directory locked.
  }
  std::unique_ptr<data_dir> d(new data_dir(fs, path, fd));
  if (auto st = fs.make_dir(d->wal_dir()); !st.ok()) return st;
  if (auto st = fs.sync_dir(path); !st.ok()) return st;
  std::string text;
  const absl::Status read = fs.read_file(absl::StrCat(path, "/", k_meta_name), &text);
  if (read.ok()) {
    meta m;
    if (!decode_meta(text, &m)) {
      return absl::DataLossError(absl::StrCat(
          path,
          "/meta is damaged (its checksum or format is wrong); it is not a file shoald "
          "wrote, or the disk damaged it"));
    }
    d->previous_ = m;
  } else if (!absl::IsNotFound(read)) {
    return read;
  }
  return d;
}

data_dir::data_dir(file_system& fs, std::string path, int lock_fd)
    : fs_(fs), path_(std::move(path)), lock_fd_(lock_fd) {}

data_dir::~data_dir() { ::close(lock_fd_); }

absl::Status data_dir::write_meta(const meta& m) {
  return write_file_atomically(fs_, path_, k_meta_name, encode_meta(m));
}

}  // namespace shoal::service::wal
