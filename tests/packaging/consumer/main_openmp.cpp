// A user's OpenMP program: the opt-in header brings <omp.h> with it.
#include <cstdio>
#include <numamove/numamove.hpp>
#include <numamove/openmp.hpp>

int main() {
  numamove::vector<double> field(1 << 18);
  const numamove::openmp::static_schedule schedule{field.size(), omp_get_max_threads(), 0};
  const auto placed = numamove::openmp::place_for_schedule(field.data(), field.size(), schedule);
  const auto report = numamove::openmp::locality_for_schedule(field.data(), field.size(), schedule);
  std::printf("placed for %zu threads; thread 0 has %.0f%% of its chunk local\n",
              report.threads.size(), 100 * report.threads[0].fraction());
  return placed ? 0 : 1;
}
