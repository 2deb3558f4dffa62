// The test runner. Adds two options to Catch2's:
//   --require-nodes N  exits with 77 (ctest's SKIP_RETURN_CODE) and says why when this machine
//                      has fewer than N NUMA nodes with memory;
//   --bind-home        runs the cases on the lowest node with memory (numamove_test::home), as
//                      `numactl --cpunodebind` would, or `--preferred` where that node has no
//                      CPU: the one-node cases expect the pages they touch first to land there.
//                      Like numactl, it binds and then runs the binary again, so that the OpenMP
//                      runtime, which reads the CPUs it may use when it loads, sees the binding.
//                      Nothing changes on a machine of one node.
#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <numamove/migrate.hpp>  // detail::node_mask, detail::sys_set_mempolicy
#include <numamove/topology.hpp>

#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
#else
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#endif

#include "support/pages.hpp"

namespace {

/// Removes option `name` from `args`; true when it was there.
bool take_option(std::vector<char*>& args, const char* name) {
  for (auto at = args.begin() + 1; at != args.end(); ++at)
    if (std::strcmp(*at, name) == 0) {
      args.erase(at);
      return true;
    }
  return false;
}

/// Puts this process on numamove_test::home and runs it again with `args`. Returns only on a
/// machine of one node (true) or when the kernel refuses (false, having said why).
bool bind_home(std::vector<char*> args) {
  const numamove::topology& machine = numamove::topology::system();
  if (machine.nodes().size() < 2) return true;
  const int home = numamove_test::home;
  const std::vector<int>& cpus = machine.cpus_of(home);
  if (!cpus.empty()) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (const int cpu : cpus) CPU_SET(cpu, &set);
    if (::sched_setaffinity(0, sizeof set, &set) != 0) {
      std::perror("--bind-home: sched_setaffinity");
      return false;
    }
  } else {
    const numamove::detail::node_mask mask({home});
    if (numamove::detail::sys_set_mempolicy(numamove::detail::mpol_preferred, mask.words.data(),
                                            mask.maxnode) != 0) {
      std::perror("--bind-home: set_mempolicy");
      return false;
    }
  }
  args.push_back(nullptr);
  ::execv("/proc/self/exe", args.data());
  std::perror("--bind-home: execv");
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  for (std::size_t i = 1; i + 1 < args.size(); ++i) {
    if (std::strcmp(args[i], "--require-nodes") != 0) continue;
    const std::size_t needed = std::strtoul(args[i + 1], nullptr, 10);
    const std::size_t present = numamove::topology::system().nodes().size();
    if (present < needed) {
      std::printf(
          "SKIPPED: needs %zu NUMA nodes, this machine has %zu (the tests/vm guests run these)\n",
          needed, present);
      return 77;
    }
    args.erase(args.begin() + static_cast<std::ptrdiff_t>(i),
               args.begin() + static_cast<std::ptrdiff_t>(i) + 2);
    break;
  }
  if (take_option(args, "--bind-home") && !bind_home(args)) return 1;
  return Catch::Session().run(static_cast<int>(args.size()), args.data());
}
