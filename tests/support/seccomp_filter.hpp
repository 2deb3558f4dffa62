// A seccomp filter that refuses system calls with EPERM, and the one that refuses the NUMA
// calls the way Docker's default seccomp profile refuses them.
//
// Docker's default profile (moby profiles/seccomp/default.json):
//   move_pages, migrate_pages                          -> EPERM, always
//   mbind, set_mempolicy, get_mempolicy,
//   set_mempolicy_home_node                            -> EPERM unless the container has
//                                                         CAP_SYS_NICE
// The filter is raw classic BPF (<linux/seccomp.h>, <linux/filter.h>), no libseccomp:
// prctl(PR_SET_NO_NEW_PRIVS) and then prctl(PR_SET_SECCOMP). Whether the caller holds
// CAP_SYS_NICE is read with capget(2) when the filter is built, as Docker decides from the
// container's capabilities when it starts it. Only the native ABI is filtered (x86-64 on
// x86-64; x32 and i386 calls pass), which is all a test binary uses.
#pragma once

#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "support/child.hpp"

namespace numamove_test {

/// Makes the system calls numbered `refused` fail with EPERM in the calling thread (and in
/// everything it later creates). Irreversible. Returns 0 or the errno of the prctl that failed.
inline int refuse_syscalls(const std::vector<long>& refused) {
#if defined(__x86_64__)
  constexpr std::uint32_t native_arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
  constexpr std::uint32_t native_arch = AUDIT_ARCH_AARCH64;
#elif defined(__i386__)
  constexpr std::uint32_t native_arch = AUDIT_ARCH_I386;
#elif defined(__powerpc64__) && defined(__LITTLE_ENDIAN__)
  constexpr std::uint32_t native_arch = AUDIT_ARCH_PPC64LE;
#elif defined(__riscv) && __riscv_xlen == 64
  constexpr std::uint32_t native_arch = AUDIT_ARCH_RISCV64;
#else
#error "seccomp_filter.hpp: add this architecture's AUDIT_ARCH_* value"
#endif
  constexpr std::uint32_t eperm = SECCOMP_RET_ERRNO | (std::uint32_t{EPERM} & SECCOMP_RET_DATA);
  std::vector<sock_filter> program;
  program.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)));
  program.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, native_arch, 1, 0));
  program.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  program.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
  const std::size_t k = refused.size();
  for (std::size_t i = 0; i < k; ++i) {
    // Matched: jump over the remaining comparisons and the "allow" to the refusal.
    program.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(refused[i]),
                               static_cast<unsigned char>(k - i), 0));
  }
  program.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  program.push_back(BPF_STMT(BPF_RET | BPF_K, eperm));

  sock_fprog prog{};
  prog.len = static_cast<unsigned short>(program.size());
  prog.filter = program.data();
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) return errno;
  return 0;
}

/// Which NUMA system calls install_numa_filter() refuses.
enum class numa_filter {
  docker_default,  ///< move_pages, migrate_pages always; the mempolicy calls unless CAP_SYS_NICE
  refuse_all,      ///< all five, as Docker's default profile does without CAP_SYS_NICE
  none,            ///< no filter: the same child machinery, for controls and cpuset tests
};

inline const char* to_string(numa_filter f) {
  return f == numa_filter::docker_default ? "docker_default"
         : f == numa_filter::refuse_all   ? "refuse_all"
                                          : "none";
}

/// The system call numbers the filter refuses for `filter`, given whether the caller holds
/// CAP_SYS_NICE.
inline std::vector<long> refused_numa_syscalls(numa_filter filter, bool cap_sys_nice) {
  std::vector<long> refused;
  if (filter == numa_filter::none) return refused;
  refused.push_back(SYS_move_pages);
  refused.push_back(SYS_migrate_pages);
  if (filter == numa_filter::refuse_all || !cap_sys_nice) {
    refused.push_back(SYS_mbind);
    refused.push_back(SYS_set_mempolicy);
    refused.push_back(SYS_get_mempolicy);
#ifdef SYS_set_mempolicy_home_node
    refused.push_back(SYS_set_mempolicy_home_node);
#endif
  }
  return refused;
}

/// Installs the NUMA filter in the calling thread (and so in everything it later creates).
/// Irreversible. Returns 0 or the errno of the prctl that failed.
inline int install_numa_filter(numa_filter filter) {
  if (filter == numa_filter::none) return 0;
  return refuse_syscalls(refused_numa_syscalls(filter, has_effective_capability(CAP_SYS_NICE)));
}

}  // namespace numamove_test
