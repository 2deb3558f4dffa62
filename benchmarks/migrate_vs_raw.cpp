// numamove::migrate and locate against the raw calls they replace, measured in one run over the
// same pages, reported as ratios (timings on shared or emulated machines are noise; ratios of
// two things measured side by side are not).
//   migrate_vs_raw [MiB] [rounds]     (defaults 64 and 5)
//
// Moves alternate between the first and the last node, so on a one-node machine every move is
// "already there" and the figures measure the bookkeeping only.
#include <hwloc.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <numamove/numamove.hpp>

#include "timing.hpp"

namespace {

using numamove_bench::median;
using numamove_bench::seconds;

// A touched anonymous buffer with an inaccessible page on either side, so that no two buffers
// share a mapping (mbind splits and merges mappings; a move of one must not touch the other).
struct buffer {
  explicit buffer(std::size_t bytes) : size(bytes) {
    const std::size_t guard = numamove::detail::page_size();
    char* base = static_cast<char*>(
        ::mmap(nullptr, bytes + 2 * guard, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (base == MAP_FAILED) std::abort();
    data = base + guard;
    if (::mprotect(data, bytes, PROT_READ | PROT_WRITE) != 0) std::abort();
    std::memset(data, 1, bytes);
  }
  ~buffer() {
    ::munmap(data - numamove::detail::page_size(), size + 2 * numamove::detail::page_size());
  }
  std::vector<void*> pages() const {
    std::vector<void*> out(size / numamove::detail::page_size());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = data + i * numamove::detail::page_size();
    return out;
  }
  std::size_t size;
  char* data = nullptr;
};

long raw_move(std::vector<void*>& pages, int node) {
  std::vector<int> nodes(pages.size(), node);
  std::vector<int> status(pages.size());
  return numamove::detail::sys_move_pages(0, pages.size(), pages.data(), nodes.data(),
                                          status.data(), MPOL_MF_MOVE);
}

long mbind_move(const buffer& b, int node) {
  const numamove::detail::node_mask mask({node});
  return numamove::detail::sys_mbind(b.data, b.size, numamove::detail::mpol_bind, mask.words.data(),
                                     mask.maxnode, MPOL_MF_MOVE);
}

void report(const char* what, double ours, double theirs, const char* against) {
  std::printf("  %-44s %8.2f ms  vs %-28s %8.2f ms   ratio %.2f\n", what, ours * 1e3, against,
              theirs * 1e3, ours / theirs);
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 64;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
  const numamove::topology& machine = numamove::topology::system();
  const int a = machine.nodes().front();
  const int b = machine.nodes().back();
  std::printf("migrate_vs_raw: %zu MiB, %d rounds (median), nodes %d <-> %d%s\n", mib, rounds, a, b,
              a == b ? " (one node: every move finds its pages already there)" : "");

  if (numamove::detail::read_text("/proc/sys/kernel/numa_balancing").rfind('0', 0) != 0 && a != b)
    std::printf(
        "warning: automatic NUMA balancing is on (kernel.numa_balancing); it moves pages too\n");

  buffer ours(mib << 20);
  buffer theirs(mib << 20);
  std::vector<void*> our_pages = ours.pages();
  std::vector<void*> their_pages = theirs.pages();

  // One untimed round trip first: the first touch of a node's memory in a fresh process is slower.
  raw_move(their_pages, b);
  raw_move(their_pages, a);
  numamove::migrate(ours.data, ours.size, b);
  numamove::migrate(ours.data, ours.size, a);

  // Moves between the nodes: migrate() against one raw move_pages call.
  std::vector<double> t_migrate, t_raw, t_migrate_placed, t_raw_placed, t_mbind;
  for (int round = 0; round < rounds; ++round) {
    const int to = round % 2 == 0 ? b : a;
    t_migrate.push_back(seconds([&] { numamove::migrate(ours.data, ours.size, to); }));
    t_raw.push_back(seconds([&] { raw_move(their_pages, to); }));
    // A second request for the same node: migrate queries and skips, the raw call walks all pages.
    t_migrate_placed.push_back(seconds([&] { numamove::migrate(ours.data, ours.size, to); }));
    t_raw_placed.push_back(seconds([&] { raw_move(their_pages, to); }));
  }
  // migrate() with kernel-path workers (one slice per CPU the process may use, at most 4)
  // against migrate() from the calling thread alone, alternating.
  numamove::migrate_options sliced;
  sliced.workers = std::min(4u, std::max(1u, numamove::detail::kernel_slices(
                                                 4, ours.size / numamove::detail::page_size())));
  std::vector<double> t_sliced, t_single;
  int here = numamove::locate(ours.data, 1).front();
  for (int round = 0; round < rounds; ++round) {
    here = here == a ? b : a;
    t_single.push_back(seconds([&] { numamove::migrate(ours.data, ours.size, here); }));
    here = here == a ? b : a;
    t_sliced.push_back(seconds([&] { numamove::migrate(ours.data, ours.size, here, sliced); }));
  }

  // mbind(MPOL_MF_MOVE) against move_pages over the whole range (both move back and forth).
  // Raw first: right after an mbind migration, a move_pages call on other pages was seen to
  // fail every page with -EBUSY in the guest (rc 0), which would time a move that did not happen.
  std::vector<double> t_raw_again;
  int incomplete = 0;
  for (int round = 0; round < rounds; ++round) {
    const int to = round % 2 == 0 ? a : b;
    t_raw_again.push_back(seconds([&] { raw_move(their_pages, to); }));
    t_mbind.push_back(seconds([&] { mbind_move(ours, to); }));
    if (numamove::bytes_per_node(ours.data, ours.size)[to] != ours.size ||
        numamove::bytes_per_node(theirs.data, theirs.size)[to] != theirs.size)
      ++incomplete;
  }
  if (incomplete != 0)
    std::printf("warning: %d mbind/move_pages rounds left pages behind\n", incomplete);

  // Where the pages are: locate() against a raw query and hwloc.
  std::vector<double> t_locate, t_query, t_hwloc;
  hwloc_topology_t topo = nullptr;
  hwloc_topology_init(&topo);
  hwloc_topology_load(topo);
  hwloc_bitmap_t nodeset = hwloc_bitmap_alloc();
  std::vector<int> status(their_pages.size());
  for (int round = 0; round < rounds; ++round) {
    t_locate.push_back(seconds([&] { numamove::locate(ours.data, ours.size); }));
    t_query.push_back(seconds([&] {
      numamove::detail::sys_move_pages(0, their_pages.size(), their_pages.data(), nullptr,
                                       status.data(), 0);
    }));
    t_hwloc.push_back(seconds([&] {
      hwloc_get_area_memlocation(topo, theirs.data, theirs.size, nodeset, HWLOC_MEMBIND_BYNODESET);
    }));
  }
  hwloc_bitmap_free(nodeset);
  hwloc_topology_destroy(topo);

  std::printf("ratios below 1 mean numamove is faster\n");
  report("migrate() to the other node", median(t_migrate), median(t_raw), "raw move_pages");
  report("migrate() to the node it is already on", median(t_migrate_placed), median(t_raw_placed),
         "raw move_pages");
  char sliced_line[64];
  std::snprintf(sliced_line, sizeof sliced_line, "migrate(), %u kernel-path workers",
                sliced.workers);
  report(sliced_line, median(t_sliced), median(t_single), "migrate(), the caller alone");
  report("mbind(MPOL_MF_MOVE), whole range", median(t_mbind), median(t_raw_again),
         "raw move_pages");
  report("locate()", median(t_locate), median(t_query), "raw move_pages query");
  report("locate()", median(t_locate), median(t_hwloc), "hwloc_get_area_memlocation");
  return 0;
}
