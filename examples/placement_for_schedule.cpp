// Place an array for the static schedule of the loop that computes on it, then ask how local
// each thread's chunk is. Run with OMP_PLACES=cores OMP_PROC_BIND=close to bind the threads.
#include <omp.h>

#include <cstdio>

#include <numamove/numamove.hpp>
#include <numamove/openmp.hpp>

int main() {
  const int threads = omp_get_max_threads();
  numamove::vector<double> field(1 << 22);  // 32 MiB, not touched yet
  // The loop below: schedule(static) over every element, on `threads` threads.
  const numamove::openmp::static_schedule schedule{field.size(), threads, 0};

  // Each thread touches (or moves) its own chunk, on the node of the place it is bound to.
  const auto placed = numamove::openmp::place_for_schedule(field.data(), field.size(), schedule);
  if (!placed) std::printf("some pages could not be placed\n");

#pragma omp parallel for schedule(static) num_threads(threads)
  for (long i = 0; i < static_cast<long>(field.size()); ++i)
    field[static_cast<std::size_t>(i)] = 1.0 / (1.0 + static_cast<double>(i));

  const auto report = numamove::openmp::locality_for_schedule(field.data(), field.size(), schedule);
  for (std::size_t t = 0; t < report.threads.size(); ++t)
    std::printf("thread %zu on cpu %d (node %d): %.0f%% of its chunk is local\n", t,
                report.bindings[t].cpu, report.bindings[t].node,
                100 * report.threads[t].fraction());
  // Later, at a phase boundary where the binding changed: numamove::openmp::follow_threads(
  // field.data(), field.size(), schedule) moves only the chunks whose thread moved.
  return 0;
}
