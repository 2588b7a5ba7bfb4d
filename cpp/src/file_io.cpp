// File-system helpers for curata's writers: preallocation, early writeback (see curata/file_io.hpp).
#include "curata/file_io.hpp"

#include <cerrno>

#if defined(__linux__)
#include <fcntl.h>
#endif

namespace curata {
namespace fileio {

int preallocate(int fd, int64_t size) {
  if (size <= 0) return 0;
#if defined(__linux__)
  // Not posix_fallocate: glibc emulates it by writing a byte into every block where the file
  // system lacks fallocate, which costs about as much as the write it is meant to speed up.
  int r;
  do {
    r = ::fallocate(fd, 0, 0, static_cast<off_t>(size));
  } while (r != 0 && errno == EINTR);
  if (r == 0) return 0;
  const int e = errno;
  if (e == ENOSPC || e == EDQUOT || e == EFBIG || e == EIO) return e;
  return -1;  // EOPNOTSUPP, ENOSYS, EINVAL, ...: write without preallocating
#else
  (void)fd;
  return -1;
#endif
}

int start_writeback(int fd, int64_t offset, int64_t size) {
  if (size <= 0) return 0;
#if defined(__linux__)
  return ::sync_file_range(fd, static_cast<off_t>(offset), static_cast<off_t>(size), SYNC_FILE_RANGE_WRITE) == 0 ? 0
                                                                                                           : -1;
#else
  (void)fd;
  (void)offset;
  return -1;
#endif
}

}  // namespace fileio
}  // namespace curata
