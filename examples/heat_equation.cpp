// A heat-equation simulation whose data follows its threads.
//
// A 2-D grid is advanced with a 5-point stencil by an OpenMP loop over rows, schedule(static).
// numamove places each thread's rows on that thread's node, and when the threads are re-pinned
// to other nodes mid-run (as a job scheduler or a co-located job may do), follow_threads() moves
// each chunk after its thread (in one call from the primary thread for data this small; see
// openmp::movers). Each phase prints where each thread runs, where its data is, how much moved
// and how long the steps took.
//
//   heat_equation [--rows N] [--columns N] [--steps N] [--threads N]
//
// On a one-node machine, examples/run-demo.sh runs it inside a 4-node QEMU guest.
#include <omp.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <numamove/numamove.hpp>
#include <numamove/openmp.hpp>

namespace {

using numamove::openmp::static_schedule;

struct settings {
  std::size_t rows = 8192;
  std::size_t columns = 2048;  // 16 KiB rows: chunks of whole rows are whole pages
  int steps = 10;
  int threads = 0;  // 0: one per node with CPUs, at most 8
};

double mib(std::size_t bytes) {
  return static_cast<double>(bytes) / (1 << 20);
}
double percent(std::size_t part, std::size_t whole) {
  return whole == 0 ? 100.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

// Pins thread t of a team to the CPUs of nodes[t]: how this demo changes the binding mid-run.
void pin_team(const std::vector<int>& nodes) {
  const numamove::topology& machine = numamove::topology::system();
#pragma omp parallel num_threads(static_cast <int>(nodes.size()))
  {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (const int cpu : machine.cpus_of(nodes[static_cast<std::size_t>(omp_get_thread_num())]))
      CPU_SET(cpu, &set);
    if (::sched_setaffinity(0, sizeof set, &set) != 0) std::perror("sched_setaffinity");
  }
}

// Automatic NUMA balancing moves pages on its own (and on Linux 6.1 its sampling hides pages
// from move_pages queries). An explicit MPOL_LOCAL policy places pages as first touch does and
// keeps the balancer away, so that the tables show numamove's moves only.
bool keep_from_numa_balancing(void* data, std::size_t bytes) {
  constexpr int mpol_local = 4;
  return ::syscall(SYS_mbind, data, bytes, mpol_local, nullptr, 0UL, 0U) == 0;
}

class simulation {
 public:
  explicit simulation(const settings& s)
      : s_(s), u_(s.rows * s.columns), next_(s.rows * s.columns), rows_{s.rows, s.threads, 0} {
    keep_from_numa_balancing(u_.data(), u_.size() * sizeof(double));
    keep_from_numa_balancing(next_.data(), next_.size() * sizeof(double));
  }

  using moves = std::vector<numamove::openmp::team_migration>;

  // Fresh arrays: each thread places its rows on its node (and writes the initial state).
  moves place() {
    moves done{numamove::openmp::place_for_schedule(u_.data(), u_.size(), rows_),
               numamove::openmp::place_for_schedule(next_.data(), next_.size(), rows_)};
    initialize();
    return done;
  }

  // After the threads changed node: each thread's chunks of both arrays go to its node.
  moves follow() {
    const double before = checksum();
    moves done{numamove::openmp::follow_threads(u_.data(), u_.size(), rows_),
               numamove::openmp::follow_threads(next_.data(), next_.size(), rows_)};
    contents_kept_ = checksum() == before;
    return done;
  }

  // One row per thread: where it runs, where its rows of both arrays are, what it moved.
  void print_table(const moves& moved) const {
    const auto a = numamove::openmp::locality_for_schedule(u_.data(), u_.size(), rows_);
    const auto b = numamove::openmp::locality_for_schedule(next_.data(), next_.size(), rows_);
    std::printf("  thread  runs on          its data is on          local     moved      took\n");
    std::size_t total_moved = 0;
    for (std::size_t t = 0; t < a.threads.size(); ++t) {
      std::map<int, std::size_t> on = a.threads[t].bytes_on;
      for (const auto& [node, bytes] : b.threads[t].bytes_on) on[node] += bytes;
      const std::size_t total = a.threads[t].bytes + b.threads[t].bytes;
      std::string where;
      for (const auto& [node, bytes] : on) {
        char part[48];
        // A negative key is a page status: -ENOENT, never touched.
        if (node >= 0)
          std::snprintf(part, sizeof part, "%snode %d %.0f%%", where.empty() ? "" : ", ", node,
                        percent(bytes, total));
        else
          std::snprintf(part, sizeof part, "%snowhere %.0f%%", where.empty() ? "" : ", ",
                        percent(bytes, total));
        where += part;
      }
      const double local = percent(a.threads[t].local_bytes + b.threads[t].local_bytes, total);
      std::printf("  %6zu  cpu %2d, node %2d  %-22s %4.0f%%", t, a.bindings[t].cpu,
                  a.bindings[t].node, where.c_str(), local);
      if (moved.empty()) {
        std::printf("         -         -\n");
        continue;
      }
      std::size_t bytes = 0;
      double seconds = 0;
      for (const auto& array : moved) {
        bytes += array.threads[t].bytes;
        seconds += std::chrono::duration<double>(array.threads[t].elapsed).count();
      }
      total_moved += bytes;
      std::printf("  %6.1f MiB  %5.1f ms\n", mib(bytes), 1e3 * seconds);
    }
    if (moved.empty()) return;
    double call = 0;
    std::size_t failed = 0;
    for (const auto& array : moved) {
      call += std::chrono::duration<double>(array.elapsed).count();
      failed += array.failed();
    }
    const bool by_team = moved[0].moved_by == numamove::openmp::movers::team;
    std::printf("  moved %.1f MiB in %.1f ms, %s (%s path)%s\n", mib(total_moved), 1e3 * call,
                by_team ? "each thread its own chunks, in parallel"
                        : "one call per array from the primary thread while the team slept",
                numamove::to_string(moved[0].used), failed ? "; SOME PAGES FAILED" : "");
    if (contents_kept_)
      std::printf("  the grid is unchanged by the move (same checksum before and after)\n");
  }

  // `steps` time steps; returns the seconds per step.
  double run() {
    const double started = omp_get_wtime();
    for (int step = 0; step < s_.steps; ++step) {
      advance();
      u_.swap(next_);
    }
    return (omp_get_wtime() - started) / s_.steps;
  }

  double mean_temperature() const { return checksum() / static_cast<double>(u_.size()); }

 private:
  // A cold plate whose top edge is held at 100 degrees.
  void initialize() {
    const long rows = static_cast<long>(s_.rows);
    const std::size_t columns = s_.columns;
#pragma omp parallel for schedule(static) num_threads(s_.threads)
    for (long i = 0; i < rows; ++i)
      for (std::size_t j = 0; j < columns; ++j) {
        const std::size_t at = static_cast<std::size_t>(i) * columns + j;
        u_[at] = next_[at] = i == 0 ? 100.0 : 0.0;
      }
  }

  // One explicit Euler step of u_t = alpha * laplacian(u), alpha * dt / h^2 = 0.2 (stable).
  void advance() {
    const long rows = static_cast<long>(s_.rows);
    const std::size_t columns = s_.columns;
    const double* u = u_.data();
    double* next = next_.data();
#pragma omp parallel for schedule(static) num_threads(s_.threads)
    for (long i = 0; i < rows; ++i) {
      const std::size_t row = static_cast<std::size_t>(i) * columns;
      if (i == 0 || i == rows - 1) {
        std::memcpy(next + row, u + row, columns * sizeof(double));
        continue;
      }
      next[row] = u[row];
      next[row + columns - 1] = u[row + columns - 1];
      for (std::size_t j = 1; j + 1 < columns; ++j) {
        const std::size_t c = row + j;
        next[c] = u[c] + 0.2 * (u[c - columns] + u[c + columns] + u[c - 1] + u[c + 1] - 4.0 * u[c]);
      }
    }
  }

  // The sum of the grid in a fixed order, so that equal grids give equal sums.
  double checksum() const {
    std::vector<double> row_sums(s_.rows);
    const long rows = static_cast<long>(s_.rows);
#pragma omp parallel for schedule(static) num_threads(s_.threads)
    for (long i = 0; i < rows; ++i) {
      double sum = 0;
      for (std::size_t j = 0; j < s_.columns; ++j)
        sum += u_[static_cast<std::size_t>(i) * s_.columns + j];
      row_sums[static_cast<std::size_t>(i)] = sum;
    }
    double total = 0;
    for (const double sum : row_sums) total += sum;
    return total;
  }

  settings s_;
  numamove::vector<double> u_;
  numamove::vector<double> next_;
  static_schedule rows_;
  bool contents_kept_ = false;
};

bool parse(int argc, char** argv, settings& s) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--rows" && has_value)
      s.rows = std::strtoul(argv[++i], nullptr, 10);
    else if (arg == "--columns" && has_value)
      s.columns = std::strtoul(argv[++i], nullptr, 10);
    else if (arg == "--steps" && has_value)
      s.steps = std::atoi(argv[++i]);
    else if (arg == "--threads" && has_value)
      s.threads = std::atoi(argv[++i]);
    else
      return false;
  }
  return s.rows >= 3 && s.columns >= 3 && s.steps > 0 && s.threads >= 0;
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  if (!parse(argc, argv, s)) {
    std::fprintf(stderr, "usage: %s [--rows N] [--columns N] [--steps N] [--threads N]\n", argv[0]);
    return 2;
  }
  const numamove::topology& machine = numamove::topology::system();
  std::vector<int> nodes;  // nodes a thread can run on
  for (const int node : machine.nodes())
    if (!machine.cpus_of(node).empty()) nodes.push_back(node);
  if (s.threads == 0) s.threads = static_cast<int>(std::min<std::size_t>(nodes.size(), 8));
  // Thread t starts on home[t]; later it moves one node over, and then the even threads go home.
  std::vector<int> home(static_cast<std::size_t>(s.threads));
  std::vector<int> over(home.size());
  std::vector<int> mixed(home.size());
  for (std::size_t t = 0; t < home.size(); ++t) {
    home[t] = nodes[t % nodes.size()];
    over[t] = nodes[(t + 1) % nodes.size()];
    mixed[t] = t % 2 == 0 ? home[t] : over[t];
  }

