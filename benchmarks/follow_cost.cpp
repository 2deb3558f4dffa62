// What follow_threads() costs beyond migrate() when nothing needs to move: the price of asking
// the team where it runs (one parallel region), learning the granule and planning, against one
// migrate() of the same bytes (one query). Runs on any machine, one node included: both calls
// find every page in place. Medians of 101 calls each, taking turns, each after a 5 ms pause.
//   follow_cost [MiB ...]     (default 1 8 64)
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include <numamove/numamove.hpp>
#include <numamove/openmp.hpp>

#include "timing.hpp"

int main(int argc, char** argv) {
  std::vector<std::size_t> sizes;
  for (int i = 1; i < argc; ++i) sizes.push_back(std::strtoul(argv[i], nullptr, 10));
  if (sizes.empty()) sizes = {1, 8, 64};
  const int threads = omp_get_max_threads();
  const int node = numamove::topology::system().current_node();
  std::printf("follow_cost: %d threads, nothing to move; medians of 101 calls\n", threads);
  std::printf("MiB,follow_threads_us,migrate_us,ratio\n");
  bool ok = true;
  for (const std::size_t mib : sizes) {
    const std::size_t count = (mib << 20) / sizeof(double);
    numamove::vector<double> followed(count);
    numamove::vector<double> migrated(count, 1.0);
    const numamove::openmp::static_schedule schedule{count, threads, 0};
    numamove::openmp::place_for_schedule(followed.data(), count, schedule);
    numamove::migrate(migrated, node);
    std::vector<double> follow_times;
    std::vector<double> migrate_times;
    for (int call = 0; call < 101; ++call) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      follow_times.push_back(numamove_bench::seconds(
          [&] { ok = numamove::openmp::follow_threads(followed.data(), count, schedule) && ok; }));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      migrate_times.push_back(
          numamove_bench::seconds([&] { ok = numamove::migrate(migrated, node) && ok; }));
    }
    const double follow = numamove_bench::median(follow_times);
    const double migrate = numamove_bench::median(migrate_times);
    std::printf("%zu,%.0f,%.0f,%.2f\n", mib, 1e6 * follow, 1e6 * migrate, follow / migrate);
  }
  return ok ? 0 : 1;
}
