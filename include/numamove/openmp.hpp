// numamove/openmp.hpp: data follows the OpenMP threads that compute on it. Opt-in: link
// numamove::openmp (the core stays free of OpenMP); this header includes <omp.h> itself.
//
//   team_bindings          where each thread of a team runs and which node that is
//   place_for_schedule     each thread places its chunk of an array on its node
//   follow_threads         at a phase boundary, move the chunks whose thread changed node
//   locality_for_schedule  the fraction of each thread's chunk on its node
//
// and, included here:
//
//   openmp/schedule.hpp    static_schedule, plan_for_schedule, locality_of, node_of_cpus: the
//                          pure planning (no OpenMP needed)
//   openmp/team.hpp        proc_bind, thread_binding, team_options, team_migration,
//                          locality_report: what the calls above take and report
//   openmp/next_touch.hpp  next_touch: pages move to the node of the thread that next touches
//                          them
//   openmp/follow_async.hpp  follow_async: follow_threads planned now, moved on numamove's
//                          mover thread while the caller computes
//
// docs/openmp.md describes the whole.
#pragma once
#include "detail/public_header_begin.hpp"

#include <omp.h>

#include <cstddef>
#include <stdexcept>
#include <system_error>
#include <type_traits>
#include <vector>

#include "detail/openmp/distribute.hpp"
#include "detail/openmp/team.hpp"
#include "migrate.hpp"
#include "migration_result.hpp"
#include "openmp/next_touch.hpp"
#include "openmp/schedule.hpp"
#include "openmp/team.hpp"
#include "topology.hpp"

namespace numamove::openmp {

/// Where each thread of a team of `threads`, bound as `bind` says, runs now (one parallel
/// region). Call it outside parallel regions. Throws std::runtime_error when the runtime gives a
/// team of another size (omp_set_dynamic, OMP_THREAD_LIMIT, a call inside a parallel region),
/// std::system_error when a thread's affinity cannot be read, and std::invalid_argument for
/// threads < 1.
inline std::vector<thread_binding> team_bindings(int threads, proc_bind bind = proc_bind::inherit) {
  if (threads < 1)
    throw std::invalid_argument("numamove::openmp: a team needs at least one thread");
  const topology& machine = topology::system();
  std::vector<thread_binding> bindings(static_cast<std::size_t>(threads));
  numamove::detail::openmp::team_errors errors;
  auto body = [&] {
    errors.guard([&] {
      bindings[static_cast<std::size_t>(omp_get_thread_num())] =
          numamove::detail::openmp::current_binding(machine);
    });
  };
  numamove::detail::openmp::in_team(threads, bind, body);
  errors.rethrow();
  return bindings;
}

/// Places data[0 .. count) for a loop with `schedule`, where iteration i works on the i-th of
/// schedule.iterations equal slices: in one parallel region bound as options.bind says (the
/// binding of that loop), each thread writes every page of its chunk once (a compare-exchange
/// of a byte with itself, so a page never touched gets one, allocated by the thread) and moves
/// the pages not on its node there. Pages are given out as plan_for_schedule() says, per huge
/// page where huge pages may back the data. Addresses and contents stay as they were. Call it
/// outside parallel regions, while no other thread writes the data; pages of a read-only mapping
/// are moved, not touched.
///
/// Move failures are reported, not thrown: per thread in `error` (a call-level error of
/// migrate(), or ENODEV for a thread on a CPU of a node without memory, whose pages stay where
/// they are) and `failed`. Throws std::invalid_argument when count does not split evenly over
/// the iterations or schedule.threads < 1, std::runtime_error when the runtime gives a team of
/// another size than schedule.threads, std::system_error when a thread's affinity cannot be
/// read, and std::bad_alloc.
template <class T>
team_migration place_for_schedule(T* data, std::size_t count, const static_schedule& schedule,
                                  const team_options& options = {}) {
  static_assert(!std::is_const_v<T>,
                "place_for_schedule writes every page once: pass non-const data");
  return detail::openmp::distribute(data, count * sizeof(T), schedule, options, true);
}

/// At a phase boundary, after the binding may have changed (another proc_bind or places, a
/// re-pinned thread, an unbound thread that drifted): each thread of a team bound as
/// options.bind says gets its node, and the pages of its chunk (as place_for_schedule() gives
/// chunks out, per huge page only where one may hold pages of two threads bound for different
/// nodes) that are elsewhere move there, through options.migrate.path, by the threads
/// options.moved_by names. The nodes come from one parallel region, or, with movers::caller
/// while the team sleeps, from the kernel without waking it (team_migration::bindings_reused).
/// A thread whose chunk is on its node already moves nothing (already_local), and pages never
/// touched stay so (not_present). Reports and throws as place_for_schedule() does.
template <class T>
team_migration follow_threads(T* data, std::size_t count, const static_schedule& schedule,
                              const team_options& options = {}) {
  return detail::openmp::distribute(data, count * sizeof(T), schedule, options, false);
}

/// For each thread of a team bound as `bind` says, the bytes of its slices of data[0 .. count)
/// (as in place_for_schedule()) on its node now: one parallel region to learn the nodes, then
/// one query of every page through the path `automatic` picks. Throws as team_bindings() does,
/// std::invalid_argument as place_for_schedule() does, and std::system_error as locate() does.
template <class T>
locality_report locality_for_schedule(const T* data, std::size_t count,
                                      const static_schedule& schedule,
                                      proc_bind bind = proc_bind::inherit) {
  bytes_per_iteration(count * sizeof(T), schedule);
  locality_report report;
  report.bindings = team_bindings(schedule.threads, bind);
  report.threads = locality_of(data, count * sizeof(T), schedule,
                               detail::openmp::nodes_of(report.bindings), locate(data, count));
  return report;
}

}  // namespace numamove::openmp

// The asynchronous follow_threads; last, since it builds on everything above.
#include "openmp/follow_async.hpp"

#include "detail/public_header_end.hpp"
