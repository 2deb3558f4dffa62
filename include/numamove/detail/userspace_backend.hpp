// The userspace migrator: move_pages semantics where the kernel path is absent.
// Not implemented yet: every call fails with ENOSYS, leaving the caller's data as it was.
#pragma once

#include <cerrno>

namespace numamove::detail {

inline long userspace_move_pages(int pid, unsigned long count, void** pages, const int* nodes,
                                 int* status, int flags) noexcept {
  (void)pid, (void)count, (void)pages, (void)nodes, (void)status, (void)flags;
  errno = ENOSYS;
  return -1;
}

}  // namespace numamove::detail
