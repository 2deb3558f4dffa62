// The performance study's measurements (docs/performance.md), as CSV on stdout:
//   throughput_study moves   [max MiB] [repeats]   every way to move memory, 64 KiB .. max
//                                                  (numa_move_pages where libnuma was found)
//   throughput_study workers [MiB] [repeats]       migrate() with 1, 2 and 4 workers
//   throughput_study queries [max MiB] [repeats]   locate() against the raw query and hwloc
//   throughput_study allocator [max MiB] [repeats] allocation + first touch against std::vector
// Each row: study,method,memory,bytes,repeat,seconds (memory: 4k or thp, the backing asked for
// with MADV_NOHUGEPAGE or MADV_HUGEPAGE). tools/plot-study.sh turns the rows into plots.
//
// Moves alternate between the first and the last node. On a one-node machine the kernel's
// moves find every page in place, so "moves" then measures only what moves memory there: the
// userspace path (forced) and memcpy into warm memory, its limit; a comment row says so.
#include <hwloc.h>
#ifdef NUMAMOVE_STUDY_LIBNUMA
#include <numa.h>
#endif
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <numamove/numamove.hpp>

#include "timing.hpp"

namespace {

const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
constexpr std::size_t huge_page = std::size_t{2} << 20;
constexpr int mpol_default = 0;  // uapi linux/mempolicy.h
constexpr int mpol_bind = 2;

using numamove_bench::seconds;

// Touched anonymous memory aligned to the huge-page size, with THP advice.
struct region {
  region(std::size_t size, bool thp) : bytes(size) {
    raw = static_cast<char*>(::mmap(nullptr, bytes + huge_page, PROT_READ | PROT_WRITE,
                                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (raw == MAP_FAILED) std::abort();
    data = reinterpret_cast<char*>((reinterpret_cast<std::uintptr_t>(raw) + huge_page - 1) /
                                   huge_page * huge_page);
    ::madvise(data, bytes, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    std::memset(data, 1, bytes);
  }
  ~region() { ::munmap(raw, bytes + huge_page); }
  region(const region&) = delete;
  region& operator=(const region&) = delete;
  std::vector<void*> pages() const {
    std::vector<void*> out(bytes / page);
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = data + i * page;
    return out;
  }
  std::size_t bytes;
  char* raw;
  char* data;
};

void row(const char* study, const std::string& method, bool thp, std::size_t bytes, int repeat,
         double s) {
  std::printf("%s,%s,%s,%zu,%d,%.9f\n", study, method.c_str(), thp ? "thp" : "4k", bytes, repeat,
              s);
}

std::vector<std::size_t> sizes_up_to(std::size_t max_mib) {
  std::vector<std::size_t> sizes;
  for (std::size_t bytes = 64 << 10; bytes <= (max_mib << 20); bytes *= 4) sizes.push_back(bytes);
  return sizes;
}

// One way to move a region to a node.
struct mover {
  std::string name;
  std::function<void(region&, int)> move;
};

std::vector<mover> kernel_movers(hwloc_topology_t topo) {
  std::vector<mover> movers;
  movers.push_back(
      {"migrate", [](region& r, int node) { numamove::migrate(r.data, r.bytes, node); }});
  movers.push_back({"migrate_2_workers", [](region& r, int node) {
                      numamove::migrate_options options;
                      options.workers = 2;
                      numamove::migrate(r.data, r.bytes, node, options);
                    }});
  movers.push_back({"move_pages", [](region& r, int node) {
                      std::vector<void*> pages = r.pages();
                      std::vector<int> nodes(pages.size(), node), status(pages.size());
                      ::syscall(SYS_move_pages, 0, pages.size(), pages.data(), nodes.data(),
                                status.data(), MPOL_MF_MOVE);
                    }});
#ifdef NUMAMOVE_STUDY_LIBNUMA
  movers.push_back({"numa_move_pages", [](region& r, int node) {
                      std::vector<void*> pages = r.pages();
                      std::vector<int> nodes(pages.size(), node), status(pages.size());
                      numa_move_pages(0, pages.size(), pages.data(), nodes.data(), status.data(),
                                      MPOL_MF_MOVE);
                    }});
#endif
  movers.push_back({"mbind_move", [](region& r, int node) {
                      unsigned long mask[2] = {0, 0};
                      mask[node / 64] |= 1UL << (node % 64);
                      ::syscall(SYS_mbind, r.data, r.bytes, mpol_bind, mask, 129UL, MPOL_MF_MOVE);
                    }});
  movers.push_back({"hwloc_membind_migrate", [topo](region& r, int node) {
                      hwloc_bitmap_t set = hwloc_bitmap_alloc();
                      hwloc_bitmap_only(set, static_cast<unsigned>(node));
                      hwloc_set_area_membind(topo, r.data, r.bytes, set, HWLOC_MEMBIND_BIND,
                                             HWLOC_MEMBIND_MIGRATE | HWLOC_MEMBIND_BYNODESET);
                      hwloc_bitmap_free(set);
                    }});
  return movers;
}

int moves(std::size_t max_mib, int repeats, hwloc_topology_t topo) {
  const numamove::topology& machine = numamove::topology::system();
  const int first = machine.nodes().front();
  const int last = machine.nodes().back();
  std::vector<mover> movers;
  if (first != last)
    movers = kernel_movers(topo);
  else
    std::printf(
        "# one node: the kernel's moves would find every page in place; userspace and memcpy "
        "only\n");
  movers.push_back({"userspace", [](region& r, int node) {
                      numamove::migrate_options options;
                      options.path = numamove::backend::userspace;
                      options.force = true;
                      numamove::migrate(r.data, r.bytes, node, options);
                    }});
  // Untimed: one move by each mover first, so that no row pays a first call's costs (the
  // library's capability probe, lazy binding, starting worker threads; in the emulator, the
  // translation of code run for the first time).
  {
    region first_moves(sizes_up_to(max_mib).front(), false);
    for (const mover& m : movers) m.move(first_moves, last);
  }
  for (const bool thp : {false, true})
    for (const std::size_t bytes : sizes_up_to(max_mib)) {
      region source(bytes, thp);
      region warm(bytes, thp);
      // Untimed: a move there and back, so that the pages start on `first` and no longer in
      // the per-CPU lists that fresh pages sit in (the first move_pages would drain them).
      numamove::migrate(source.data, source.bytes, last);
      numamove::migrate(source.data, source.bytes, first);
      int at = first;
      for (int repeat = 0; repeat < repeats; ++repeat) {
        row("moves", "memcpy_warm", thp, bytes, repeat,
            seconds([&] { std::memcpy(warm.data, source.data, bytes); }));
        // Every mover moves the pages away from where the previous one left them. The order
        // turns by one each repeat: a move pays for what the one before it left (the userspace
        // path's fresh pages are still in the per-CPU lists the next move_pages drains), and
        // the median should not.
        for (std::size_t k = 0; k < movers.size(); ++k) {
          const mover& m = movers[(k + static_cast<std::size_t>(repeat)) % movers.size()];
          const int to = first == last ? first : at == first ? last : first;
          row("moves", m.name, thp, bytes, repeat, seconds([&] { m.move(source, to); }));
          // Untimed: mbind and hwloc leave their MPOL_BIND on the region; no mover inherits it.
          ::syscall(SYS_mbind, source.data, source.bytes, mpol_default, nullptr, 0UL, 0U);
          const std::size_t there = numamove::bytes_per_node(source.data, source.bytes)[to];
          if (there != bytes)
            std::printf("# %s left %zu of %zu bytes behind\n", m.name.c_str(), bytes - there,
                        bytes);
          at = to;
        }
      }
    }
  return 0;
}

int workers(std::size_t mib, int repeats) {
  const numamove::topology& machine = numamove::topology::system();
  const bool one_node = machine.nodes().size() == 1;
  if (one_node)
    std::printf(
        "# one node: userspace path (forced), the kernel's moves would find the pages in place\n");
  for (const bool thp : {false, true}) {
    region r(mib << 20, thp);
    int to = machine.nodes().front();
    numamove::migrate(r.data, r.bytes, to);  // untimed: the first call's costs, and a known start
    for (int repeat = 0; repeat < repeats; ++repeat)
      for (const unsigned count : {1u, 2u, 4u}) {
        numamove::migrate_options options;
        options.workers = count;
        if (one_node) {
          options.path = numamove::backend::userspace;
          options.force = true;
        }
        // Every move takes the pages away from where the previous one left them.
        to = to == machine.nodes().front() ? machine.nodes().back() : machine.nodes().front();
        row("workers", std::to_string(count), thp, r.bytes, repeat,
            seconds([&] { numamove::migrate(r.data, r.bytes, to, options); }));
      }
  }
  return 0;
}

int queries(std::size_t max_mib, int repeats, hwloc_topology_t topo) {
  for (const bool thp : {false, true})
    for (const std::size_t bytes : sizes_up_to(max_mib)) {
      region r(bytes, thp);
      std::vector<void*> pages = r.pages();
      std::vector<int> status(pages.size());
      hwloc_bitmap_t set = hwloc_bitmap_alloc();
      for (int repeat = 0; repeat < repeats; ++repeat) {
        row("queries", "locate", thp, bytes, repeat,
            seconds([&] { (void)numamove::locate(r.data, r.bytes); }));
        row("queries", "move_pages_query", thp, bytes, repeat, seconds([&] {
              ::syscall(SYS_move_pages, 0, pages.size(), pages.data(), nullptr, status.data(), 0);
            }));
        row("queries", "hwloc_get_area_memlocation", thp, bytes, repeat, seconds([&] {
              hwloc_get_area_memlocation(topo, r.data, r.bytes, set, HWLOC_MEMBIND_BYNODESET);
            }));
      }
      hwloc_bitmap_free(set);
    }
  return 0;
}

int allocator(std::size_t max_mib, int repeats) {
  const int node = numamove::topology::system().nodes().back();
  for (const std::size_t bytes : sizes_up_to(max_mib)) {
    const std::size_t count = bytes / sizeof(double);
    for (int repeat = 0; repeat < repeats; ++repeat) {
      row("allocator", "std_vector", false, bytes, repeat, seconds([&] {
            std::vector<double> v(count, 1.0);
            if (v[count / 2] != 1.0) std::abort();
          }));
      row("allocator", "numamove_allocator", false, bytes, repeat, seconds([&] {
            std::vector<double, numamove::allocator<double>> v(
                count, 1.0, numamove::allocator<double>(numamove::placement::on_node(node)));
            if (v[count / 2] != 1.0) std::abort();
          }));
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string study = argc > 1 ? argv[1] : "moves";
  const std::size_t mib = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 1024;
  const int repeats = argc > 3 ? std::atoi(argv[3]) : 3;
  hwloc_topology_t topo = nullptr;
  if (hwloc_topology_init(&topo) != 0 || hwloc_topology_load(topo) != 0) return 1;
  // Untimed: the capability probe and the first touch of the library's own state.
  region warm_up(page, false);
  (void)numamove::locate(warm_up.data, 1);
  std::printf("study,method,memory,bytes,repeat,seconds\n");
  int rc = 2;
  if (study == "moves")
    rc = moves(mib, repeats, topo);
  else if (study == "workers")
    rc = workers(mib, repeats);
  else if (study == "queries")
    rc = queries(mib, repeats, topo);
  else if (study == "allocator")
    rc = allocator(mib, repeats);
  else
    std::fprintf(stderr,
                 "usage: throughput_study moves|workers|queries|allocator [MiB] [repeats]\n");
  hwloc_topology_destroy(topo);
  return rc;
}
