// The test runner. Adds one option to Catch2's: --require-nodes N exits with 77 (ctest's
// SKIP_RETURN_CODE) and says why when this machine has fewer than N NUMA nodes with memory.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <numamove/topology.hpp>

#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
#else
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#endif

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
  return Catch::Session().run(static_cast<int>(args.size()), args.data());
}
