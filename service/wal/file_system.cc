#include "service/wal/file_system.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace shoal::service::wal {
namespace {

absl::Status os_error(const char* what, const std::string& path, int err) {
  std::string msg = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  if (err == ENOSPC || err == EDQUOT) return absl::ResourceExhaustedError(msg);
  if (err == ENOENT) return absl::NotFoundError(msg);
  if (err == EACCES || err == EPERM || err == EROFS) return absl::PermissionDeniedError(msg);
  return absl::InternalError(msg);
}

class posix_append_file final : public append_file {
 public:
  posix_append_file(int fd, std::string path, uint64_t size)
      : fd_(fd), path_(std::move(path)), size_(size) {}
  ~posix_append_file() override { ::close(fd_); }

  absl::Status append(std::string_view data) override {
    while (!data.empty()) {
      const ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return os_error("cannot write", path_, errno);
      }
      data.remove_prefix(static_cast<std::size_t>(n));
      size_ += static_cast<uint64_t>(n);
    }
    return absl::OkStatus();
  }
  absl::Status sync() override {
    if (::fdatasync(fd_) != 0) return os_error("cannot sync", path_, errno);
    return absl::OkStatus();
  }
  uint64_t size() const override { return size_; }

 private:
  int fd_;
  std::string path_;
  uint64_t size_;
};

class posix final : public file_system {
 public:
  absl::StatusOr<std::unique_ptr<append_file>> open_append(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return os_error("cannot open", path, errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      return os_error("cannot stat", path, err);
    }
    return std::make_unique<posix_append_file>(fd, path, static_cast<uint64_t>(st.st_size));
  }

  absl::Status read_file(const std::string& path, std::string* out) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return os_error("cannot open", path, errno);
    out->clear();
    struct stat st {};
    if (::fstat(fd, &st) == 0) out->reserve(static_cast<std::size_t>(st.st_size));
    char buf[1 << 16];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int err = errno;
        ::close(fd);
        return os_error("cannot read", path, err);
      }
      if (n == 0) break;
      out->append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> file_size(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return os_error("cannot stat", path, errno);
    return static_cast<uint64_t>(st.st_size);
  }

  absl::StatusOr<std::vector<std::string>> list(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return os_error("cannot list", dir, errno);
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      bool regular = e->d_type == DT_REG;
      if (e->d_type == DT_UNKNOWN) {  // file systems that do not fill the type in (XFS v4, NFS...)
        struct stat st {};
        regular =
            ::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
      }
      if (regular) names.emplace_back(e->d_name);
    }
    ::closedir(d);
    return names;
  }

  absl::Status make_dir(const std::string& path) override {
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return os_error("cannot create", path, errno);
    }
    return absl::OkStatus();
  }
  absl::Status rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return os_error("cannot rename", from, errno);
    return absl::OkStatus();
  }
  absl::Status remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return os_error("cannot remove", path, errno);
    }
    return absl::OkStatus();
  }
  absl::Status truncate(const std::string& path, uint64_t size) override {
    if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0) {
      return os_error("cannot truncate", path, errno);
    }
    return absl::OkStatus();
  }
  absl::Status sync_dir(const std::string& dir) override {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return os_error("cannot open", dir, errno);
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0) return os_error("cannot sync", dir, err);
    return absl::OkStatus();
  }
};

}  // namespace

file_system& posix_file_system() {
  static posix fs;
  return fs;
}

absl::Status write_file_atomically(file_system& fs, const std::string& dir, const std::string& name,
                                   std::string_view data) {
  // A name of this process's own: two writers of one file never share a temporary file.
  const std::string tmp = absl::StrCat(dir, "/.", name, ".tmp.", ::getpid());
  (void)fs.remove(tmp);
  absl::Status st = [&] {
    auto f = fs.open_append(tmp);
    if (!f.ok()) return f.status();
    // A large file (a snapshot) is synced as it goes, a few MiB at a time: written in one go and
    // synced at the end, its dirty pages would be flushed with the log's next sync (ext4 commits
    // them together), and that sync, which replies wait for, would take as long as all of them.
    constexpr std::size_t k_chunk = 4 << 20;
    for (std::size_t at = 0; at < data.size() || at == 0; at += k_chunk) {
      if (auto s = (*f)->append(data.substr(at, k_chunk)); !s.ok()) return s;
      if (auto s = (*f)->sync(); !s.ok()) return s;
      if (at + k_chunk >= data.size()) break;
    }
    return absl::OkStatus();
  }();
  if (st.ok()) st = fs.rename(tmp, absl::StrCat(dir, "/", name));
  if (!st.ok()) {
    (void)fs.remove(tmp);  // no half-written file left behind (a full disk stays full otherwise)
    return st;
  }
  return fs.sync_dir(dir);
}

}  // namespace shoal::service::wal
