// How the team calls of numamove/openmp.hpp run a team: one parallel region with a given
// proc_bind, the binding of the calling thread, and the first exception of any thread.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/openmp/team.hpp is internal: include a public numamove header"
#endif

#include <omp.h>
#include <sched.h>

#include <exception>
#include <stdexcept>
#include <string>

#include "../../openmp/schedule.hpp"
#include "../../openmp/team.hpp"
#include "../../topology.hpp"
#include "../linux/syscalls.hpp"

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
