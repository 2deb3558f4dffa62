// Call-level checks of move_pages(2), in the kernel's order, for the paths that do not reach the
// kernel's own checks (the userspace migrator, and moves that find nothing left to move). Part
// of the move_pages contract, shared by the engine and the userspace backend.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/call_checks.hpp is internal: include a public numamove header"
#endif

#include <algorithm>
#include <cerrno>

#include "../flags.hpp"
#include "../topology.hpp"
#include "linux/proc.hpp"
#include "linux/syscalls.hpp"

namespace numamove::detail {

/// EINVAL for flags other than MPOL_MF_MOVE | MPOL_MF_MOVE_ALL, then EPERM for MPOL_MF_MOVE_ALL
/// without CAP_SYS_NICE; 0 when the flags are acceptable.
inline int check_flags(int flags) {
  if ((flags & ~(MPOL_MF_MOVE | MPOL_MF_MOVE_ALL)) != 0) return EINVAL;
  if ((flags & MPOL_MF_MOVE_ALL) != 0 && !has_cap_sys_nice()) return EPERM;
  return 0;
}

/// ENODEV for a node that does not exist or has no memory, EACCES for one outside the calling
/// thread's cpuset; 0 when pages may be moved there.
inline int check_target_node(int node) {
  if (node < 0 || !topology::system().has_node(node)) return ENODEV;
  // The cpuset's nodes from get_mempolicy, a system call, where it is allowed: reading
  // /proc/thread-self/status takes ~30 us, more than allocating and filling 64 KiB.
  constexpr int bits = static_cast<int>(8 * sizeof(unsigned long));
  unsigned long mask[4096 / bits] = {};
  int mode = 0;
  if (node < 4096 && sys_get_mempolicy(&mode, mask, 4096, nullptr, mpol_f_mems_allowed) == 0)
    return (mask[node / bits] >> (node % bits) & 1UL) != 0 ? 0 : EACCES;
  const std::vector<int> allowed = mems_allowed();
  if (!allowed.empty() && !std::binary_search(allowed.begin(), allowed.end(), node)) return EACCES;
  return 0;
}

}  // namespace numamove::detail
