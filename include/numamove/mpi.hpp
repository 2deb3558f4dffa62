// numamove/mpi.hpp: a rank's data on its rank's node. Opt-in: link numamove::mpi (defined where
// CMake finds MPI; the core stays free of MPI). Uses MPI's C API only; includes <mpi.h> itself.
//
//   rank_affinity          collective: every rank of this host, its CPUs and its node
//   place_rank             collective: a placement policy for the whole process, after MPI_Init
//   follow_rank            after a rebind: the process's data (or one array) to its new node
//   bind_process           rebinds every thread of the process (a malleable job, a new phase)
//   place_window_segments  each rank's segment of a shared-memory window on its rank's node
//   allocate_shared_aligned  a shared-memory window whose parts own their pages
//   gather_locality        collective: the locality table of an array or of each process
//
// and, included here, what they take and report:
//
//   mpi/binding.hpp        rank_binding: where a rank runs
//   mpi/policy.hpp         policy, memory_mode, policy_options, rank_placement
//   mpi/windows.hpp        window_options, window_placement, window_part, aligned_window
//   mpi/locality.hpp       rank_locality, locality_table
//   mpi/errors.hpp         mpi_category()
//
// Placement failures are reported in the results, never thrown. MPI's errors are
// std::error_code values in mpi_category() (messages from MPI_Error_string): in a result's
// `error`, or thrown as std::system_error by the calls that return plain values. Every call
// throws std::logic_error before MPI_Init and after MPI_Finalize. docs/mpi.md has the whole.
#pragma once
#include "detail/public_header_begin.hpp"

#include <mpi.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <system_error>
#include <vector>

#include "detail/linux/syscalls.hpp"
#include "detail/mpi/affinity.hpp"
#include "detail/mpi/errors.hpp"
#include "detail/mpi/locality.hpp"
#include "detail/mpi/placement.hpp"
#include "detail/mpi/process.hpp"
#include "detail/mpi/windows.hpp"
#include "migrate.hpp"
#include "migration_result.hpp"
#include "mpi/binding.hpp"
#include "mpi/errors.hpp"
#include "mpi/locality.hpp"
#include "mpi/policy.hpp"
#include "mpi/windows.hpp"
#include "topology.hpp"

