// The userspace migrator: move_pages semantics where the kernel path is absent (containers that
// refuse the NUMA system calls, kernels without NUMA). The implementation is in userspace/:
//   migrator.hpp          call-level checks, the caller's arrays, rounds of work
//   page_rules.hpp        the per-page rules (the table in docs/semantics.md)
//   relocation_plan.hpp   the plan: runs, chunks, teams, batches (pure functions)
//   relocation.hpp        the steps: fresh mappings, phase A (place), phase B (commit), outcomes
//   chunk_moves.hpp       what a worker does to one chunk: populate, copy, mremap, refault
//   arena.hpp             memory made before the stop for what phase B writes
//   fence.hpp             the program's other threads stopped while pages are committed
//   live_maps.hpp         the address space read again during the stop
//   file_pages.hpp        page-cache pages: writeback, eviction, refault
//   workers.hpp           threads pinned to the target node
//   futex.hpp             what the workers and the fence wait with
//   caller_memory.hpp     reading and writing the caller's arrays without faulting
//   fault_injection.hpp   test-only failure points
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/userspace/backend.hpp is internal: include a public numamove header"
#endif

#include "migrator.hpp"

namespace numamove::detail {

/// move_pages(2) on the userspace path with move_pages' defaults (no force, other threads fenced,
/// workers chosen by size). Contract: numamove::move_pages.
inline long userspace_move_pages(int pid, unsigned long count, void** pages, const int* nodes,
                                 int* status, int flags) {
  return userspace::move_pages(pid, count, pages, nodes, status, flags,
                               userspace::relocation_options{});
}

}  // namespace numamove::detail
