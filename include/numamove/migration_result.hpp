// numamove/migration_result.hpp: what migrate() takes and what it reports.
#pragma once
#include "detail/public_header_begin.hpp"

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <system_error>
#include <vector>

#include "flags.hpp"

namespace numamove {

/// Status of a present page whose node numamove could not learn: on the userspace path, where
/// the move_pages(2) query is refused and numa_maps shows the page's mapping on several nodes.
/// numamove never reports a node it did not verify or place itself.
inline constexpr int node_unknown = -ENODATA;

/// How migrate() moves pages.
struct migrate_options {
  int flags = MPOL_MF_MOVE;           ///< MPOL_MF_MOVE, or MPOL_MF_MOVE_ALL for shared pages
  backend path = backend::automatic;  ///< which implementation moves them
  int busy_retries = 4;               ///< extra attempts for pages that stay -EBUSY
  /// Move pages that already sit on the target too: the userspace path copies them into fresh
  /// pages (to re-back a region with huge pages, or to measure the copy on a one-node machine).
  /// Only the userspace path can: with `path` automatic, force takes it; with backend::kernel,
  /// force is a call-level EINVAL.
  bool force = false;
  /// Userspace path: stop the process's other threads while each batch of pages is copied and
  /// put in place, so that no write is lost and nothing another thread does to the address
  /// space (munmap, mprotect, madvise, mmap) is undone. Only a caller that guarantees no other
  /// thread touches the range or the address space during the call may turn it off (it saves
  /// the stops). docs/userspace.md, "Concurrent changes to the address space".
  bool protect_writes = true;
  /// Threads that move the pages. Userspace path: copying threads per target node; 0 picks one
  /// per 32 MiB moved, at most one per CPU of the node and 8. Kernel path: the pages to move are
  /// cut into slices of at least 2 MiB, each moved by its own move_pages(2) call on a thread kept
  /// for the process's life (started by the first call that needs it, with that caller's CPU
  /// affinity), at most one per CPU the process may use; the statuses, counts and call-level
  /// error are those of one call (of two failing slices, the error of the first in page order).
  /// 1: the calling thread alone. 0, the default: one per parallel_move_min_bytes of data, so
  /// the calling thread alone below that.
  unsigned workers = 0;
};

/// Bytes per thread from which numamove moves in parallel by default: kernel-path workers
/// (migrate_options::workers 0) and the team of openmp::follow_threads() (movers::automatic).
/// Chosen above every size where more threads were measured to lose against one call
/// (docs/performance.md, "Parallel moves"): in the emulated guests, up to 64 MiB per thread,
/// they never won reliably.
inline constexpr std::size_t parallel_move_min_bytes = std::size_t{256} << 20;

/// The outcome of one migrate() call.
struct migration_result {
  /// One entry per base page the data spans, in address order, starting at `first_page`: the
  /// node the page is on after the call, or a negative errno as in move_pages(). Empty when the
  /// call failed its call-level checks before looking at any page.
  std::vector<int> status;
  const void* first_page = nullptr;  ///< page-aligned address that status[0] describes
  std::size_t moved = 0;             ///< pages this call moved to the target
  std::size_t already_there = 0;     ///< pages that were on the target before the call
  std::size_t not_present = 0;       ///< pages never touched (-ENOENT): left unallocated
  std::size_t failed = 0;            ///< pages with any other negative status
  /// Pages whose node before the call could not be learned (userspace path, query refused,
  /// mapping spread over several nodes): moved anyway, and counted in `moved` too.
  std::size_t node_unknown = 0;
  std::error_code error;           ///< call-level error (errno values, generic category)
  backend used = backend::kernel;  ///< the path that ran (never automatic)
  std::size_t bytes = 0;           ///< bytes moved: moved pages times the base page size
  std::chrono::nanoseconds elapsed{0};

  /// True when there was no call-level error and no page failed.
  explicit operator bool() const noexcept { return !error && failed == 0; }
};

}  // namespace numamove

#include "detail/public_header_end.hpp"
