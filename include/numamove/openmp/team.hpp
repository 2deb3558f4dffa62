// numamove/openmp/team.hpp: what the team calls of numamove/openmp.hpp take and report: the
// proc_bind of the loop, where each thread ran, what each thread and the team moved, and how
// much of each thread's chunk is local. Value types only; numamove/openmp.hpp runs the teams.
#pragma once
#include "../detail/public_header_begin.hpp"

#include <chrono>
#include <cstddef>
#include <system_error>
#include <vector>

#include "../flags.hpp"
#include "../migration_result.hpp"
#include "schedule.hpp"

namespace numamove::openmp {

/// The proc_bind clause of the loop a schedule describes. `inherit` is a loop without the
/// clause (the binding OMP_PROC_BIND and OMP_PLACES give); the others are the clause's values.
/// Without places (OMP_PLACES unset and OMP_PROC_BIND false) runtimes bind nothing, whatever
/// the clause says.
enum class proc_bind { inherit, primary, close, spread };

/// Where one thread of a team ran when numamove looked.
struct thread_binding {
  int thread = 0;         ///< omp_get_thread_num()
  int place = -1;         ///< omp_get_place_num(): -1 when the runtime bound it to no place
  /// The CPU it ran on. Where follow_threads() read a sleeping thread's binding from the kernel
  /// (team_migration::bindings_reused): its mask's CPU, or -1 for a mask of several CPUs.
  int cpu = -1;
  std::vector<int> cpus;  ///< its affinity mask, ascending: what the place or a re-pin allows
  int node = -1;          ///< the node for its data, as node_of_cpus() decides it
  bool pinned = false;    ///< true when the mask lies within `node` (the node cannot drift)
};

/// Which threads of place_for_schedule() and follow_threads() call migrate.
enum class movers {
  /// `team` from parallel_move_min_bytes of data per thread of the team on, else `caller`: each
  /// move_pages(2) call drains every CPU's page lists and shoots down the TLBs of the threads
  /// that use the memory, a fixed cost that concurrent small calls multiply.
  automatic,
  /// Once the team has found its nodes (and, in place_for_schedule(), touched its pages), the
  /// calling thread moves every page in one migration with a target per page: one set of
  /// call-level checks, one query and one move_pages(2) batch per node, however many threads.
  /// The team's other threads sleep meanwhile (not spinning: every moved page interrupts the
  /// CPUs that run the process's threads). migrate_options::workers may still
  /// split the one call.
  caller,
  /// Each thread moves its own pages with a migrate of its own, all threads at once: the team
  /// serves as the workers.
  team
};

/// How place_for_schedule() and follow_threads() run their team.
struct team_options {
  proc_bind bind = proc_bind::inherit;  ///< the proc_bind clause of the loop the schedule describes
  migrate_options migrate{};            ///< how the pages move (flags, path, retries, workers)
  movers moved_by = movers::automatic;  ///< which threads call migrate
};

/// What one thread did in place_for_schedule() or follow_threads().
struct thread_migration {
  thread_binding binding;         ///< where the thread ran; its pages went to binding.node
  std::size_t pages = 0;          ///< base pages the plan gave it
  std::size_t moved = 0;          ///< of those, pages moved to its node
  std::size_t already_local = 0;  ///< pages that were on its node before it moved any
  std::size_t not_present = 0;    ///< pages never touched, left unallocated (follow_threads only)
  std::size_t failed = 0;         ///< pages with another negative status (-EBUSY, -EFAULT, ...)
  std::size_t bytes = 0;          ///< bytes moved
  /// Call-level error of its moves, as migrate() reports them; with movers::caller, the error
  /// of the one call, given to every thread that had pages to move.
  std::error_code error;
  /// Time the thread spent on its pages; with movers::caller, the time of the one call.
  std::chrono::nanoseconds elapsed{0};
};

/// What a team did in place_for_schedule() or follow_threads().
struct team_migration {
  std::vector<thread_migration> threads;  ///< one per thread of the schedule
  backend used = backend::kernel;         ///< the path the moves took (never automatic)
  movers moved_by = movers::caller;       ///< who moved them (never automatic)
  std::size_t granule = 0;                ///< bytes of the blocks pages were given out in
  /// True when follow_threads() ran no parallel region: the team slept, so it read each
  /// thread's affinity from the kernel and took the thread ids and places from the last region
  /// of the same team (docs/openmp.md, "Following threads without waking them").
  bool bindings_reused = false;
  std::chrono::nanoseconds elapsed{0};    ///< the whole call, planning included

  std::size_t moved() const noexcept { return sum(&thread_migration::moved); }
  std::size_t already_local() const noexcept { return sum(&thread_migration::already_local); }
  std::size_t failed() const noexcept { return sum(&thread_migration::failed); }
  std::size_t bytes() const noexcept { return sum(&thread_migration::bytes); }

  /// True when no thread had a call-level error and no page failed.
  explicit operator bool() const noexcept {
    for (const thread_migration& t : threads)
      if (t.error || t.failed != 0) return false;
    return true;
  }

 private:
  std::size_t sum(std::size_t thread_migration::*field) const noexcept {
    std::size_t total = 0;
    for (const thread_migration& t : threads) total += t.*field;
    return total;
  }
};

/// The fraction of each thread's chunk on its thread's node.
struct locality_report {
  std::vector<thread_binding> bindings;  ///< where each thread ran when the report was made
  std::vector<thread_locality> threads;  ///< per thread, from one query of every page

  /// Local bytes over all bytes, every thread together; 1 for no bytes.
  double fraction() const noexcept {
    std::size_t bytes = 0;
    std::size_t local = 0;
    for (const thread_locality& t : threads) {
      bytes += t.bytes;
      local += t.local_bytes;
    }
    return bytes == 0 ? 1.0 : static_cast<double>(local) / static_cast<double>(bytes);
  }
};

}  // namespace numamove::openmp

#include "../detail/public_header_end.hpp"
