// What numamove's MPI layer costs and buys, in one run under mpirun:
//   1. placing a rank at MPI_Init (place_rank: every thread's policy, and a move of the memory
//      touched before) against MPI_Init itself;
//   2. follow_rank() after a rebind (migrate_pages(2) of the whole process) against one
//      migrate() of the array, per MiB moved (the process holds more than the array);
//   3. the local fraction of each rank's segment of a shared window that rank 0 wrote whole,
//      without and with place_window_segments().
// Times are the slowest rank's. Needs two nodes with CPUs for 1 and 2 to move anything (on one
// node it says so); in the QEMU guests (a 4-node guest's node holds about 80 MiB free):
//   tests/vm/run-guest.sh --plain --mpirun 2 --shape 2node --binary build/benchmarks/mpi_placement
//   -- 32 tests/vm/run-guest.sh --plain --mpirun 4 --shape 4node --binary
//   build/benchmarks/mpi_placement -- 8
//
//   mpirun -np N mpi_placement [MiB per rank, default 64]
#include <mpi.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <numamove/mpi.hpp>
#include <numamove/numamove.hpp>

namespace {

using seconds = std::chrono::duration<double>;

double slowest(double mine) {
  double all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return all;
}

double mean(double mine) {
  double sum = 0;
  int ranks = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  MPI_Allreduce(&mine, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  return sum / ranks;
}

char* fresh(std::size_t bytes) {
  return static_cast<char*>(
      ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
}

// Writes `bytes` at `data` with the calling thread preferring `node` (-1: as it is). Preferred,
// not bound: every rank writes there, and a node of a small machine may not hold them all.
void write_on(char* data, std::size_t bytes, int node) {
  constexpr int preferred = 1;  // MPOL_PREFERRED
  unsigned long mask[16] = {};
  if (node >= 0) {
    mask[node / 64] |= 1UL << (node % 64);
    ::syscall(SYS_set_mempolicy, preferred, mask, 16 * 64 + 1);
  }
  std::memset(data, 1, bytes);
  ::syscall(SYS_set_mempolicy, 0, nullptr, 0);
}

// The fraction of the whole pages of this rank's segment of `win` that its own query finds on
// `node`, after mapping them.
double local_fraction(MPI_Win win, int rank, int node) {
  MPI_Aint size = 0;
  int unit = 0;
  char* base = nullptr;
  MPI_Win_shared_query(win, rank, &size, &unit, &base);
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const std::uintptr_t first = (reinterpret_cast<std::uintptr_t>(base) + page - 1) / page * page;
  const std::uintptr_t end =
      (reinterpret_cast<std::uintptr_t>(base) + static_cast<std::size_t>(size)) / page * page;
  if (end <= first) return 1.0;
  const auto* data = reinterpret_cast<const char*>(first);
  for (std::size_t i = 0; i < end - first; i += page)
    (void)static_cast<const volatile char*>(data)[i];  // mapped here
  std::size_t local = 0;
  for (const auto& [n, bytes] : numamove::bytes_per_node(data, end - first))
    if (n == node) local = bytes;
  return static_cast<double>(local) / static_cast<double>(end - first);
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 64;
  const std::size_t bytes = mib << 20;
  // Touched before MPI_Init, on the last node, so that the placement has something to move.
  const numamove::topology& machine = numamove::topology::system();
  char* early = fresh(bytes);
  write_on(early, bytes, machine.nodes().back());

  const auto init_started = std::chrono::steady_clock::now();
  MPI_Init(&argc, &argv);
  const double init = seconds(std::chrono::steady_clock::now() - init_started).count();
  int rank = 0;
  int ranks = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);

  // 1. place_rank against MPI_Init.
  const numamove::mpi::rank_placement placed = numamove::mpi::place_rank();
  const double place = seconds(placed.elapsed).count();
  const double moved_at_init = mean(static_cast<double>(placed.moved_bytes) / (1 << 20));
  const double init_all = slowest(init);
  const double place_all = slowest(place);
  if (rank == 0)
    std::printf(
        "ranks %d, %zu MiB per rank touched before MPI_Init on node %d, %zu nodes\n"
        "1. MPI_Init %.3f s; place_rank %.3f s (%.1f MiB moved per rank, %zu threads): %.2fx "
        "MPI_Init\n",
        ranks, mib, machine.nodes().back(), machine.nodes().size(), init_all, place_all,
        moved_at_init, placed.threads, place_all / init_all);
  std::fflush(stdout);

  // 2. follow_rank after a rebind against one migrate() of the same bytes.
  std::vector<int> with_cpus;
  for (const int n : machine.nodes())
    if (!machine.cpus_of(n).empty()) with_cpus.push_back(n);
  // Each rank moves to the next node with CPUs: a rotation, so that no node takes them all.
  const int home = placed.binding.node;
  int away = -1;
  for (std::size_t i = 0; i < with_cpus.size(); ++i)
    if (with_cpus[i] == home && with_cpus.size() > 1) away = with_cpus[(i + 1) % with_cpus.size()];
  int can_follow = home >= 0 && away >= 0 && placed.binding.pinned ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &can_follow, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (can_follow) {
    char* data = fresh(bytes);
    write_on(data, bytes, -1);  // the policy puts it on `home`
    numamove::mpi::bind_process(machine.cpus_of(away));
    MPI_Barrier(MPI_COMM_WORLD);
    const numamove::mpi::rank_placement followed = numamove::mpi::follow_rank();
    const double follow = slowest(seconds(followed.elapsed).count());
    const double follow_mib = mean(static_cast<double>(followed.moved_bytes) / (1 << 20));
    numamove::mpi::bind_process(placed.binding.cpus);
    MPI_Barrier(MPI_COMM_WORLD);
    const numamove::migration_result back = numamove::migrate(data, bytes, home);
    const double migrate = slowest(seconds(back.elapsed).count());
    const double migrate_mib = mean(static_cast<double>(back.bytes) / (1 << 20));
    numamove::mpi::follow_rank();  // the rest of the process home too
    if (rank == 0)
      std::printf(
          "2. follow_rank %.3f s (%.1f MiB of private memory moved per rank, via %s, %.0f MiB/s); "
          "migrate() of the array back %.3f s (%.1f MiB, %.0f MiB/s): follow_rank %.2fx migrate "
          "per MiB\n",
          follow, follow_mib, numamove::to_string(followed.used), follow_mib / follow, migrate,
          migrate_mib, migrate_mib / migrate, (follow / follow_mib) / (migrate / migrate_mib));
    std::fflush(stdout);
    ::munmap(data, bytes);
  } else if (rank == 0) {
    std::printf("2. follow_rank: skipped, needs every rank pinned and a second node with CPUs\n");
  }

  // 3. A window rank 0 writes whole: each rank's local fraction of its segment.
  MPI_Comm host = MPI_COMM_NULL;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &host);
  const std::size_t segment = bytes / 4;
  double fractions[2] = {0, 0};
  double placing = 0;
  for (int with_numamove = 0; with_numamove < 2; ++with_numamove) {
    MPI_Info info = MPI_INFO_NULL;
    MPI_Info_create(&info);
    MPI_Info_set(info, "numamove_window", "none");  // a no-op unless the hooks are preloaded
    void* base = nullptr;
    MPI_Win win = MPI_WIN_NULL;
    MPI_Win_allocate_shared(static_cast<MPI_Aint>(segment), 1, info, host, &base, &win);
    MPI_Info_free(&info);
    if (rank == 0)
      for (int r = 0; r < ranks; ++r) {
        MPI_Aint size = 0;
        int unit = 0;
        char* part = nullptr;
        MPI_Win_shared_query(win, r, &size, &unit, &part);
        std::memset(part, 2, static_cast<std::size_t>(size));
      }
    MPI_Barrier(host);
    if (with_numamove) {
      const auto started = std::chrono::steady_clock::now();
      numamove::mpi::place_window_segments(win);
      placing = slowest(seconds(std::chrono::steady_clock::now() - started).count());
    }
    MPI_Barrier(host);
    fractions[with_numamove] = mean(local_fraction(win, rank, home));
    MPI_Win_free(&win);
  }
  MPI_Comm_free(&host);
  if (rank == 0)
    std::printf(
        "3. window of %zu MiB per rank written by rank 0: local fraction %.1f%% without numamove, "
        "%.1f%% with "
        "place_window_segments (%.3f s)\n",
        segment >> 20, 100.0 * fractions[0], 100.0 * fractions[1], placing);
  ::munmap(early, bytes);
  MPI_Finalize();
  return 0;
}
