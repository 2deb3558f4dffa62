// An MPI+OpenMP stencil whose data follows its ranks.
//
// A 1-D decomposed grid: each rank owns `rows` rows plus a halo row on each side, exchanges the
// halos with its neighbours (MPI_Sendrecv) and advances its rows with a 3-point stencil in an
// OpenMP loop. numamove places the rank (place_rank) and each thread's rows (place_for_schedule);
// between phases every rank is rebound to the CPUs of the next node (bind_process, as a
// malleable job or a load balancer would), and follow_rank() moves the rank's memory after it;
// follow_threads() then moves each thread's rows to its thread's node. Rank 0 prints, per
// phase, the gathered locality table of the grid and what moved.
//
//   mpirun -np 4 mpi_halo_exchange [--rows N] [--columns N] [--steps N] [--phases N]
//
// On a one-node machine, in the 4-node QEMU guest (docs/mpi.md), one rank per node:
//   tests/vm/run-guest.sh --plain --mpirun 4 --shape 4node --env OMP_NUM_THREADS=1 --binary
//   build/examples/mpi_halo_exchange
#include <mpi.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <numamove/mpi.hpp>
#include <numamove/numamove.hpp>
#include <numamove/openmp.hpp>

namespace {

struct settings {
  std::size_t rows = 512;      // per rank
  std::size_t columns = 1024;  // 8 KiB rows: whole pages
  int steps = 20;
  int phases = 3;
};

settings parse(int argc, char** argv) {
  settings s;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string option = argv[i];
    const long value = std::atol(argv[i + 1]);
    if (option == "--rows")
      s.rows = static_cast<std::size_t>(value);
    else if (option == "--columns")
      s.columns = static_cast<std::size_t>(value);
    else if (option == "--steps")
      s.steps = static_cast<int>(value);
    else if (option == "--phases")
      s.phases = static_cast<int>(value);
  }
  return s;
}

// One phase of the stencil: halo exchange, then the rows, `steps` times. Returns seconds.
double advance(std::vector<double, numamove::allocator<double>>& grid,
               std::vector<double, numamove::allocator<double>>& next, const settings& s, int rank,
               int ranks) {
  const auto started = std::chrono::steady_clock::now();
  const std::size_t n = s.columns;
  const int up = rank == 0 ? MPI_PROC_NULL : rank - 1;
  const int down = rank == ranks - 1 ? MPI_PROC_NULL : rank + 1;
  for (int step = 0; step < s.steps; ++step) {
    // Row 0 and row rows + 1 are the halos.
    MPI_Sendrecv(&grid[1 * n], static_cast<int>(n), MPI_DOUBLE, up, 0, &grid[(s.rows + 1) * n],
                 static_cast<int>(n), MPI_DOUBLE, down, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Sendrecv(&grid[s.rows * n], static_cast<int>(n), MPI_DOUBLE, down, 1, &grid[0],
                 static_cast<int>(n), MPI_DOUBLE, up, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
#pragma omp parallel for schedule(static)
    for (std::size_t row = 1; row <= s.rows; ++row)
      for (std::size_t c = 0; c < n; ++c)
        next[row * n + c] = 0.25 * grid[(row - 1) * n + c] + 0.5 * grid[row * n + c] +
                            0.25 * grid[(row + 1) * n + c];
    grid.swap(next);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int rank = 0;
  int ranks = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const settings s = parse(argc, argv);
  const numamove::topology& machine = numamove::topology::system();

  // The rank's memory on its node from now on; the grid's rows on their threads' nodes.
  const numamove::mpi::rank_placement placed = numamove::mpi::place_rank();
  if (placed.error)
    std::fprintf(stderr, "rank %d: place_rank: %s\n", rank, placed.error.message().c_str());
  const std::size_t cells = (s.rows + 2) * s.columns;
  std::vector<double, numamove::allocator<double>> grid(cells, 0.0), next(cells, 0.0);
  if (rank == 0)
    std::fill(grid.begin(), grid.begin() + static_cast<std::ptrdiff_t>(s.columns),
              100.0);  // a hot edge
  const numamove::openmp::static_schedule rows{s.rows + 2, omp_get_max_threads(), 0};
  numamove::openmp::place_for_schedule(grid.data(), grid.size(), rows);
  numamove::openmp::place_for_schedule(next.data(), next.size(), rows);

  std::vector<int> with_cpus;
  for (const int node : machine.nodes())
    if (!machine.cpus_of(node).empty()) with_cpus.push_back(node);

  for (int phase = 0; phase < s.phases; ++phase) {
    std::size_t moved = 0;
    std::size_t left = 0;  // pages the kernel could not move (busy)
    double follow_seconds = 0;
    if (phase > 0) {
      // Rebind: every rank to the CPUs of the node `phase` places after its first one.
      const int first_node = placed.binding.node < 0 ? with_cpus.front() : placed.binding.node;
      const auto at = std::find(with_cpus.begin(), with_cpus.end(), first_node) - with_cpus.begin();
      const int node = with_cpus[static_cast<std::size_t>(at + phase) % with_cpus.size()];
      numamove::mpi::bind_process(machine.cpus_of(node));
      const numamove::mpi::rank_placement followed = numamove::mpi::follow_rank();
      const numamove::openmp::team_migration threads =
          numamove::openmp::follow_threads(grid.data(), grid.size(), rows);
      numamove::openmp::follow_threads(next.data(), next.size(), rows);
      moved = followed.moved_bytes + threads.bytes();
      follow_seconds = std::chrono::duration<double>(followed.elapsed + threads.elapsed).count();
      if (followed.error)
        std::fprintf(stderr, "rank %d: follow_rank: %s\n", rank, followed.error.message().c_str());
      left = followed.pages_not_moved;
    }
    const double seconds = advance(grid, next, s, rank, ranks);
    const numamove::mpi::locality_table table =
        numamove::mpi::gather_locality(grid.data(), grid.size());
    double slowest = 0;
    double slowest_follow = 0;
    unsigned long long moved_total = 0;
    unsigned long long left_total = 0;
    const unsigned long long mine = moved;
    const unsigned long long mine_left = left;
    MPI_Reduce(&seconds, &slowest, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    MPI_Reduce(&follow_seconds, &slowest_follow, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    MPI_Reduce(&mine, &moved_total, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Reduce(&mine_left, &left_total, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0)
      std::printf(
          "phase %d: %d steps in %.3f s; followed the ranks: %.1f MiB moved (%llu pages busy) in "
          "%.3f s; "
          "grid %.1f%% local\n%s\n",
          phase, s.steps, slowest, static_cast<double>(moved_total) / (1 << 20), left_total,
          slowest_follow, 100.0 * table.fraction(), table.to_string().c_str());
  }
  numamove::mpi::bind_process(placed.binding.cpus);
  MPI_Finalize();
  return 0;
}
