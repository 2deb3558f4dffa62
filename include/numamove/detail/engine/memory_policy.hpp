// Binding fresh, untouched memory to a placement with mbind(2).
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/engine/memory_policy.hpp is internal: include a public numamove header"
#endif

#include <cerrno>
#include <vector>

#include "../../placement.hpp"
#include "../errors.hpp"
#include "../linux/syscalls.hpp"
#include "../userspace/workers.hpp"

namespace numamove::detail {

/// Sets the policy of [addr, addr + length) so its pages are placed as `where` says when first
/// touched; `flags` are mbind's (MPOL_MF_MOVE also moves the pages already there). Returns 0, or
/// an errno from mbind(2) (EPERM or ENOSYS where the kernel refuses it).
inline int bind_memory(void* addr, std::size_t length, const placement& where, unsigned flags = 0) {
  if (where.kind == placement::policy::first_touch) return 0;
  const node_mask mask(where.nodes);
  const int mode = where.kind == placement::policy::on_node ? mpol_bind : mpol_interleave;
  return errno_of(sys_mbind(addr, length, mode, mask.words.data(), mask.maxnode, flags));
}

/// Places the fresh, untouched pages of [addr, addr + length) as `where` says: mbind where the
/// kernel allows it, else (mbind refused with EPERM, or ENOSYS) by first touch from threads
/// pinned to the nodes' CPUs, which leaves every page resident. Returns 0; EHOSTUNREACH when
/// mbind is refused and a node has no CPU this process may be pinned to; another errno from
/// mbind(2), mmap or thread creation.
inline int place_memory(void* addr, std::size_t length, const placement& where) {
  const int error = bind_memory(addr, length, where);
  if (error != EPERM && error != ENOSYS) return error;
  return userspace::place_by_first_touch(addr, length, where);
}

}  // namespace numamove::detail
