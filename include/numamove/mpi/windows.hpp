// numamove/mpi/windows.hpp: what the shared-memory window calls of numamove/mpi.hpp take and
// report: how a rank's segment is placed and what placing it did, and the page-aligned parts of
// a window from allocate_shared_aligned(). Reached through numamove/mpi.hpp.
#pragma once
#include "../detail/public_header_begin.hpp"

#include <mpi.h>

#include <cstddef>
#include <system_error>
#include <vector>

#include "../flags.hpp"

namespace numamove::mpi {

/// How place_window_segments() places a segment.
struct window_options {
  bool strict = true;  ///< MPOL_BIND for pages yet to be touched; false: MPOL_PREFERRED
  /// Move pages other ranks have mapped too (MPOL_MF_MOVE_ALL), which needs CAP_SYS_NICE: with
  /// it false, or without the capability, those pages stay and count in `needs_move_all`.
  bool move_shared = true;
  /// the path of the move (the userspace path cannot move shared pages)
  backend path = backend::automatic;
};

/// What one rank's place_window_segments() did with its segment.
struct window_placement {
  int rank = -1;            ///< rank in the window's group
  int node = -1;            ///< the node its segment was placed on
  void* segment = nullptr;  ///< its segment, as MPI_Win_shared_query gives it
  std::size_t bytes = 0;    ///< the segment's size
  /// pages it placed: its whole pages, and boundary pages whose middle byte is its
  std::size_t pages = 0;
  std::size_t moved = 0;  ///< of those, pages moved here from another node
  /// pages already on `node`, allocated there by the policy or a writer
  std::size_t already_local = 0;
  /// Pages that hold bytes of its segment but went to a neighbour (whose part holds their
  /// middle byte): its bytes there are on the neighbour's node. The page-aligned allocation of
  /// allocate_shared_aligned() has none.
  std::vector<void*> boundary_pages;
  /// Pages other ranks had mapped, which only MPOL_MF_MOVE_ALL moves (with CAP_SYS_NICE): left
  /// where they were.
  std::size_t needs_move_all = 0;
  std::size_t failed = 0;          ///< pages with another negative status
  bool move_all_used = false;      ///< MPOL_MF_MOVE_ALL was passed
  backend used = backend::kernel;  ///< the path of the move
  /// EINVAL: not a shared-memory window; ENODEV: the rank is on a node without memory; the
  /// errno of mbind(2) or of the move (EPERM, ENOSYS where the kernel refuses); MPI errors in
  /// the MPI category.
  std::error_code error;

  /// True when no error, no page failed and no page was left for want of MPOL_MF_MOVE_ALL.
  explicit operator bool() const noexcept { return !error && failed == 0 && needs_move_all == 0; }
};

/// One rank's page-aligned part of a window from allocate_shared_aligned().
struct window_part {
  void* base = nullptr;   ///< page-aligned
  std::size_t bytes = 0;  ///< the bytes the rank asked for, rounded up to whole pages
};

/// A window from allocate_shared_aligned().
struct aligned_window {
  MPI_Win win = MPI_WIN_NULL;  ///< free it with MPI_Win_free
  void* base = nullptr;        ///< the calling rank's part, page-aligned
  std::size_t bytes = 0;       ///< its size: the bytes asked for, rounded up to whole pages
  window_placement placement;  ///< what placing that part on the rank's node did
  std::error_code error;       ///< MPI_Win_allocate_shared's error, in mpi_category()

  /// True when the window exists and its placement succeeded.
  explicit operator bool() const noexcept { return !error && static_cast<bool>(placement); }
};

}  // namespace numamove::mpi

#include "../detail/public_header_end.hpp"
