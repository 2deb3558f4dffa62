// What follow_threads() costs beyond migrate() when nothing needs to move: the price of asking
// the team where it runs, learning the granule and planning, against one migrate() of the same
// bytes (one query). Runs on any machine, one node included: both calls find every page in
// place. follow_threads() is timed twice: straight after a parallel region (the team still
// spins, so it runs a region to learn the bindings and put the team to sleep), and after a
// pause (the team sleeps; it reads the bindings from the kernel and wakes no thread). libgomp's
// team spins about 20 ms after a region on the host, 100 to 500 ms in the emulated guests.
// Medians of `calls` calls of each, taking turns.
//   follow_cost [--pause-ms N (30)] [--calls N (51)] [MiB ...]     (default 1 8 64)
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <numamove/numamove.hpp>
#include <numamove/openmp.hpp>

#include "timing.hpp"

int main(int argc, char** argv) {
  std::vector<std::size_t> sizes;
  int pause_ms = 30;
  int calls = 51;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--pause-ms" && i + 1 < argc)
      pause_ms = std::atoi(argv[++i]);
    else if (arg == "--calls" && i + 1 < argc)
      calls = std::atoi(argv[++i]);
    else
      sizes.push_back(std::strtoul(argv[i], nullptr, 10));
  }
  if (sizes.empty()) sizes = {1, 8, 64};
  const int threads = omp_get_max_threads();
  const int node = numamove::topology::system().current_node();
  std::printf("follow_cost: %d threads, nothing to move; medians of %d calls, %d ms pauses\n",
              threads, calls, pause_ms);
  std::printf(
      "MiB,after_region_us,asleep_us,migrate_us,after_region_ratio,asleep_ratio,"
      "asleep_without_region\n");
  bool ok = true;
  const auto pause = [&] { std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms)); };
  for (const std::size_t mib : sizes) {
    const std::size_t count = (mib << 20) / sizeof(double);
    numamove::vector<double> followed(count);
    numamove::vector<double> migrated(count, 1.0);
    const numamove::openmp::static_schedule schedule{count, threads, 0};
    numamove::openmp::place_for_schedule(followed.data(), count, schedule);
    numamove::migrate(migrated, node);
    bool last_reused = false;
    const auto follow = [&] {
      const auto r = numamove::openmp::follow_threads(followed.data(), count, schedule);
      ok = r && ok;
      last_reused = r.bindings_reused;
    };
    std::vector<double> after_region_times;
    std::vector<double> asleep_times;
    std::vector<double> migrate_times;
    int without_region = 0;
    for (int call = 0; call < calls; ++call) {
      pause();
#pragma omp parallel num_threads(threads)
      ok = ok && omp_get_num_threads() == threads;
      after_region_times.push_back(numamove_bench::seconds(follow));
      pause();
      asleep_times.push_back(numamove_bench::seconds(follow));
      without_region += last_reused;
      pause();
      migrate_times.push_back(
          numamove_bench::seconds([&] { ok = numamove::migrate(migrated, node) && ok; }));
    }
    const double after_region = numamove_bench::median(after_region_times);
    const double asleep = numamove_bench::median(asleep_times);
    const double migrate = numamove_bench::median(migrate_times);
    std::printf("%zu,%.0f,%.0f,%.0f,%.2f,%.2f,%d/%d\n", mib, 1e6 * after_region, 1e6 * asleep,
                1e6 * migrate, after_region / migrate, asleep / migrate, without_region, calls);
  }
  return ok ? 0 : 1;
}
