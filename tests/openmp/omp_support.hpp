// Helpers of the OpenMP tests: pinning a team's threads to nodes (and back), running a case in
// a child process with OpenMP's binding variables set, and the kernel's view of a schedule.
#pragma once

#include <omp.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <numamove/openmp.hpp>

#include "support/catch.hpp"
#include "support/pages.hpp"

namespace numamove_test {

inline bool set_affinity(const std::vector<int>& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (const int cpu : cpus) CPU_SET(cpu, &set);
  return ::sched_setaffinity(0, sizeof set, &set) == 0;
}

/// Pins thread t of a team of nodes.size() threads to the CPUs of nodes[t] (or, given CPU
/// lists, to cpus[t]) for the scope's life (a re-pin, as a program does with
/// sched_setaffinity), then gives every thread its mask back. Pool threads keep their masks
/// between regions, so later cases would inherit a pin.
class team_pin {
 public:
  explicit team_pin(const std::vector<int>& nodes) : team_pin(cpus_of(nodes)) {}
  explicit team_pin(const std::vector<std::vector<int>>& cpus) : saved_(cpus.size()) {
    const auto threads = static_cast<int>(cpus.size());
    bool all = true;
#pragma omp parallel num_threads(threads) reduction(&& : all)
    {
      const auto t = static_cast<std::size_t>(omp_get_thread_num());
      saved_[t] = numamove::detail::affinity_of(0);
      all = omp_get_num_threads() == threads && set_affinity(cpus[t]);
    }
    pinned_ = all;
  }
  /// Re-pins thread t to nodes[t], as a binding change between phases does.
  bool repin(const std::vector<int>& nodes) const {
    const std::vector<std::vector<int>> cpus = cpus_of(nodes);
    bool all = true;
#pragma omp parallel num_threads(static_cast <int>(cpus.size())) reduction(&& : all)
    all = set_affinity(cpus[static_cast<std::size_t>(omp_get_thread_num())]);
    return all;
  }
  ~team_pin() {
#pragma omp parallel num_threads(static_cast <int>(saved_.size()))
    set_affinity(saved_[static_cast<std::size_t>(omp_get_thread_num())]);
  }
  team_pin(const team_pin&) = delete;
  team_pin& operator=(const team_pin&) = delete;

  bool pinned() const {
    return pinned_;
  }

 private:
  static std::vector<std::vector<int>> cpus_of(const std::vector<int>& nodes) {
    std::vector<std::vector<int>> cpus;
    for (const int node : nodes) cpus.push_back(numamove::topology::system().cpus_of(node));
    return cpus;
  }

  std::vector<std::vector<int>> saved_;
  bool pinned_ = false;
};

/// Gives [data, data + bytes) the MPOL_LOCAL policy: pages are placed as by first touch, and
/// automatic NUMA balancing, which skips memory with an explicit policy, leaves them alone. It
/// would otherwise move pages on its own, and on Linux 6.1 the PROT_NONE marks it samples
/// pages with hide them from move_pages queries. Returns false (errno set) when mbind fails.
inline bool keep_from_numa_balancing(void* data, std::size_t bytes) {
  constexpr int mpol_local = 4;
  return ::syscall(SYS_mbind, data, bytes, mpol_local, nullptr, 0UL, 0U) == 0;
}

/// Turns automatic NUMA balancing on (kernel.numa_balancing=1) for its lifetime, then restores
/// the previous setting. Needs root, as in the guests.
class numa_balancing_on {
 public:
  numa_balancing_on() : previous_(numamove::detail::read_text(path)) { enabled_ = write("1"); }
  ~numa_balancing_on() {
    if (!previous_.empty()) write(previous_);
  }
  numa_balancing_on(const numa_balancing_on&) = delete;
  numa_balancing_on& operator=(const numa_balancing_on&) = delete;
  bool enabled() const { return enabled_; }

 private:
  static constexpr const char* path = "/proc/sys/kernel/numa_balancing";
  static bool write(const std::string& value) {
    std::ofstream out(path);
    out << value;
    out.flush();
    return static_cast<bool>(out);
  }
  std::string previous_;
  bool enabled_ = false;
};

/// True when every "NAME=VALUE" of `env` is set so in this process.
inline bool environment_has(const std::vector<std::string>& env) {
  for (const std::string& entry : env) {
    const std::size_t equals = entry.find('=');
    const char* value = std::getenv(entry.substr(0, equals).c_str());
    if (value == nullptr || entry.substr(equals + 1) != value) return false;
  }
  return true;
}

/// Runs the current test case again in a child process of this binary with `env` added, and
/// returns its exit status (-1 when it could not run). OpenMP reads OMP_PLACES and
/// OMP_PROC_BIND once, when the runtime starts, so a case that needs them set runs this way
/// where the caller (a guest's init, a plain shell) did not set them.
inline int rerun_with(const std::vector<std::string>& env) {
  const std::string name = Catch::getResultCapture().getCurrentTestName();
  const pid_t child = ::fork();
  if (child == 0) {
    for (const std::string& entry : env) ::putenv(const_cast<char*>(entry.c_str()));
    const char* argv[] = {"/proc/self/exe", name.c_str(), nullptr};
    ::execv(argv[0], const_cast<char* const*>(argv));
    ::_exit(127);
  }
  int status = 0;
  if (child < 0 || ::waitpid(child, &status, 0) != child) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// Each thread's locality for `schedule` computed from the kernel's own query (raw
/// move_pages(2), bypassing numamove), for threads on `nodes`.
inline std::vector<numamove::openmp::thread_locality> kernel_locality(
    const void* data, std::size_t bytes, const numamove::openmp::static_schedule& schedule,
    const std::vector<int>& nodes) {
  const std::size_t page = numamove_test::page();
  const auto begin = reinterpret_cast<std::uintptr_t>(data);
  const std::size_t pages = (begin + bytes - 1) / page - begin / page + 1;
  const std::vector<int> status =
      numamove_test::kernel_query(reinterpret_cast<const void*>(begin / page * page), pages);
  return numamove::openmp::locality_of(data, bytes, schedule, nodes, status);
}

/// The node each binding resolved to.
inline std::vector<int> nodes_of(const std::vector<numamove::openmp::thread_binding>& bindings) {
  std::vector<int> nodes;
  for (const auto& b : bindings) nodes.push_back(b.node);
  return nodes;
}

}  // namespace numamove_test
