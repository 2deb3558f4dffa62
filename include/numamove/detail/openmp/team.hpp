// The live half of numamove/openmp.hpp: what a team reports (public names, reached through
// numamove/openmp.hpp), where the calling thread is bound, and running one body per thread of
// a team with a given proc_bind.
#pragma once

#include <omp.h>
#include <sched.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <exception>
#include <system_error>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../flags.hpp"
#include "../../migration_result.hpp"
#include "../../topology.hpp"
#include "../linux/syscalls.hpp"
#include "plan.hpp"

namespace numamove::openmp {

/// The proc_bind clause of the loop a schedule describes. `inherit` is a loop without the
/// clause (the binding OMP_PROC_BIND and OMP_PLACES give); the others are the clause's values.
/// Without places (OMP_PLACES unset and OMP_PROC_BIND false) runtimes bind nothing, whatever
/// the clause says.
enum class proc_bind { inherit, primary, close, spread };

/// Where one thread of a team ran when numamove looked.
struct thread_binding {
  int thread = 0;          ///< omp_get_thread_num()
  int place = -1;          ///< omp_get_place_num(): -1 when the runtime bound it to no place
  int cpu = -1;            ///< the CPU it ran on
  std::vector<int> cpus;   ///< its affinity mask, ascending: what the place or a re-pin allows
  int node = -1;           ///< the node for its data, as node_of_cpus() decides it
  bool pinned = false;     ///< true when the mask lies within `node` (the node cannot drift)
};

/// How place_for_schedule() and follow_threads() run their team.
struct team_options {
  proc_bind bind = proc_bind::inherit;  ///< the proc_bind clause of the loop the schedule describes
  migrate_options migrate{};            ///< how each thread moves its pages (flags, path, retries)
};

/// What one thread did in place_for_schedule() or follow_threads().
struct thread_migration {
  thread_binding binding;          ///< where the thread ran; its pages went to binding.node
  std::size_t pages = 0;           ///< base pages the plan gave it
  std::size_t moved = 0;           ///< of those, pages it moved to its node
  std::size_t already_local = 0;   ///< pages that were on its node before it moved any
  std::size_t not_present = 0;     ///< pages never touched, left unallocated (follow_threads only)
  std::size_t failed = 0;          ///< pages with another negative status (-EBUSY, -EFAULT, ...)
  std::size_t bytes = 0;           ///< bytes moved
  std::error_code error;           ///< call-level error of its moves, as migrate() reports them
  std::chrono::nanoseconds elapsed{0};  ///< time the thread spent on its pages
};

/// What a team did in place_for_schedule() or follow_threads().
struct team_migration {
  std::vector<thread_migration> threads;  ///< one per thread of the schedule
  backend used = backend::kernel;         ///< the path the moves took (never automatic)
  std::size_t granule = 0;                ///< bytes of the blocks pages were given out in
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
  std::vector<thread_binding> bindings;   ///< where each thread ran when the report was made
  std::vector<thread_locality> threads;   ///< per thread, from one query of every page

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

namespace numamove::detail::openmp {

/// The binding of the calling thread, which runs inside a parallel region.
inline numamove::openmp::thread_binding current_binding(const topology& machine) {
  numamove::openmp::thread_binding b;
  b.thread = omp_get_thread_num();
  b.place = omp_get_place_num();
  b.cpus = affinity_of(0);
  b.cpu = ::sched_getcpu();
  b.node = numamove::openmp::node_of_cpus(machine, b.cpus, b.cpu);
  b.pinned = b.node >= 0 && !b.cpus.empty();
  for (const int c : b.cpus) b.pinned = b.pinned && machine.node_of_cpu(c) == b.node;
  return b;
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
    if (omp_get_num_threads() == threads) body();
    else if (omp_get_thread_num() == 0) team = omp_get_num_threads();
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
  bool failed() const noexcept { return static_cast<bool>(first_); }
  void rethrow() const {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::exception_ptr first_;
};

}  // namespace numamove::detail::openmp
