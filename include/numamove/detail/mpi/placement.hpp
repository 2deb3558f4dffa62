// How place_rank() and follow_rank() apply a policy to the whole process: the memory policy
// of every thread, the move of what the process touched, and what the last placement did.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/mpi/placement.hpp is internal: include a public numamove header"
#endif

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
#include "../../mpi/policy.hpp"
#include "../../topology.hpp"
#include "../linux/proc.hpp"
#include "../linux/syscalls.hpp"
#include "affinity.hpp"
#include "errors.hpp"
#include "process.hpp"

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

inline std::error_code errno_code(int e) {
  return std::error_code(e, std::generic_category());
}

/// Moves the process's private memory from `from` to result.nodes and counts what moved.
inline void move_and_count(rank_placement& result, const std::vector<int>& from,
                           const migrate_options& options) {
  result.bytes_before = private_bytes_per_node();
  const process_move moved = move_process(from, result.nodes, options);
  result.bytes_after = private_bytes_per_node();
  result.used = moved.used;
  result.pages_not_moved = moved.not_moved;
  result.not_moved_statuses = moved.statuses;
  result.moved_bytes = moved.used == backend::userspace
                           ? moved.moved_bytes
                           : departed(result.bytes_before, result.bytes_after, from);
  if (moved.error != 0 && !result.error) result.error = errno_code(moved.error);
}

/// Applies `options.policy` with `nodes` to every thread and moves the process's private memory
/// from `from` to `nodes`.
inline void apply(rank_placement& result, const policy_options& options,
                  const std::vector<int>& from) {
  const topology& machine = topology::system();
  result.policy = options.policy;
  const std::vector<int> allowed = mems_allowed();
  for (const int n : result.nodes) {
    if (!machine.has_node(n))
      result.error = errno_code(ENODEV);
    else if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), n) == allowed.end())
      result.error = errno_code(EACCES);
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