namespace numamove::mpi {

/// Every rank of `comm` on this host (MPI_COMM_TYPE_SHARED), by local rank: its rank in `comm`,
/// its CPUs, the CPU it runs on, its node and whether it is pinned, from each rank's own
/// affinity mask (not the launcher's environment). Collective over `comm`. Throws
/// std::system_error (mpi_category(), or the errno of sched_getaffinity) and std::logic_error.
inline std::vector<rank_binding> rank_affinity(MPI_Comm comm = MPI_COMM_WORLD) {
  detail::mpi::require_running("numamove::mpi::rank_affinity");
  return detail::mpi::gather_host_bindings(comm, topology::system());
}

/// Sets the affinity of every thread of the calling process to `cpus` (a rebind). Returns 0, or
/// the errno of sched_setaffinity(2): EINVAL when no CPU of the set is allowed. Throws
/// std::logic_error before MPI_Init and after MPI_Finalize.
inline int bind_process(const std::vector<int>& cpus) {
  detail::mpi::require_running("numamove::mpi::bind_process");
  return detail::mpi::set_process_affinity(cpus);
}

/// Places the calling rank as options.policy says, once, after MPI_Init: every thread of the
/// process gets the memory policy (so new allocations, from any thread, land on the nodes), and
/// what the process touched before is moved there: migrate_pages(2) for the whole process on
/// the kernel path, the userspace path where that is refused (EPERM, ENOSYS). Collective over
/// options.comm (spread deals the unbound ranks of each host). Calling it again replaces the
/// policy.
///
/// Failures are reported in the result (see rank_placement::error), not thrown. Throws
/// std::logic_error before MPI_Init and after MPI_Finalize, std::system_error when a thread's
/// affinity cannot be read, and std::bad_alloc.
inline rank_placement place_rank(const policy_options& options = {}) {
  detail::mpi::require_running("numamove::mpi::place_rank");
  const auto started = std::chrono::steady_clock::now();
  const topology& machine = topology::system();
  rank_placement result;
  int rank = 0;
  MPI_Comm_rank(options.comm, &rank);
  std::vector<rank_binding> host;
  try {
    host = detail::mpi::gather_host_bindings(options.comm, machine);
  } catch (const std::system_error& e) {
    if (&e.code().category() != &mpi_category()) throw;
    result.error = e.code();
    return result;
  }
  for (const rank_binding& b : host)
    if (b.rank == rank) result.binding = b;
  // spread deals the unbound ranks of the host over the nodes in local-rank order.
  std::size_t unbound_before = 0;
  for (const rank_binding& b : host)
    if (!b.pinned && b.local_rank < result.binding.local_rank) ++unbound_before;
  switch (options.policy) {
    case policy::none:
      result.elapsed = std::chrono::steady_clock::now() - started;
      return result;
    case policy::local:
      result.nodes = {result.binding.node};
      break;
    case policy::spread:
      if (result.binding.pinned) {
        result.nodes = {result.binding.node};
        break;
      }
      {
        const std::vector<int> nodes = machine.nodes();
        const int dealt = nodes[unbound_before % nodes.size()];
        result.nodes = {dealt};
        if (options.pin_unbound && !machine.cpus_of(dealt).empty() &&
            detail::mpi::set_process_affinity(machine.cpus_of(dealt)) == 0) {
          const int local_rank = result.binding.local_rank;
          result.binding = detail::mpi::current_binding(machine);
          result.binding.rank = rank;
          result.binding.local_rank = local_rank;
          result.pinned_by_numamove = true;
        }
      }
      break;
    case policy::interleave:
      result.nodes = detail::mpi::nodes_of(machine, result.binding.cpus);
      break;
  }
  if (result.nodes.empty() || result.nodes.front() < 0) {
    result.error = detail::mpi::errno_code(detail::mpi::unreachable_node_error(result.binding.cpu));
    result.nodes.clear();
  } else {
    detail::mpi::apply(result, options, detail::mpi::other_nodes(machine, result.nodes));
  }
  {
    const std::lock_guard<std::mutex> lock(detail::mpi::last.lock);
    detail::mpi::last.options = options;
    detail::mpi::last.nodes = result.nodes;
    detail::mpi::last.valid = !result.nodes.empty();
  }
  result.elapsed = std::chrono::steady_clock::now() - started;
  return result;
}

/// After the calling rank was rebound (bind_process(), sched_setaffinity, a new phase): moves
/// its private memory to its new node (by the rule of rank_affinity()), like
/// numamove::openmp::follow_threads does for threads, and gives every thread the policy of the
/// last place_rank() for the new node (interleave: the nodes of the new CPUs). Moves what lies
/// on the nodes the last place_rank() or follow_rank() used (so that other ranks' shared
/// segments on their own nodes stay), or on every other node when there was none. Not
/// collective. Reports as place_rank() does; throws std::logic_error before MPI_Init and after
/// MPI_Finalize, std::system_error when the affinity cannot be read.
inline rank_placement follow_rank(const migrate_options& options = {}) {
  detail::mpi::require_running("numamove::mpi::follow_rank");
  const auto started = std::chrono::steady_clock::now();
  const topology& machine = topology::system();
  rank_placement result;
  result.binding = detail::mpi::current_binding(machine);
  MPI_Comm_rank(MPI_COMM_WORLD, &result.binding.rank);
  policy_options placed;
  std::vector<int> previous;
  bool had_policy = false;
  {
    const std::lock_guard<std::mutex> lock(detail::mpi::last.lock);
    had_policy = detail::mpi::last.valid;
    if (had_policy) {
      placed = detail::mpi::last.options;
      previous = detail::mpi::last.nodes;
    }
  }
  placed.migrate = options;
  if (!had_policy) placed.policy = policy::local;
  result.nodes = placed.policy == policy::interleave
                     ? detail::mpi::nodes_of(machine, result.binding.cpus)
                     : std::vector<int>{result.binding.node};
  if (result.nodes.empty() || result.nodes.front() < 0) {
    result.error = detail::mpi::errno_code(detail::mpi::unreachable_node_error(result.binding.cpu));
    result.nodes.clear();
    result.elapsed = std::chrono::steady_clock::now() - started;
    return result;
  }
  std::vector<int> from;
  for (const int n : previous.empty() ? detail::mpi::other_nodes(machine, result.nodes) : previous)
    if (std::find(result.nodes.begin(), result.nodes.end(), n) == result.nodes.end())
      from.push_back(n);
  if (had_policy) {
    detail::mpi::apply(result, placed, from);
  } else {
    detail::mpi::move_and_count(result, from, options);
  }
  {
    const std::lock_guard<std::mutex> lock(detail::mpi::last.lock);
    detail::mpi::last.nodes = result.nodes;
  }
  result.elapsed = std::chrono::steady_clock::now() - started;
  return result;
}

/// After the calling rank was rebound: moves data[0 .. count) to the rank's new node, as
/// migrate() does (the result is migrate()'s; ENODEV when the rank runs on a node without
/// memory). Not collective. Throws std::logic_error before MPI_Init and after MPI_Finalize.
template <class T>
migration_result follow_rank(T* data, std::size_t count, const migrate_options& options = {}) {
  detail::mpi::require_running("numamove::mpi::follow_rank");
  const rank_binding binding = detail::mpi::current_binding(topology::system());
  const int node = binding.node;
  if (node < 0) {
    migration_result nowhere;
    nowhere.used = detail::path_for(options);
    nowhere.error =
        std::error_code(detail::mpi::unreachable_node_error(binding.cpu), std::generic_category());
    return nowhere;
  }
  return migrate(data, count, node, options);
}

/// Places the calling rank's segment of the shared-memory window `win` on the rank's node,
/// whoever touched it or will touch it first: the pages whose middle byte is in its segment get
/// the node as their policy (strict: MPOL_BIND, else MPOL_PREFERRED), are mapped by this rank,
/// and those elsewhere are moved (MPOL_MF_MOVE_ALL for pages other ranks have mapped, where
/// options.move_shared and CAP_SYS_NICE allow; else they count in needs_move_all). Every rank
/// of the window calls it for its own segment; no communication.
///
/// Failures are reported in the result (see window_placement::error), not thrown. Throws
/// std::logic_error before MPI_Init and after MPI_Finalize, and std::bad_alloc.
inline window_placement place_window_segments(MPI_Win win, const window_options& options = {}) {
  detail::mpi::require_running("numamove::mpi::place_window_segments");
  window_placement result;
  if ((result.error = detail::mpi::check_shared_window(win))) return result;
  MPI_Group group = MPI_GROUP_NULL;
  int ranks = 0;
  if (const int code = MPI_Win_get_group(win, &group)) {
    result.error = detail::mpi::mpi_error(code);
    return result;
  }
  MPI_Group_rank(group, &result.rank);
  MPI_Group_size(group, &ranks);
  MPI_Group_free(&group);
  std::vector<detail::mpi::segment> parts;
  if ((result.error = detail::mpi::query_segments(win, ranks, parts))) return result;
  const rank_binding binding = detail::mpi::current_binding(topology::system());
  result.node = binding.node;
  if (result.node < 0) {
    result.error =
        std::error_code(detail::mpi::unreachable_node_error(binding.cpu), std::generic_category());
    return result;
  }
  detail::mpi::place_part(parts[static_cast<std::size_t>(result.rank)], parts, result.node, options,
                          result);
  return result;
}

/// Rank `rank`'s part of a window made by allocate_shared_aligned(), as every rank of the window
/// may address it (MPI_Win_shared_query's answer would include the padding). Throws
/// std::system_error (mpi_category()) and std::logic_error.
inline window_part aligned_part(MPI_Win win, int rank) {
  detail::mpi::require_running("numamove::mpi::aligned_part");
  detail::mpi::segment s;
  if (const std::error_code e = detail::mpi::query_segment(win, rank, s))
    throw std::system_error(e, "numamove::mpi::aligned_part");
  const std::size_t page = detail::page_size();
  if (s.bytes < page) return {};
  return {reinterpret_cast<void*>((s.base + page - 1) / page * page), s.bytes - page};
}

/// Collective over `comm`: MPI_Win_allocate_shared with each rank's request rounded up to whole
/// pages plus one page of padding, so that every rank's part starts on a page of its own (the
/// segments MPI hands out start mid-page) and no page holds two ranks' data; then each part is
/// placed on its rank's node as place_window_segments() does. The window's displacement unit is
/// 1. Other ranks' parts: aligned_part(). Failures are reported, not thrown (`error`,
/// `placement.error`); throws std::logic_error before MPI_Init and after MPI_Finalize.
inline aligned_window allocate_shared_aligned(std::size_t bytes, MPI_Comm comm,
                                              MPI_Info info = MPI_INFO_NULL,
                                              const window_options& options = {}) {
  detail::mpi::require_running("numamove::mpi::allocate_shared_aligned");
  aligned_window made;
  const std::size_t page = detail::page_size();
  const std::size_t whole = (bytes + page - 1) / page * page;
  const std::size_t request = whole == 0 ? 0 : whole + page;
  void* base = nullptr;
  if (const int code = MPI_Win_allocate_shared(static_cast<MPI_Aint>(request), 1, info, comm, &base,
                                               &made.win)) {
    made.error = detail::mpi::mpi_error(code);
    return made;
  }
  int rank = 0;
  int ranks = 0;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &ranks);
  std::vector<detail::mpi::segment> parts(static_cast<std::size_t>(ranks));
  for (int r = 0; r < ranks; ++r) {
    const window_part p = aligned_part(made.win, r);
    parts[static_cast<std::size_t>(r)] = {reinterpret_cast<std::uintptr_t>(p.base), p.bytes};
  }
  made.base = reinterpret_cast<void*>(parts[static_cast<std::size_t>(rank)].base);
  made.bytes = parts[static_cast<std::size_t>(rank)].bytes;
  made.placement.rank = rank;
  const rank_binding binding = detail::mpi::current_binding(topology::system());
  made.placement.node = binding.node;
  if (made.placement.node < 0)
    made.placement.error =
        std::error_code(detail::mpi::unreachable_node_error(binding.cpu), std::generic_category());
  else
    detail::mpi::place_part(parts[static_cast<std::size_t>(rank)], parts, made.placement.node,
                            options, made.placement);
  return made;
}

/// Collective over `comm`: at `root`, per rank, its binding, its node, the bytes of
/// data[0 .. count) per node and the fraction on its node (one query per rank); other ranks get
/// an empty table. Print it with locality_table::to_string(). Throws std::system_error
/// (mpi_category(), or the query's errno as locate() does) and std::logic_error.
template <class T>
locality_table gather_locality(const T* data, std::size_t count, MPI_Comm comm = MPI_COMM_WORLD,
                               int root = 0) {
  detail::mpi::require_running("numamove::mpi::gather_locality");
  return detail::mpi::gather_locality_of(bytes_per_node(data, count), comm, root,
                                         topology::system());
}

/// The same for each rank's private memory (anonymous mappings, heap, stacks; not shared
/// segments or files), counted from /proc/self/numa_maps.
inline locality_table gather_locality(MPI_Comm comm = MPI_COMM_WORLD, int root = 0) {
  detail::mpi::require_running("numamove::mpi::gather_locality");
  return detail::mpi::gather_locality_of(detail::mpi::private_bytes_per_node(), comm, root,
                                         topology::system());
}

}  // namespace numamove::mpi

#include "detail/public_header_end.hpp"
