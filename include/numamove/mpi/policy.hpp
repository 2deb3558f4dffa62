// numamove/mpi/policy.hpp: what numamove::mpi::place_rank() and follow_rank() take and report:
// the placement policy of a rank's memory, its options, and the rank's placement. Reached
// through numamove/mpi.hpp.
#pragma once
#include "../detail/public_header_begin.hpp"

#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <map>
#include <system_error>
#include <vector>

#include "../flags.hpp"
#include "../migration_result.hpp"
#include "binding.hpp"

namespace numamove::mpi {

/// Where a rank's memory goes.
enum class policy {
  none,   ///< leave the process as it is
  local,  ///< on the rank's node (its binding's node, or the node it runs on when unbound)
  /// bound ranks on their node, unbound ranks dealt over the nodes with memory by local rank
  spread,
  interleave,  ///< page by page over the nodes of the rank's CPUs
};

/// "none", "local", "spread" or "interleave".
constexpr const char* to_string(policy p) noexcept {
  return p == policy::local        ? "local"
         : p == policy::spread     ? "spread"
         : p == policy::interleave ? "interleave"
                                   : "none";
}

/// The memory policy every thread of the process got.
enum class memory_mode {
  none,        ///< unchanged
  bind,        ///< MPOL_BIND: allocations fail rather than spill (numactl --membind)
  preferred,   ///< MPOL_PREFERRED: on the node while it has room, else elsewhere
  interleave,  ///< MPOL_INTERLEAVE
};

/// How place_rank() places a rank.
struct policy_options {
  mpi::policy policy = policy::local;
  bool strict = true;         ///< bind (true) or preferred (false); interleave is always interleave
  bool pin_unbound = false;   ///< spread: pin an unbound rank to the CPUs of the node it is dealt
  bool move_existing = true;  ///< move what the process touched before the call
  migrate_options migrate{};  ///< path of that move (automatic: the userspace path where refused)
  MPI_Comm comm = MPI_COMM_WORLD;  ///< whose ranks on this host spread deals over the nodes
};

/// What place_rank() or follow_rank() did for the calling rank.
struct rank_placement {
  rank_binding binding;                  ///< where the rank runs after the call
  mpi::policy policy = policy::none;     ///< the policy applied
  memory_mode mode = memory_mode::none;  ///< the memory policy every thread got
  std::vector<int> nodes;           ///< the nodes of that policy, and where touched memory went
  bool pinned_by_numamove = false;  ///< spread with pin_unbound pinned this unbound rank
  std::size_t threads = 0;          ///< threads that took the memory policy, the caller's included
  std::size_t threads_missed = 0;   ///< threads that did not answer (their policy is unchanged)
  std::size_t moved_bytes = 0;      ///< private memory that left the other nodes for `nodes`
  /// pages the move left elsewhere (busy, or shared without CAP_SYS_NICE)
  std::size_t pages_not_moved = 0;
  /// The userspace path: how many of those failed with which page status (-EBUSY, -EPERM, ...);
  /// migrate_pages(2) tells only their number.
  std::map<int, std::size_t> not_moved_statuses;
  std::map<int, std::size_t> bytes_before;  ///< the process's private memory per node, before
  std::map<int, std::size_t> bytes_after;   ///< and after
  backend used = backend::kernel;  ///< the path of the move: kernel (migrate_pages(2)) or userspace
  /// EPERM or ENOSYS where the kernel refuses set_mempolicy(2) (the move still ran, through the
  /// userspace path); ENODEV when the rank's node (interleave: every node of its CPUs) has no
  /// memory; EACCES when a node is outside the process's cpuset; an error of the move; MPI
  /// errors in mpi_category().
  std::error_code error;
  std::chrono::nanoseconds elapsed{0};

  /// True when no error, every thread took the policy and nothing was left behind.
  explicit operator bool() const noexcept {
    return !error && threads_missed == 0 && pages_not_moved == 0;
  }
};

}  // namespace numamove::mpi

#include "../detail/public_header_end.hpp"
