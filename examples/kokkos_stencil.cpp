// A Jacobi stencil on Kokkos Views in numamove's memory space: the grids are placed for the
// OpenMP threads of the loop that sweeps them (each thread's rows on its node, before Kokkos
// initializes anything), swept, then moved to one node, as when a job is re-pinned elsewhere.
// Prints where the Views are at each step. Run with OMP_PLACES=cores OMP_PROC_BIND=close.
//   kokkos_stencil [rows] [columns] [sweeps]    (defaults 2048, 1024, 20)
#include <cstdio>
#include <cstdlib>
#include <string>

#include <numamove/kokkos.hpp>

using numamove::kokkos::NumaSpace;
using grid = Kokkos::View<double**, Kokkos::LayoutRight, NumaSpace>;

static void where(const char* when, const grid& g) {
  std::string text;
  for (const auto& [node, bytes] : numamove::kokkos::bytes_per_node(g))
    text += " node " + std::to_string(node) + ": " + std::to_string(bytes >> 20) + " MiB";
  std::printf("%-22s %s:%s\n", when, g.label().c_str(), text.c_str());
}

int main(int argc, char** argv) {
  Kokkos::ScopeGuard kokkos(argc, argv);
  const std::size_t rows = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 2048;
  const std::size_t columns = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 1024;
  const int sweeps = argc > 3 ? std::atoi(argv[3]) : 20;
  using exec = NumaSpace::execution_space;
  const Kokkos::RangePolicy<exec> interior(1, static_cast<std::int64_t>(rows - 1));

#ifdef NUMAMOVE_KOKKOS_THREAD_PLACEMENT
  // Every row on the node of the thread that sweeps it (the policy over all rows: the View's
  // leading extent; the interior loop gives the same rows to the same threads but at the ends).
  const NumaSpace space =
      NumaSpace::for_range(Kokkos::RangePolicy<exec>(0, static_cast<std::int64_t>(rows)));
#else
  // Without Kokkos' OpenMP backend one thread sweeps: interleave over the nodes for bandwidth.
  const NumaSpace space(numamove::placement::interleave(numamove::topology::system().nodes()));
#endif
  grid a(Kokkos::view_alloc(space, "a"), rows, columns);
  grid b(Kokkos::view_alloc(space, "b"), rows, columns);
  Kokkos::deep_copy(Kokkos::subview(a, 0, Kokkos::ALL), 1.0);  // a hot top edge
  Kokkos::deep_copy(Kokkos::subview(b, 0, Kokkos::ALL), 1.0);
  where("placed", a);
  where("placed", b);

  for (int s = 0; s < sweeps; ++s) {
    Kokkos::parallel_for(
        "sweep", interior, KOKKOS_LAMBDA(const std::int64_t i) {
          for (std::size_t j = 1; j + 1 < columns; ++j)
            b(i, j) = 0.25 * (a(i - 1, j) + a(i + 1, j) + a(i, j - 1) + a(i, j + 1));
        });
    std::swap(a, b);
  }
  Kokkos::fence();

  // The job now runs on the last node only: move both grids there, same addresses.
  const int target = numamove::topology::system().nodes().back();
  for (grid* g : {&a, &b}) {
    const numamove::migration_result r = numamove::kokkos::migrate(*g, target);
    std::printf("migrate %s to node %d: %zu pages moved, %zu already there, %.1f ms%s%s\n",
                g->label().c_str(), target, r.moved, r.already_there,
                static_cast<double>(r.elapsed.count()) / 1e6, r ? "" : ", failed: ",
                r ? "" : (r.error ? r.error.message().c_str() : "some pages did not move"));
    where("moved", *g);
  }
  double edge = 0;
  Kokkos::parallel_reduce(
      "edge", Kokkos::RangePolicy<exec>(0, static_cast<std::int64_t>(columns)),
      KOKKOS_LAMBDA(const std::int64_t j, double& sum) {
        sum += a(1, static_cast<std::size_t>(j));
      },
      edge);
  std::printf("after %d sweeps: heat in row 1 = %.3f\n", sweeps, edge);
  return 0;
}
