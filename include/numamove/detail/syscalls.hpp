// Raw NUMA system calls, called directly so the core needs no libnuma.
// Each returns what the kernel returns: a value >= 0, or -1 with errno set.
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace numamove::detail {

// Policy modes of mbind/set_mempolicy (uapi linux/mempolicy.h). Spelled out here because
// <numaif.h> and <linux/mempolicy.h> define the same names in incompatible ways.
inline constexpr int mpol_default = 0;
inline constexpr int mpol_bind = 2;
inline constexpr int mpol_interleave = 3;
inline constexpr int mpol_f_node = 1 << 0;
inline constexpr int mpol_f_addr = 1 << 1;
inline constexpr int mpol_mf_strict = 1 << 0;

inline long sys_move_pages(int pid, unsigned long count, void** pages, const int* nodes, int* status,
                           int flags) noexcept {
#ifdef SYS_move_pages
  return ::syscall(SYS_move_pages, pid, count, pages, nodes, status, flags);
#else
  (void)pid, (void)count, (void)pages, (void)nodes, (void)status, (void)flags;
  errno = ENOSYS;
  return -1;
#endif
}

inline long sys_mbind(void* addr, unsigned long len, int mode, const unsigned long* nodemask,
                      unsigned long maxnode, unsigned flags) noexcept {
#ifdef SYS_mbind
  return ::syscall(SYS_mbind, addr, len, mode, nodemask, maxnode, flags);
#else
  (void)addr, (void)len, (void)mode, (void)nodemask, (void)maxnode, (void)flags;
  errno = ENOSYS;
  return -1;
#endif
}

inline long sys_get_mempolicy(int* mode, unsigned long* nodemask, unsigned long maxnode,
                              void* addr, unsigned long flags) noexcept {
#ifdef SYS_get_mempolicy
  return ::syscall(SYS_get_mempolicy, mode, nodemask, maxnode, addr, flags);
#else
  (void)mode, (void)nodemask, (void)maxnode, (void)addr, (void)flags;
  errno = ENOSYS;
  return -1;
#endif
}

inline long sys_set_mempolicy(int mode, const unsigned long* nodemask,
                              unsigned long maxnode) noexcept {
#ifdef SYS_set_mempolicy
  return ::syscall(SYS_set_mempolicy, mode, nodemask, maxnode);
#else
  (void)mode, (void)nodemask, (void)maxnode;
  errno = ENOSYS;
  return -1;
#endif
}

}  // namespace numamove::detail
