// Raw NUMA system calls, called directly so the core needs no libnuma, and the few facts of
// the running system that come from a system call (page size, kernel release, affinity).
// Each sys_* returns what the kernel returns: a value >= 0, or -1 with errno set.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/linux/syscalls.hpp is internal: include a public numamove header"
#endif

#include <sched.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <system_error>
#include <vector>

#include "../../flags.hpp"

namespace numamove::detail {

// Policy modes and flags of mbind/set_mempolicy/get_mempolicy (uapi linux/mempolicy.h), all
// of them here. Spelled out because <numaif.h> and <linux/mempolicy.h> define the same names in
// incompatible ways. The move flags MPOL_MF_MOVE and MPOL_MF_MOVE_ALL are public API, spelled
// as <numaif.h> spells them, in flags.hpp (included here).
inline constexpr int mpol_default = 0;
inline constexpr int mpol_preferred = 1;  // on the node while it has room, else elsewhere
inline constexpr int mpol_bind = 2;
inline constexpr int mpol_interleave = 3;
inline constexpr int mpol_f_node = 1 << 0;
inline constexpr int mpol_f_addr = 1 << 1;
inline constexpr int mpol_f_mems_allowed = 1 << 2;
inline constexpr int mpol_mf_strict = 1 << 0;

inline std::size_t page_size() noexcept {
  static const std::size_t size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

/// Kernel release as major * 1000 + minor (6.1 -> 6001), 0 when unknown.
inline int kernel_release() noexcept {
  static const int release = [] {
    utsname name{};
    int major = 0;
    int minor = 0;
    if (::uname(&name) != 0 || std::sscanf(name.release, "%d.%d", &major, &minor) != 2) return 0;
    return major * 1000 + minor;
  }();
  return release;
}

/// A node mask as mbind/set_mempolicy read it, with the `maxnode` to pass along.
struct node_mask {
  std::vector<unsigned long> words;
  unsigned long maxnode = 0;

  explicit node_mask(const std::vector<int>& nodes) {
    constexpr int bits = static_cast<int>(8 * sizeof(unsigned long));
    int highest = 0;
    for (const int node : nodes) highest = node > highest ? node : highest;
    // One spare word: the kernel reads maxnode - 1 bits.
    words.assign(static_cast<std::size_t>(highest / bits + 2), 0UL);
    for (const int node : nodes)
      words[static_cast<std::size_t>(node / bits)] |= 1UL << (node % bits);
    maxnode = static_cast<unsigned long>((highest / bits + 1) * bits + 1);
  }
};

inline long sys_move_pages(int pid, unsigned long count, void** pages, const int* nodes,
                           int* status, int flags) noexcept {
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

inline long sys_get_mempolicy(int* mode, unsigned long* nodemask, unsigned long maxnode, void* addr,
                              unsigned long flags) noexcept {
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

/// The kernel's id of the calling thread (gettid(2), which glibc 2.36 declares; older do not).
inline pid_t this_thread_id() noexcept {
  return static_cast<pid_t>(::syscall(SYS_gettid));
}

/// The CPU time thread `tid` of this process has run so far, in nanoseconds (its CPU-time clock,
/// clock_gettime(2)); -1 with errno set when the thread has exited (EINVAL).
inline long long thread_cpu_time(pid_t tid) noexcept {
  // The clock id pthread_getcpuclockid() gives, built from the thread id as the kernel reads it
  // (CPUCLOCK_SCHED of a per-thread clock): a thread not started by pthreads has one too.
  const auto clock = static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | 6u);
  timespec t{};
  if (::clock_gettime(clock, &t) != 0) return -1;
  return static_cast<long long>(t.tv_sec) * 1000000000LL + t.tv_nsec;
}

/// The affinity mask of thread `tid` (0: the calling thread), ascending CPU ids. Throws
/// std::system_error with the errno of sched_getaffinity(2).
inline std::vector<int> affinity_of(pid_t tid) {
  for (int size = 1024; size <= (1 << 20); size *= 2) {
    cpu_set_t* set = CPU_ALLOC(static_cast<unsigned>(size));
    if (set == nullptr)
      throw std::system_error(ENOMEM, std::generic_category(), "numamove: CPU_ALLOC");
    const std::size_t bytes = CPU_ALLOC_SIZE(static_cast<unsigned>(size));
    if (::sched_getaffinity(tid, bytes, set) != 0) {
      const int error = errno;
      CPU_FREE(set);
      if (error == EINVAL) continue;  // the kernel's mask is larger than `size` CPUs
      throw std::system_error(error, std::generic_category(), "numamove: sched_getaffinity");
    }
    std::vector<int> cpus;
    for (int cpu = 0; cpu < size; ++cpu)
      if (CPU_ISSET_S(static_cast<unsigned>(cpu), bytes, set)) cpus.push_back(cpu);
    CPU_FREE(set);
    return cpus;
  }
  throw std::system_error(EINVAL, std::generic_category(), "numamove: sched_getaffinity");
}

}  // namespace numamove::detail
