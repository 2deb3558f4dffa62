// The userspace migrator's copy path against plain memcpy, in one run, reported as ratios:
// a forced userspace relocation of the range (fresh pages, copy, mremap into place) against
// memcpy of the same bytes into memory that is already faulted in (the limit here: no page
// faults at all) and into fresh memory (what any copy into new pages pays), with 1 and 2
// workers, 4 KiB and huge-page destinations, with the process's other threads stopped during
// each batch's copy and commit (protect_writes, the default) and without.
//   userspace_relocation [MiB] [repeats]     (defaults 1024 and 3; the best of the repeats counts)
//
// Forced moves go to the node the pages are on, so a one-node machine measures the whole copy
// path. The destination's page size follows the source mapping's THP advice (MADV_NOHUGEPAGE:
// 4 KiB pages; MADV_HUGEPAGE: huge pages), as the migrator copies that advice.
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <numamove/capabilities.hpp>
#include <numamove/numamove.hpp>

namespace {

using clock_type = std::chrono::steady_clock;
constexpr std::size_t huge = std::size_t{2} << 20;

// A mapping of `bytes`, aligned to the huge-page size, with THP advice `advice`.
struct region {
  region(std::size_t bytes_, int advice) : bytes(bytes_) {
    raw = static_cast<char*>(
        ::mmap(nullptr, bytes + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (raw == MAP_FAILED) std::abort();
    data =
        reinterpret_cast<char*>((reinterpret_cast<std::uintptr_t>(raw) + huge - 1) / huge * huge);
    ::madvise(data, bytes, advice);
  }
  ~region() { ::munmap(raw, bytes + huge); }
  region(const region&) = delete;
  region& operator=(const region&) = delete;
  std::size_t bytes;
  char* raw;
  char* data;
};

template <class Work>
double best_of(int repeats, Work work) {
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) best = std::min(best, work());
  return best;
}

double memcpy_seconds(const char* from, char* to, std::size_t bytes) {
  const auto start = clock_type::now();
  std::memcpy(to, from, bytes);
  const double s = std::chrono::duration<double>(clock_type::now() - start).count();
  if (std::memcmp(from, to, 4096) != 0) std::abort();  // keeps the copy
  return s;
}

// memcpy into a mapping made just now: every destination page is faulted in by the copy.
double fresh_memcpy_seconds(const char* from, std::size_t bytes, int advice) {
  region to(bytes, advice);
  return memcpy_seconds(from, to.data, bytes);
}

std::size_t anon_huge_bytes(const void* address) {
  const std::vector<numamove::detail::mapping> maps = numamove::detail::read_mappings(0);
  const numamove::detail::mapping* m =
      numamove::detail::find_mapping(maps, reinterpret_cast<std::uintptr_t>(address));
  return m == nullptr ? 0 : m->anon_huge_bytes;
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1024;
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 3;
  const std::size_t bytes = mib << 20;
  const int node = numamove::topology::system().nodes().front();
  const numamove::capabilities& here = numamove::capabilities::of_this_process();
  std::printf(
      "userspace_relocation: %zu MiB, best of %d, node %d, THP %s, %zu CPU(s) on the node\n", mib,
      repeats, node, here.thp.empty() ? "unavailable" : here.thp.c_str(),
      here.find(node) ? here.find(node)->cpus.size() : 0);

  region source(bytes, MADV_NOHUGEPAGE);
  for (std::size_t i = 0; i < bytes; i += 64) source.data[i] = static_cast<char>(i >> 12);
  region warm(bytes, MADV_NOHUGEPAGE);
  std::memset(warm.data, 0, bytes);
  memcpy_seconds(source.data, warm.data,
                 bytes);  // first touches of everything: the host backs lazily

  const double t_warm =
      best_of(repeats, [&] { return memcpy_seconds(source.data, warm.data, bytes); });
  const double t_fresh_small =
      best_of(repeats, [&] { return fresh_memcpy_seconds(source.data, bytes, MADV_NOHUGEPAGE); });
  const double t_fresh_huge =
      best_of(repeats, [&] { return fresh_memcpy_seconds(source.data, bytes, MADV_HUGEPAGE); });
  const double gb = static_cast<double>(bytes) / 1e9;
  std::printf("\n%-52s %9s %8s\n", "baseline", "ms", "GB/s");
  std::printf("%-52s %9.1f %8.2f\n", "memcpy into faulted memory (the limit)", t_warm * 1e3,
              gb / t_warm);
  std::printf("%-52s %9.1f %8.2f\n", "memcpy into fresh 4 KiB pages", t_fresh_small * 1e3,
              gb / t_fresh_small);
  std::printf("%-52s %9.1f %8.2f\n", "memcpy into fresh huge pages", t_fresh_huge * 1e3,
              gb / t_fresh_huge);

  std::printf("\n%-34s %7s %9s %8s %10s %10s %8s\n", "forced userspace relocation", "workers", "ms",
              "GB/s", "x faulted", "x fresh", "THP MiB");
  for (const int advice : {MADV_NOHUGEPAGE, MADV_HUGEPAGE}) {
    for (const bool fenced : {true, false}) {
      for (const unsigned workers : {1u, 2u}) {
        ::madvise(source.data, bytes, advice);
        numamove::migrate_options options;
        options.path = numamove::backend::userspace;
        options.force = true;
        options.protect_writes = fenced;
        options.workers = workers;
        // One untimed move first: the destination pages come from memory freed just before,
        // which a VM may have handed back to its host (virtio-balloon free page reporting) and
        // backs again page by page on first touch; otherwise the first configuration of each
        // page size pays that alone (0.5 to 0.8 s per 512 MiB here).
        numamove::migrate(source.data, bytes, node, options);
        std::size_t moved = 0;
        const double t = best_of(repeats, [&] {
          const numamove::migration_result r = numamove::migrate(source.data, bytes, node, options);
          if (r.error || r.failed != 0) {
            std::fprintf(stderr, "migrate failed: %s, %zu pages failed\n",
                         r.error.message().c_str(), r.failed);
            std::exit(1);
          }
          moved = r.moved;
          return std::chrono::duration<double>(r.elapsed).count();
        });
        if (moved * numamove::detail::page_size() != bytes) std::abort();
        for (std::size_t i = 0; i < bytes; i += 4096 * 97)
          if (source.data[i] != static_cast<char>(i >> 12)) std::abort();
        const std::string label = std::string(advice == MADV_HUGEPAGE ? "huge-page" : "4 KiB") +
                                  " destination, " + (fenced ? "fenced" : "unfenced");
        const double fresh = advice == MADV_HUGEPAGE ? t_fresh_huge : t_fresh_small;
        std::printf("%-34s %7u %9.1f %8.2f %10.2f %10.2f %8zu\n", label.c_str(), workers, t * 1e3,
                    gb / t, t / t_warm, t / fresh, anon_huge_bytes(source.data) >> 20);
      }
    }
  }
  std::printf(
      "\n'x faulted' and 'x fresh': relocation time over memcpy time into faulted and into fresh\n"
      "memory of the same page size (1.00: as fast; lower is better).\n");
  return 0;
}