  std::string balancing;
  std::ifstream("/proc/sys/kernel/numa_balancing") >> balancing;
  std::printf("numamove heat-equation demo: data follows threads\n");
  std::printf(
      "  %zu NUMA nodes with CPUs; %d OpenMP threads, one per node; grid %zu x %zu doubles, 2 "
      "arrays of %.0f MiB\n",
      nodes.size(), s.threads, s.rows, s.columns, mib(s.rows * s.columns * sizeof(double)));
  std::printf("  automatic NUMA balancing: %s\n", balancing.empty()     ? "not in this kernel"
                                                  : balancing[0] == '0' ? "off"
                                                                        : "on (the grid opts out)");
  if (nodes.size() < 2)
    std::printf(
        "  this machine has one node: nothing can move (examples/run-demo.sh runs a 4-node "
        "guest)\n");

  simulation sim(s);
  std::vector<double> step_time;
  enum class action { place, none, follow };
  const auto phase = [&](const char* title, const std::vector<int>& pins, action what) {
    std::printf("\nphase %zu: %s\n", step_time.size() + 1, title);
    pin_team(pins);
    simulation::moves moved;
    if (what == action::place) moved = sim.place();
    if (what == action::follow) moved = sim.follow();
    sim.print_table(moved);
    step_time.push_back(sim.run());
    std::printf("  %d time steps: %.2f ms per step", s.steps, 1e3 * step_time.back());
    if (step_time.size() > 1) std::printf(" (%.2fx phase 1)", step_time.back() / step_time.front());
    std::printf("\n");
  };
  phase("thread t pinned to node t; place_for_schedule() puts each thread's rows on its node", home,
        action::place);
  phase("every thread re-pinned one node over; the data stays behind", over, action::none);
  phase("same pinning; follow_threads() at the phase boundary moves every chunk after its thread",
        over, action::follow);
  phase("the even threads go back home; follow_threads() moves only their chunks", mixed,
        action::follow);

  std::printf("\nmean temperature after %d steps: %.6f degrees\n", 4 * s.steps,
              sim.mean_temperature());
  return 0;
}
