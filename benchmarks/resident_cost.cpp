// migrate() of a 4 MiB array against one raw move_pages(2) call over the same pages, while the
// process holds RESIDENT MiB of other memory: a cost of migrate() that grows with the process
// rather than with the move (reading /proc/self/smaps walks every page table) shows as a ratio
// that grows with RESIDENT. Medians of 7 moves each, alternating between the first and the last
// node; needs 2 NUMA nodes (tests/vm/run-guest.sh --plain --shape 2node runs it in a guest).
//   resident_cost [RESIDENT MiB]     (default 128)
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <numamove/numamove.hpp>

#include "timing.hpp"

namespace {

constexpr std::size_t moved_bytes = std::size_t{4} << 20;

char* touched_mapping(std::size_t bytes, int advice) {
  void* memory = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) std::abort();
  ::madvise(memory, bytes, advice);
  std::memset(memory, 1, bytes);
  return static_cast<char*>(memory);
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t resident_mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 128;
  const numamove::topology& machine = numamove::topology::system();
  if (machine.nodes().size() < 2) {
    std::printf("SKIPPED: resident_cost needs 2 NUMA nodes, this machine has 1\n");
    return 77;
  }
  const int first = machine.nodes().front();
  const int last = machine.nodes().back();
  touched_mapping(resident_mib << 20, MADV_NORMAL);  // held to the end: the process's size
  char* data = touched_mapping(moved_bytes, MADV_NOHUGEPAGE);
  std::vector<void*> pages(moved_bytes / static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)));
  for (std::size_t i = 0; i < pages.size(); ++i) pages[i] = data + i * (moved_bytes / pages.size());
  std::vector<int> nodes(pages.size());
  std::vector<int> status(pages.size());

  numamove::migrate(data, moved_bytes, first);  // untimed: the first call's costs
  int at = first;
  const auto away = [&] { return at = at == first ? last : first; };  // every move moves them all
  std::vector<double> by_migrate;
  std::vector<double> by_raw;
  for (int round = 0; round < 7; ++round) {
    const int to = away();
    by_migrate.push_back(
        numamove_bench::seconds([&] { numamove::migrate(data, moved_bytes, to); }));
    nodes.assign(pages.size(), away());
    by_raw.push_back(numamove_bench::seconds([&] {
      ::syscall(SYS_move_pages, 0, pages.size(), pages.data(), nodes.data(), status.data(),
                MPOL_MF_MOVE);
    }));
  }
  const double migrate = numamove_bench::median(by_migrate);
  const double raw = numamove_bench::median(by_raw);
  std::printf("resident %zu MiB: migrate of 4 MiB %.1f ms, raw move_pages %.1f ms: %.2fx\n",
              resident_mib, 1e3 * migrate, 1e3 * raw, migrate / raw);
  return 0;
}
