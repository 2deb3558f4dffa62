// Shared-memory windows (MPI_Win_allocate_shared): each rank's segment on its rank's node, and
// an allocation whose parts own their pages. Open MPI's osc/sm allocates one segment for all
// ranks, first touch decides where its pages go, and a rank's part starts mid-page, so
// neighbours share their boundary pages.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/mpi/windows.hpp is internal: include a public numamove header"
#endif

#include <mpi.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <system_error>
#include <vector>

#include "../../flags.hpp"
#include "../../migration_result.hpp"
#include "../../mpi/windows.hpp"
#include "../engine/memory_policy.hpp"
#include "../engine/migration.hpp"
#include "../linux/proc.hpp"
#include "../linux/syscalls.hpp"
#include "errors.hpp"

namespace numamove::detail::mpi {

using numamove::mpi::window_options;
using numamove::mpi::window_placement;

/// EINVAL unless `win` was made by MPI_Win_allocate_shared.
inline std::error_code check_shared_window(MPI_Win win) {
  if (win == MPI_WIN_NULL) return std::error_code(EINVAL, std::generic_category());
  int* flavor = nullptr;
  int found = 0;
  if (const int code = MPI_Win_get_attr(win, MPI_WIN_CREATE_FLAVOR, &flavor, &found))
    return mpi_error(code);
  if (!found || flavor == nullptr || *flavor != MPI_WIN_FLAVOR_SHARED)
    return std::error_code(EINVAL, std::generic_category());
  return {};
}

/// Rank `rank`'s segment of `win`: its base and bytes.
struct segment {
  std::uintptr_t base = 0;
  std::size_t bytes = 0;
};

inline std::error_code query_segment(MPI_Win win, int rank, segment& out) {
  MPI_Aint size = 0;
  int unit = 0;
  void* base = nullptr;
  if (const int code = MPI_Win_shared_query(win, rank, &size, &unit, &base)) return mpi_error(code);
  out.base = reinterpret_cast<std::uintptr_t>(base);
  out.bytes = static_cast<std::size_t>(size);
  return {};
}

/// The segments of every rank of `win`'s group, by rank.
inline std::error_code query_segments(MPI_Win win, int ranks, std::vector<segment>& out) {
  out.assign(static_cast<std::size_t>(ranks), segment{});
  for (int r = 0; r < ranks; ++r)
    if (std::error_code e = query_segment(win, r, out[static_cast<std::size_t>(r)])) return e;
  return {};
}

/// The base page at `p` belongs to the part holding the middle byte of all the parts' bytes in
/// it (the OpenMP layer's rule for pages shared by two threads' chunks).
inline bool holds_middle(std::uintptr_t p, const segment& part, const std::vector<segment>& parts) {
  const std::size_t page = page_size();
  std::uintptr_t lo = p + page;
  std::uintptr_t hi = p;
  for (const segment& s : parts) {
    const std::uintptr_t from = std::max(p, s.base);
    const std::uintptr_t to = std::min(p + page, s.base + s.bytes);
    if (s.bytes == 0 || from >= to) continue;
    lo = std::min(lo, from);
    hi = std::max(hi, to);
  }
  const std::uintptr_t middle = lo + (hi - lo) / 2;
  return middle >= part.base && middle < part.base + part.bytes;
}

/// Places the pages of `part` that are its own (as holds_middle() says, against all `parts`) on
/// `node`: mbind gives them the policy (so a page not yet touched lands there whoever touches
/// it; for a shared mapping the policy is the segment object's), a read maps each one here (the
/// kernel moves only pages the caller has mapped), and the pages elsewhere are moved, with
/// MPOL_MF_MOVE_ALL where options and CAP_SYS_NICE allow.
inline void place_part(const segment& part, const std::vector<segment>& parts, int node,
                       const window_options& options, window_placement& result) {
  const std::size_t page = page_size();
  result.node = node;
  result.segment = reinterpret_cast<void*>(part.base);
  result.bytes = part.bytes;
  result.used = resolve(options.path);
  if (part.bytes == 0) return;
  const std::uintptr_t end = part.base + part.bytes;
  std::vector<void*> mine;
  for (std::uintptr_t p = part.base / page * page; p < end; p += page) {
    if (holds_middle(p, part, parts))
      mine.push_back(reinterpret_cast<void*>(p));
    else
      result.boundary_pages.push_back(reinterpret_cast<void*>(p));
  }
  result.pages = mine.size();
  if (mine.empty()) return;
  const node_mask mask(std::vector<int>{node});
  // The pages it owns are consecutive: one mbind for the run.
  if (sys_mbind(mine.front(), mine.size() * page, options.strict ? mpol_bind : mpol_preferred,
                mask.words.data(), mask.maxnode, 0) != 0 &&
      errno != EPERM && errno != ENOSYS) {
    result.error = std::error_code(errno, std::generic_category());
    return;
  }
  for (void* p : mine) (void)*static_cast<volatile const char*>(p);
  migrate_options move;
  move.path = options.path;
  result.move_all_used = options.move_shared && has_cap_sys_nice();
  move.flags = result.move_all_used ? MPOL_MF_MOVE_ALL : MPOL_MF_MOVE;
  const migration_result r =
      migrate_pages(std::move(mine), std::vector<int>(result.pages, node), move);
  result.used = r.used;
  result.error = r.error;
  result.moved = r.moved;
  result.already_local = r.already_there;
  for (const int status : r.status) {
    if (status == -EACCES)
      ++result.needs_move_all;
    else if (status < 0)
      ++result.failed;
  }
}

}  // namespace numamove::detail::mpi
