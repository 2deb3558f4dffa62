// How the team calls of numamove/openmp.hpp run a team: one parallel region with a given
// proc_bind, the binding of the calling thread, the bindings of a sleeping team read from the
// kernel without waking it, and the first exception of any thread.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/openmp/team.hpp is internal: include a public numamove header"
#endif

#include <omp.h>
#include <sched.h>

#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../openmp/schedule.hpp"
#include "../../openmp/team.hpp"
#include "../../topology.hpp"
#include "../linux/syscalls.hpp"

namespace numamove::detail::openmp {

/// Sets b.node from b.cpus and b.cpu, as node_of_cpus() decides it, and b.pinned.
inline void decide_node(const topology& machine, numamove::openmp::thread_binding& b) {
  b.node = numamove::openmp::node_of_cpus(machine, b.cpus, b.cpu);
  b.pinned = b.node >= 0 && !b.cpus.empty();
  for (const int c : b.cpus) b.pinned = b.pinned && machine.node_of_cpu(c) == b.node;
}

/// The binding of the calling thread: a thread of a parallel region, or the primary thread
/// outside one (thread 0, on the place its next team's thread 0 gets).
inline numamove::openmp::thread_binding current_binding(const topology& machine) {
  numamove::openmp::thread_binding b;
  b.thread = omp_get_thread_num();
  b.place = omp_get_place_num();
  b.cpus = affinity_of(0);
  b.cpu = ::sched_getcpu();
  decide_node(machine, b);
  return b;
}

/// `learned` (what a region said of a thread) with the affinity thread `tid` has now, read from
/// the kernel without waking it; its CPU is the mask's one CPU, else unknown (-1). None when the
/// thread has exited.
inline std::optional<numamove::openmp::thread_binding> binding_now(
    const topology& machine, pid_t tid, numamove::openmp::thread_binding learned) {
  try {
    learned.cpus = affinity_of(tid);
  } catch (const std::system_error&) {
    return std::nullopt;
  }
  learned.cpu = learned.cpus.size() == 1 ? learned.cpus.front() : -1;
  decide_node(machine, learned);
  return learned;
}

/// What decides which thread of the runtime's pool takes each thread number, and which place it
/// gets, in a team the calling thread starts: the team's size and proc_bind clause, the
/// runtime's settings, and the calling thread's place and place partition. The OpenMP affinity
/// rules give each thread number the same place in teams of the same shape, and runtimes give it
/// the same pool thread.
struct team_shape {
  int threads = 0;
  numamove::openmp::proc_bind bind = numamove::openmp::proc_bind::inherit;
  int bind_var = 0;  // omp_get_proc_bind(): what `inherit` binds as
  bool dynamic = false;
  int thread_limit = 0;
  int place = -1;
  std::vector<int> partition;

