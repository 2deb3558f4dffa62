// numamove/move_pages.hpp: the seed's batched call, move_pages(2), on either path. A thin
// wrapper: the engine's dispatch (detail/engine/dispatch.hpp) picks the backend.
#pragma once
#include "detail/public_header_begin.hpp"

#include "detail/engine/dispatch.hpp"
#include "flags.hpp"

namespace numamove {

/// Moves pages of process `pid` (0: the caller) to nodes, or reports where they are: the contract
/// of move_pages(2), which numamove keeps on both paths.
///
/// \param pid    process whose pages move; 0 for the calling process.
/// \param count  number of entries in `pages`, `nodes` and `status`; 0 returns 0 at once.
/// \param pages  addresses, one per page; any address inside a page names that page.
/// \param nodes  target node for each entry, or nullptr to only report where each page is.
/// \param status out: per entry, the node the page is on after the call, or a negative errno:
///               -ENOENT not present (never touched, or swapped out; numamove gives this on
///               every kernel, where Linux 4.3 to 6.11 say -EFAULT), -EFAULT no mapping, I/O
///               mapping or the zero page, -EACCES mapped by several processes (on the userspace
///               path: any shared mapping) and MPOL_MF_MOVE_ALL not given, -EBUSY
///               busy (retry; also some addresses after the first inside one huge page that
///               the same call moves: Linux 6.1 reports the second, the others as moved),
///               -EPERM locked or kept for a device, not movable (userspace path), -ENOMEM no
///               memory on the target, -EIO/-EINVAL dirty page that could not be written back
///               (userspace path), -ENODATA (numamove::node_unknown) a present page whose node
///               cannot be learned (userspace path, queries). docs/semantics.md has the table.
/// \param flags  MPOL_MF_MOVE (or 0, the same) or MPOL_MF_MOVE_ALL.
/// \param path   backend::automatic picks the kernel where move_pages(2) works in this process.
///
/// \return 0 when every entry was handled; a positive number of pages not migrated, in which
///         case the statuses of the batch that failed and of every later entry are left as they
///         were (query again to learn them); or -1 with errno set, checked in this order:
///         EINVAL flags other than the two above; EPERM MPOL_MF_MOVE_ALL without CAP_SYS_NICE;
///         ESRCH no process `pid`; EPERM another user's process without permission; then per
///         entry, earlier statuses already written: ENODEV a target that is not a node with
///         memory, EACCES a target outside the caller's cpuset, EHOSTUNREACH (userspace path) a
///         target it cannot place pages on (mbind refused and no CPU of the node to pin a thread
///         to); EFAULT an array that cannot be read or written; EOPNOTSUPP (userspace path) a
///         move of another process's pages; ENOMEM the kernel ran out of memory for the call;
///         EPERM or ENOSYS from backend::kernel where the kernel refuses the call (seccomp, no
///         NUMA support). The userspace path never returns a positive count: it writes every
///         status. It throws std::bad_alloc when its own bookkeeping cannot be allocated.
inline long move_pages(int pid, unsigned long count, void** pages, const int* nodes, int* status,
                       int flags, backend path = backend::automatic) {
  return detail::move_pages_on(path, pid, count, pages, nodes, status, flags);
}

}  // namespace numamove

#include "detail/public_header_end.hpp"
