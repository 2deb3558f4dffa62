// What place_rank() and follow_rank() take and report (public names, reached through
// numamove/mpi.hpp), and how they apply a policy to the whole process.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <system_error>
#include <vector>

#include "../../migration_result.hpp"
#include "../../topology.hpp"
#include "../linux/proc.hpp"
#include "affinity.hpp"
#include "errors.hpp"
#include "process.hpp"
#include "../linux/syscalls.hpp"

namespace numamove::mpi {

/// The category of MPI error codes; message() is MPI_Error_string's text.
inline const std::error_category& mpi_category() noexcept { return numamove::detail::mpi::category(); }

/// Where a rank's memory goes.
enum class policy {
  none,        ///< leave the process as it is
  local,       ///< on the rank's node (its binding's node, or the node it runs on when unbound)
  spread,      ///< bound ranks on their node, unbound ranks dealt over the nodes with memory by local rank
  interleave,  ///< page by page over the nodes of the rank's CPUs
};

/// "none", "local", "spread" or "interleave".
constexpr const char* to_string(policy p) noexcept {
  return p == policy::local ? "local" : p == policy::spread ? "spread" : p == policy::interleave ? "interleave" : "none";
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
  bool strict = true;                  ///< bind (true) or preferred (false); interleave is always interleave
  bool pin_unbound = false;            ///< spread: pin an unbound rank to the CPUs of the node it is dealt
  bool move_existing = true;           ///< move what the process touched before the call
  migrate_options migrate{};           ///< path of that move (automatic: the userspace path where refused)
  MPI_Comm comm = MPI_COMM_WORLD;      ///< whose ranks on this host spread deals over the nodes
};

/// What place_rank() or follow_rank() did for the calling rank.
struct rank_placement {
  rank_binding binding;                 ///< where the rank runs after the call
  mpi::policy policy = policy::none;    ///< the policy applied
  memory_mode mode = memory_mode::none; ///< the memory policy every thread got
  std::vector<int> nodes;               ///< the nodes of that policy, and where touched memory went
  bool pinned_by_numamove = false;      ///< spread with pin_unbound pinned this unbound rank
  std::size_t threads = 0;              ///< threads that took the memory policy, the caller's included
  std::size_t threads_missed = 0;       ///< threads that did not answer (their policy is unchanged)
  std::size_t moved_bytes = 0;          ///< private memory that left the other nodes for `nodes`
  std::size_t pages_not_moved = 0;      ///< pages the move left elsewhere (busy, or shared without CAP_SYS_NICE)
  /// The userspace path: how many of those failed with which page status (-EBUSY, -EPERM, ...);
  /// migrate_pages(2) tells only their number.
  std::map<int, std::size_t> not_moved_statuses;
  std::map<int, std::size_t> bytes_before;  ///< the process's private memory per node, before
  std::map<int, std::size_t> bytes_after;   ///< and after
  backend used = backend::kernel;       ///< the path of the move: kernel (migrate_pages(2)) or userspace
  /// EPERM or ENOSYS where the kernel refuses set_mempolicy(2) (the move still ran, through the
  /// userspace path); ENODEV when the rank's node (interleave: every node of its CPUs) has no
  /// memory; EACCES when a node is outside the process's cpuset; an error of the move; MPI
  /// errors in mpi_category().
  std::error_code error;
  std::chrono::nanoseconds elapsed{0};

  /// True when no error, every thread took the policy and nothing was left behind.
  explicit operator bool() const noexcept { return !error && threads_missed == 0 && pages_not_moved == 0; }
};

}  // namespace numamove::mpi

namespace numamove::detail::mpi {

using numamove::mpi::memory_mode;
using numamove::mpi::policy;
using numamove::mpi::policy_options;
using numamove::mpi::rank_placement;

/// What the last place_rank() or follow_rank() of this process did, for the next follow_rank().

struct placed {
  std::mutex lock;
  policy_options options;
  std::vector<int> nodes;  // where the last placement or follow put the rank's memory
  bool valid = false;
};
inline placed last;



inline std::error_code errno_code(int e) { return std::error_code(e, std::generic_category()); }

/// Moves the process's private memory from `from` to result.nodes and counts what moved.
inline void move_and_count(rank_placement& result, const std::vector<int>& from, const migrate_options& options) {
  result.bytes_before = private_bytes_per_node();
  const process_move moved = move_process(from, result.nodes, options);
  result.bytes_after = private_bytes_per_node();
  result.used = moved.used;
  result.pages_not_moved = moved.not_moved;
  result.not_moved_statuses = moved.statuses;
  result.moved_bytes = moved.used == backend::userspace ? moved.moved_bytes : departed(result.bytes_before, result.bytes_after, from);
  if (moved.error != 0 && !result.error) result.error = errno_code(moved.error);
}

/// Applies `options.policy` with `nodes` to every thread and moves the process's private memory
/// from `from` to `nodes`.
inline void apply(rank_placement& result, const policy_options& options, const std::vector<int>& from) {
  const topology& machine = topology::system();
  result.policy = options.policy;
  const std::vector<int> allowed = mems_allowed();
  for (const int n : result.nodes) {
    if (!machine.has_node(n)) result.error = errno_code(ENODEV);
    else if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), n) == allowed.end()) result.error = errno_code(EACCES);
  }
  if (result.error) return;
  result.mode = options.policy == policy::interleave ? memory_mode::interleave
                : options.strict                     ? memory_mode::bind
                                                     : memory_mode::preferred;
  const int mode = result.mode == memory_mode::interleave ? mpol_interleave
                   : result.mode == memory_mode::bind     ? mpol_bind
                                                          : mpol_preferred;
  const threads_reached reached = set_policy_everywhere(mode, result.nodes);
  result.threads = reached.threads;
  result.threads_missed = reached.missed;
  if (reached.error != 0) result.error = errno_code(reached.error);
  if (options.move_existing) move_and_count(result, from, options.migrate);
}

/// The nodes with memory of `cpus`, ascending.
inline std::vector<int> nodes_of(const topology& machine, const std::vector<int>& cpus) {
  std::vector<int> nodes;
  for (const int c : cpus) {
    const int n = machine.node_of_cpu(c);
    if (n >= 0 && std::find(nodes.begin(), nodes.end(), n) == nodes.end()) nodes.push_back(n);
  }
  std::sort(nodes.begin(), nodes.end());
  return nodes;
}

/// Every node with memory but `nodes`.
inline std::vector<int> other_nodes(const topology& machine, const std::vector<int>& nodes) {
  std::vector<int> others;
  for (const int n : machine.nodes())
    if (std::find(nodes.begin(), nodes.end(), n) == nodes.end()) others.push_back(n);
  return others;
}


}  // namespace numamove::detail::mpi