  bool operator==(const team_shape& o) const {
    return threads == o.threads && bind == o.bind && bind_var == o.bind_var &&
           dynamic == o.dynamic && thread_limit == o.thread_limit && place == o.place &&
           partition == o.partition;
  }
};

/// The shape of a team of `threads` bound as `bind`, started by the calling thread now.
inline team_shape shape_of_team(int threads, numamove::openmp::proc_bind bind) {
  team_shape shape;
  shape.threads = threads;
  shape.bind = bind;
  shape.bind_var = static_cast<int>(omp_get_proc_bind());
  shape.dynamic = omp_get_dynamic() != 0;
  shape.thread_limit = omp_get_thread_limit();
  shape.place = omp_get_place_num();
  shape.partition.resize(static_cast<std::size_t>(omp_get_partition_num_places()));
  if (!shape.partition.empty()) omp_get_partition_place_nums(shape.partition.data());
  return shape;
}

/// The team a region of the calling thread ran last: its shape, the kernel thread id of each of
/// its threads, and their bindings then.
struct learned_team {
  team_shape shape;
  std::vector<pid_t> thread_ids;
  std::vector<numamove::openmp::thread_binding> bindings;
};

/// Per thread that starts teams: each has a thread pool of its own.
inline thread_local std::optional<learned_team> last_learned_team;

/// The bindings a team of `shape` would have now, read from the kernel without waking it, when
/// the calling thread last ran a team of that shape, is outside any parallel region, and the
/// other threads of that team sleep; each thread's affinity is read now, so a re-pin is seen.
/// None when a thread is not pinned within one node (an unpinned thread's node is wherever it
/// runs next), and when a thread runs: one that spins (the runtime's wait after a region) is put
/// to sleep by a region before pages move, which the move needs, since every moved page
/// interrupts the CPUs that run the process's threads.
inline std::optional<std::vector<numamove::openmp::thread_binding>> bindings_without_waking(
    const topology& machine, const team_shape& shape) {
  const std::optional<learned_team>& learned = last_learned_team;
  if (!learned || omp_get_level() != 0 || !(learned->shape == shape)) return std::nullopt;
  const std::vector<pid_t>& ids = learned->thread_ids;
  // A thread that runs gains CPU time between two looks; one that sleeps does not.
  std::vector<long long> ran(ids.size(), 0);
  for (std::size_t t = 1; t < ids.size(); ++t)
    if ((ran[t] = thread_cpu_time(ids[t])) < 0) return std::nullopt;
  std::vector<numamove::openmp::thread_binding> bindings{current_binding(machine)};
  for (std::size_t t = 1; t < ids.size(); ++t) {
    auto now = binding_now(machine, ids[t], learned->bindings[t]);
    if (!now) return std::nullopt;
    bindings.push_back(std::move(*now));
  }
  for (std::size_t t = 1; t < ids.size(); ++t)
    if (thread_cpu_time(ids[t]) != ran[t]) return std::nullopt;
  for (const numamove::openmp::thread_binding& b : bindings)
    if (!b.pinned) return std::nullopt;
  return bindings;
}

/// One parallel region of (at most) `threads` threads, bound as `bind` says, running body().
template <class Body>
void run_team(int threads, numamove::openmp::proc_bind bind, const Body& body) {
  using numamove::openmp::proc_bind;
  switch (bind) {
    case proc_bind::inherit:
#pragma omp parallel num_threads(threads)
      body();
      break;
    case proc_bind::primary:
#if _OPENMP >= 202011
#pragma omp parallel num_threads(threads) proc_bind(primary)
#else
#pragma omp parallel num_threads(threads) proc_bind(master)
#endif
      body();
      break;
    case proc_bind::close:
#pragma omp parallel num_threads(threads) proc_bind(close)
      body();
      break;
    case proc_bind::spread:
#pragma omp parallel num_threads(threads) proc_bind(spread)
      body();
      break;
  }
}

/// Runs body() on every thread of a team of `threads`, bound as `bind` says. When the runtime
/// gives a team of another size (omp_set_dynamic, OMP_THREAD_LIMIT, a nested region), no thread
/// runs body() and std::runtime_error is thrown once the team has joined.
template <class Body>
void in_team(int threads, numamove::openmp::proc_bind bind, Body& body) {
  int team = threads;
  const auto sized = [&] {
    if (omp_get_num_threads() == threads)
      body();
    else if (omp_get_thread_num() == 0)
      team = omp_get_num_threads();
  };
  run_team(threads, bind, sized);
  if (team != threads)
    throw std::runtime_error("numamove::openmp: asked for a team of " + std::to_string(threads) +
                             " threads, the OpenMP runtime gave " + std::to_string(team));
}

/// The first exception any thread of a team raised, rethrown once the team has joined:
/// an exception must not leave a parallel region.
class team_errors {
 public:
  template <class F>
  void guard(F&& f) noexcept {
    try {
      f();
    } catch (...) {
#pragma omp critical(numamove_openmp_team_errors)
      if (!first_) first_ = std::current_exception();
    }
  }
  /// Whether a thread has failed; read it only after a barrier.
  bool failed() const noexcept {
    return static_cast<bool>(first_);
  }
  void rethrow() const {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::exception_ptr first_;
};

}  // namespace numamove::detail::openmp
