// Benchmark (not a test): a 5-point stencil's time per step with each thread's rows local, remote
// (the threads re-pinned one node over) and after follow_threads(); and what follow_threads()
// costs against migrate() of the same bytes in as many calls, moved by the caller in one call per
// array and by every thread at once (openmp::movers). Each move comes after one stencil step and
// a pause of --pause-ms (default 2000: the team asleep by then, its spinning after the region
// over even in the emulated guests; 0: the team just out of a parallel region, as
// between an application's phases); the moves take turns, --repeat times, and the medians are
// compared. Prints ratios measured in one run; in an emulated guest, only those mean anything.
//
//   stencil_follow [--rows N] [--columns N] [--steps N] [--repeat N] [--pause-ms N]
#include <omp.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <numamove/numamove.hpp>
#include <numamove/openmp.hpp>

#include "timing.hpp"

namespace {

void pin_team(const std::vector<int>& nodes) {
#pragma omp parallel num_threads(static_cast <int>(nodes.size()))
  {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (const int cpu : numamove::topology::system().cpus_of(
             nodes[static_cast<std::size_t>(omp_get_thread_num())]))
      CPU_SET(cpu, &set);
    ::sched_setaffinity(0, sizeof set, &set);
  }
}

// MPOL_LOCAL: placed as by first touch, and out of automatic NUMA balancing's way.
void keep_from_numa_balancing(void* data, std::size_t bytes) {
  ::syscall(SYS_mbind, data, bytes, 4, nullptr, 0UL, 0U);
}

// `steps` steps of a five-point stencil from u into next, the arrays swapped after each.
void stencil_steps(numamove::vector<double>& u, numamove::vector<double>& next, std::size_t rows,
                   std::size_t columns, int threads, int steps) {
  for (int step = 0; step < steps; ++step) {
    const double* in = u.data();
    double* out = next.data();
#pragma omp parallel for schedule(static) num_threads(threads)
    for (long i = 0; i < static_cast<long>(rows); ++i) {
      const std::size_t row = static_cast<std::size_t>(i) * columns;
      if (i == 0 || i == static_cast<long>(rows) - 1) {
        std::memcpy(out + row, in + row, columns * sizeof(double));
        continue;
      }
      out[row] = in[row];
      out[row + columns - 1] = in[row + columns - 1];
      for (std::size_t j = 1; j + 1 < columns; ++j) {
        const std::size_t c = row + j;
        out[c] =
            in[c] + 0.2 * (in[c - columns] + in[c + columns] + in[c - 1] + in[c + 1] - 4.0 * in[c]);
      }
    }
    u.swap(next);
  }
}

// The median of `repeat` runs of `steps` stencil steps, in seconds per step.
double time_per_step(numamove::vector<double>& u, numamove::vector<double>& next, std::size_t rows,
                     std::size_t columns, int threads, int steps, int repeat) {
  std::vector<double> runs;
  for (int r = 0; r < repeat; ++r)
    runs.push_back(
        numamove_bench::seconds([&] { stencil_steps(u, next, rows, columns, threads, steps); }) /
        steps);
  return numamove_bench::median(runs);
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t rows = 4096;
  std::size_t columns = 2048;
  int steps = 5;
  int repeat = 3;
  int pause_ms = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string arg = argv[i];
    if (arg == "--rows")
      rows = std::strtoul(argv[i + 1], nullptr, 10);
    else if (arg == "--columns")
      columns = std::strtoul(argv[i + 1], nullptr, 10);
    else if (arg == "--steps")
      steps = std::atoi(argv[i + 1]);
    else if (arg == "--repeat")
      repeat = std::atoi(argv[i + 1]);
    else if (arg == "--pause-ms")
      pause_ms = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr,
                   "usage: %s [--rows N] [--columns N] [--steps N] [--repeat N] [--pause-ms N]\n",
                   argv[0]);
      return 2;
    }
  }
  const numamove::topology& machine = numamove::topology::system();
  std::vector<int> nodes;
  for (const int node : machine.nodes())
    if (!machine.cpus_of(node).empty() && nodes.size() < 8) nodes.push_back(node);
  if (nodes.size() < 2) {
    std::printf(
        "SKIPPED: stencil_follow needs 2 NUMA nodes with CPUs, this machine has %zu "
        "(tests/vm/run-guest.sh --shape 4node runs it in a guest)\n",
        nodes.size());
    return 77;
  }
  const int threads = static_cast<int>(nodes.size());
  std::vector<int> home(nodes.size());
  std::vector<int> over(nodes.size());
  for (std::size_t t = 0; t < nodes.size(); ++t) {
    home[t] = nodes[t];
    over[t] = nodes[(t + 1) % nodes.size()];
  }
  const std::size_t count = rows * columns;
  const double mib = static_cast<double>(2 * count * sizeof(double)) / (1 << 20);
  std::printf(
      "stencil_follow: %d threads on %zu nodes, grid %zu x %zu, 2 arrays, %.1f MiB; median of %d "
      "runs of %d steps\n",
      threads, nodes.size(), rows, columns, mib, repeat, steps);

  numamove::vector<double> u(count);
  numamove::vector<double> next(count);
  keep_from_numa_balancing(u.data(), count * sizeof(double));
  keep_from_numa_balancing(next.data(), count * sizeof(double));
  const numamove::openmp::static_schedule schedule{rows, threads, 0};

  pin_team(home);
  numamove::openmp::place_for_schedule(u.data(), count, schedule);
  numamove::openmp::place_for_schedule(next.data(), count, schedule);
  const double local = time_per_step(u, next, rows, columns, threads, steps, repeat);

  pin_team(over);
  const double remote = time_per_step(u, next, rows, columns, threads, steps, repeat);

  // The moves, in turn: follow_threads() by the caller (one call per array), by the team, and
  // migrate() of two other arrays of the same kind and size from one thread to one node. Each
  // follows one stencil step and the pause; each moves everything (the team and the arrays go back
  // and forth between its two placements).
  numamove::vector<double> single_u(count, 1.0);
  numamove::vector<double> single_next(count, 1.0);
  keep_from_numa_balancing(single_u.data(), count * sizeof(double));
  keep_from_numa_balancing(single_next.data(), count * sizeof(double));
  const int from = numamove::topology::system().current_node();
  const int to = nodes[from == nodes[0] ? 1 : 0];
  struct move_times {
    std::vector<double> seconds;
    std::size_t bytes = 0;  // of the first run
    bool ok = true;
  };
  move_times by_caller;
  move_times by_team;
  move_times by_migrate;
  double followed = 0;
  // One stencil step on the arrays about to move (their pages just touched by the team, as in
  // an application), the pause, then the timed move.
  const auto timed = [&](move_times& times, numamove::vector<double>& in,
                         numamove::vector<double>& out, auto move) {
    time_per_step(in, out, rows, columns, threads, 1, 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
    std::pair<std::size_t, bool> moved;
    times.seconds.push_back(numamove_bench::seconds([&] { moved = move(); }));
    const auto [bytes, ok] = moved;
    if (times.bytes == 0) times.bytes = bytes;
    times.ok = times.ok && ok;
  };
  int caller_calls = 0;
  int caller_calls_without_region = 0;  // the team slept: its bindings read from the kernel
  const auto follow = [&](numamove::openmp::movers who) {
    numamove::openmp::team_options options;
    options.moved_by = who;
    const auto moved_u = numamove::openmp::follow_threads(u.data(), count, schedule, options);
    const auto moved_next = numamove::openmp::follow_threads(next.data(), count, schedule, options);
    if (who == numamove::openmp::movers::caller) {
      caller_calls += 2;
      caller_calls_without_region += moved_u.bindings_reused + moved_next.bindings_reused;
    }
    return std::pair{moved_u.bytes() + moved_next.bytes(), moved_u && moved_next};
  };
  bool team_home = false;  // the team is pinned one node over (above)
  for (int r = 0; r < repeat; ++r) {
    timed(by_caller, u, next, [&] { return follow(numamove::openmp::movers::caller); });
    if (r == 0) followed = time_per_step(u, next, rows, columns, threads, steps, repeat);
    pin_team(team_home ? over : home);
    team_home = !team_home;
    timed(by_team, u, next, [&] { return follow(numamove::openmp::movers::team); });
    pin_team(team_home ? over : home);
    team_home = !team_home;
    timed(by_migrate, single_u, single_next, [&] {
      const int node = r % 2 == 0 ? to : from;
      const numamove::migration_result one = numamove::migrate(single_u, node);
      const numamove::migration_result other = numamove::migrate(single_next, node);
      return std::pair{one.bytes + other.bytes, one && other};
    });
  }
  const double migrate = numamove_bench::median(by_migrate.seconds);

  std::printf("  time per step, remote / local:        %.2fx\n", remote / local);
  std::printf("  time per step, after follow / local:  %.2fx\n", followed / local);
  // Per byte: the two moves need not move the same number of bytes.
  const auto report = [&](const char* who, const move_times& run) {
    std::printf(
        "  follow_threads, %s (%.1f MiB) / two migrate() (%.1f MiB, 1 thread), per MiB: %.2fx\n",
        who, static_cast<double>(run.bytes) / (1 << 20),
        static_cast<double>(by_migrate.bytes) / (1 << 20),
        numamove_bench::median(run.seconds) / static_cast<double>(run.bytes) /
            (migrate / static_cast<double>(by_migrate.bytes)));
  };
  report("moved by the caller in one call", by_caller);
  report("moved by every thread at once", by_team);
  std::printf(
      "  (absolute, this run only, medians: local %.2f ms/step, follow %.1f ms by the caller, "
      "%.1f ms by the team, migrate %.1f ms; pause before each move %d ms; %d of the caller's "
      "%d calls ran no region)\n",
      1e3 * local, 1e3 * numamove_bench::median(by_caller.seconds),
      1e3 * numamove_bench::median(by_team.seconds), 1e3 * migrate, pause_ms,
      caller_calls_without_region, caller_calls);
  return by_caller.ok && by_team.ok && by_migrate.ok ? 0 : 1;
}
