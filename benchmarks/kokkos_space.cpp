// numamove's Kokkos memory space against Kokkos' HostSpace, in one run, as ratios:
//   1. constructing a View (allocation and Kokkos' initialization) in NumaSpace, placed on a
//      node, against the same View in HostSpace (goal: at most 1.05x); with Kokkos' OpenMP
//      backend also placed for the threads of a parallel_for over it (NumaSpace::for_range);
//   2. numamove::kokkos::migrate(view, node) against numamove::migrate() of the same memory.
//   kokkos_space [MiB] [rounds]     (defaults 256 and 7)
// Moves alternate between the first and the last node: on a one-node machine every page is
// "already there" and part 2 measures the bookkeeping only.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <numamove/kokkos.hpp>

#include "timing.hpp"

namespace {

using numamove_bench::median;
using numamove_bench::seconds;

}  // namespace

int main(int argc, char** argv) {
  Kokkos::ScopeGuard kokkos(argc, argv);
  const std::size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 256;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 7;
  const std::size_t n = (mib << 20) / sizeof(double);
  const std::vector<int> nodes = numamove::topology::system().nodes();
  using numamove::kokkos::NumaSpace;
  const NumaSpace placed(numamove::placement::on_node(nodes.front()));
  std::printf("kokkos_space: %zu MiB, %d rounds, Kokkos %d, %s, %zu node(s)\n", mib, rounds,
              KOKKOS_VERSION, Kokkos::DefaultHostExecutionSpace::name(), nodes.size());

  // 1. Construction, HostSpace and NumaSpace alternating so that drift hits both; the View is
  //    destroyed outside the timing. One warm-up round of each first.
  std::vector<double> host_s, numa_s;
  for (int r = -1; r < rounds; ++r) {
    double h = 0, m = 0;
    {
      Kokkos::View<double*, Kokkos::HostSpace>* v = nullptr;
      h = seconds([&] { v = new Kokkos::View<double*, Kokkos::HostSpace>("host", n); });
      delete v;
    }
    {
      Kokkos::View<double*, NumaSpace>* v = nullptr;
      m = seconds(
          [&] { v = new Kokkos::View<double*, NumaSpace>(Kokkos::view_alloc(placed, "numa"), n); });
      delete v;
    }
    if (r >= 0) {
      host_s.push_back(h);
      numa_s.push_back(m);
    }
  }
  const double host = median(host_s), numa = median(numa_s);
  std::printf(
      "View construction (allocate + initialize): HostSpace %.1f ms, NumaSpace on node %d %.1f ms: "
      "%.3fx\n",
      host * 1e3, nodes.front(), numa * 1e3, numa / host);
#ifdef NUMAMOVE_KOKKOS_THREAD_PLACEMENT
  // The same View placed for the threads of a parallel_for over it: one more parallel region,
  // in which every thread touches its pages and queries them.
  const NumaSpace for_loop =
      NumaSpace::for_range(Kokkos::RangePolicy<Kokkos::OpenMP>(0, static_cast<std::int64_t>(n)));
  std::vector<double> loop_s;
  for (int r = -1; r < rounds; ++r) {
    Kokkos::View<double*, NumaSpace>* v = nullptr;
    const double t = seconds(
        [&] { v = new Kokkos::View<double*, NumaSpace>(Kokkos::view_alloc(for_loop, "loop"), n); });
    delete v;
    if (r >= 0) loop_s.push_back(t);
  }
  std::printf("View construction, NumaSpace::for_range (%d threads) %.1f ms: %.3fx HostSpace\n",
              for_loop.schedule()->threads, median(loop_s) * 1e3, median(loop_s) / host);
#endif

  // 2. migrate(view) against migrate() of the same pages; both move every page each round.
  Kokkos::View<double*, NumaSpace> v(Kokkos::view_alloc(placed, "moved"), n);
  Kokkos::deep_copy(v, 1.0);
  std::vector<double> view_s, raw_s;
  std::size_t moved = 0, pages = 0;
  int target = nodes.front();
  for (int r = 0; r < rounds; ++r) {
    target = target == nodes.front() ? nodes.back() : nodes.front();
    numamove::migration_result a, b;
    view_s.push_back(seconds([&] { a = numamove::kokkos::migrate(v, target); }));
    target = target == nodes.front() ? nodes.back() : nodes.front();
    raw_s.push_back(seconds([&] { b = numamove::migrate(v.data(), v.span(), target); }));
    if (!a || !b) {
      std::printf("a move failed: %s\n", (a.error ? a.error : b.error).message().c_str());
      return 1;
    }
    moved += a.moved + b.moved;
    pages += a.status.size() + b.status.size();
  }
  const double by_view = median(view_s), by_raw = median(raw_s);
  std::printf(
      "migrate: of the View %.1f ms, of its memory %.1f ms: %.3fx (%zu of %zu pages moved)\n",
      by_view * 1e3, by_raw * 1e3, by_view / by_raw, moved, pages);
  return 0;
}
