// Small file-system helpers for curata's file writers (no Python).
#pragma once

#include <cstdint>

namespace curata {
namespace fileio {

// Reserves `size` bytes of disk for the open file `fd` and sets its size to at least `size`
// (Linux fallocate(2), mode 0), so the writes that follow need no block allocation per page.
// Returns 0 on success; -1 when the file system or platform cannot preallocate (never emulated
// by writing zeros, which would write the data twice); the errno value (> 0) of a failure the
// caller must report: ENOSPC, EDQUOT, EFBIG, EIO (the write would fail later anyway).
int preallocate(int fd, int64_t size);

// Asks the kernel to start writing the dirty pages of bytes [offset, offset + size) of `fd` to
// disk now, without waiting for them (Linux sync_file_range(SYNC_FILE_RANGE_WRITE)), so the disk
// works while the caller writes the rest and a later fsync has less left to wait for. It is only
// a hint: durability still needs fsync. Returns 0, or -1 where unsupported (other platforms,
// file systems that refuse it); never fails otherwise.
int start_writeback(int fd, int64_t offset, int64_t size);

}  // namespace fileio
}  // namespace curata
