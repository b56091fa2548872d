// segment_fill: the Raft log's segments are made of written zeros, not of blocks merely reserved.
//
// What: libraft 0.15 makes each open segment of the log (8 MiB, a few ahead of use, on libuv's
// thread pool) with posix_fallocate. On ext4 and XFS that reserves blocks marked "unwritten",
// and every append that later lands in them (O_DIRECT, synchronous) must also mark its blocks
// written: a change of the file's extents that the journal commits before the append returns.
// Zeros written over the whole segment when it is made take that change off every append, at
// the price of writing each segment twice (once in the background, while no write waits on it).
// On this project's VMs a synchronous 4 KiB append took ~100 µs into written blocks against
// ~160 µs into reserved ones, and three replicas took ~1.1x the Puts (docs/benchmarks.md).
//
// How: this file defines posix_fallocate. The dynamic linker binds every shared library's call
// to an executable's own definition before the C library's, so libraft's segments come here.
// In shoald only libraft calls it (`nm -D --undefined-only` over what `ldd` lists), and the
// definition does what the C library's does — the range is allocated and reads as zeros; a
// file system that cannot reserve space gets the zeros alone. CMake compiles this file into
// every executable that links shoal_service (an INTERFACE source: an object in a static
// library would be left out, since no code of ours names the function).
//
// When it matters: any file system that tracks unwritten extents (ext4, XFS). On tmpfs and
// others the zeros cost a little and change nothing.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace {

// The zeros written, aligned for a descriptor opened with O_DIRECT (libraft's is not yet).
alignas(4096) const char k_zeros[256 * 1024] = {};

// Writes zeros over [offset, offset + len); 0 or the errno of the write that failed.
int write_zeros(int fd, off_t offset, off_t len) {
  const off_t end = offset + len;
  for (off_t at = offset; at < end;) {
    const auto n = static_cast<size_t>(std::min<off_t>(sizeof k_zeros, end - at));
    const ssize_t wrote = ::pwrite(fd, k_zeros, n, at);
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) return wrote < 0 ? errno : EIO;
    at += wrote;
  }
  return ::fdatasync(fd) == 0 ? 0 : errno;
}

}  // namespace

// The C library's contract: 0, or an error number; bytes already in the file are kept.
extern "C" int posix_fallocate(int fd, off_t offset, off_t len) {
  if (offset < 0 || len <= 0) return EINVAL;
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errno;
  const int saved_errno = errno;
  // Reserved first, as before: no space is found out here, and the blocks lie together.
  const bool reserved = ::fallocate(fd, 0, offset, len) == 0;
  if (!reserved && errno != EOPNOTSUPP) return errno;
  // Zeros past the file's end only (libraft's segments are new: all of it).
  const off_t from = std::max<off_t>(offset, st.st_size);
  const int zeroed = from < offset + len ? write_zeros(fd, from, offset + len - from) : 0;
  errno = saved_errno;
  // Reserved blocks already read as zeros: a failed overwrite leaves them as libraft expects.
  return reserved ? 0 : zeroed;
}
