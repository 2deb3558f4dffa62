// Overlap: a stencil computes on array A while migrate_async() moves array B, against the same
// stencil followed by migrate() of B, measured in one run (medians, the two orders alternating)
// and printed as a ratio; 1.00 is no gain, max(compute, move) / (compute + move) the best.
//   overlap [MiB] [rounds] [path] [pages]   (defaults 64 5 automatic base; path: automatic or
//                                            userspace; pages: base or thp)
//
// With two nodes or more, B moves between the first and the last node. On a one-node machine,
// or with path userspace, every move is a forced userspace relocation onto the node the pages
// are on (migrate_options::force). The stencil's sweeps are chosen so that it takes about as
// long as one move, where overlap gains most.
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <string>
#include <vector>

#include <numamove/migrate_async.hpp>
#include <numamove/numamove.hpp>

#include "timing.hpp"

namespace {

using numamove_bench::median;
using numamove_bench::seconds;

constexpr std::size_t huge_page = std::size_t{2} << 20;

// A touched anonymous array of doubles in a mapping of its own (a move of B must not split or
// merge A's mapping), aligned to 2 MiB and advised MADV_HUGEPAGE when `thp`.
struct array {
  array(std::size_t bytes, bool thp) : count(bytes / sizeof(double)), mapped(bytes + huge_page) {
    void* at = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (at == MAP_FAILED) std::abort();
    base = static_cast<char*>(at);
    data = reinterpret_cast<double*>((reinterpret_cast<std::uintptr_t>(at) + huge_page - 1) /
                                     huge_page * huge_page);
    if (thp) ::madvise(data, bytes, MADV_HUGEPAGE);
    for (std::size_t i = 0; i < count; ++i) data[i] = static_cast<double>(i % 1000);
  }
  ~array() { ::munmap(base, mapped); }
  array(const array&) = delete;
  array& operator=(const array&) = delete;
  std::size_t count;
  std::size_t mapped;
  char* base = nullptr;
  double* data = nullptr;
};

// `sweeps` sweeps of a three-point stencil from `in` into `out` and back.
void stencil(array& in, array& out, int sweeps) {
  for (int s = 0; s < sweeps; ++s) {
    for (std::size_t i = 1; i + 1 < in.count; ++i)
      out.data[i] = 0.25 * in.data[i - 1] + 0.5 * in.data[i] + 0.25 * in.data[i + 1];
    std::swap(in.data, out.data);
  }
}

void check(const numamove::migration_result& r, std::size_t pages) {
  if (!r || r.moved != pages)
    std::printf("warning: a move moved %zu of %zu pages (error: %s)\n", r.moved, pages,
                r.error.message().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 64;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
  const bool userspace_asked = argc > 3 && std::string(argv[3]) == "userspace";
  const bool thp = argc > 4 && std::string(argv[4]) == "thp";
  const numamove::topology& machine = numamove::topology::system();
  const int a = machine.nodes().front();
  const int b = machine.nodes().back();
  numamove::migrate_options options;
  if (userspace_asked || a == b) {
    options.path = numamove::backend::userspace;
    options.force = true;
  }

  array in(mib << 20, thp);
  array out(mib << 20, thp);
  array moving(mib << 20, thp);
  const std::size_t pages = (mib << 20) / numamove::detail::page_size();
  int to = a;
  const auto next_node = [&] { return to = (to == a ? b : a); };

  // One untimed move first (the first touch of a node's memory in a process is slower), then
  // the sweeps that take about as long as one move.
  check(numamove::migrate(moving.data, moving.count, next_node(), options), pages);
  const double one_move = seconds(
      [&] { check(numamove::migrate(moving.data, moving.count, next_node(), options), pages); });
  const double one_sweep = seconds([&] { stencil(in, out, 1); });
  const int sweeps = std::max(1, static_cast<int>(one_move / one_sweep + 0.5));
  std::printf(
      "overlap: %zu MiB moved, %zu MiB computed on, %s pages, %d sweeps, %d rounds (median), "
      "nodes %d <-> %d, %s path%s\n",
      mib, 2 * mib, thp ? "THP" : "base", sweeps, rounds, a, b,
      options.path == numamove::backend::userspace ? "userspace" : "kernel",
      options.force ? " (forced relocation)" : "");

  std::vector<double> t_compute, t_move, t_then, t_overlapped;
  for (int round = 0; round < rounds; ++round) {
    const auto sequential = [&] {
      t_compute.push_back(seconds([&] { stencil(in, out, sweeps); }));
      t_move.push_back(seconds([&] {
        check(numamove::migrate(moving.data, moving.count, next_node(), options), pages);
      }));
      t_then.push_back(t_compute.back() + t_move.back());
    };
    const auto overlapped = [&] {
      t_overlapped.push_back(seconds([&] {
        std::future<numamove::migration_result> moved =
            numamove::migrate_async(moving.data, moving.count, next_node(), options);
        stencil(in, out, sweeps);
        check(moved.get(), pages);
      }));
    };
    if (round % 2 == 0)
      sequential(), overlapped();
    else
      overlapped(), sequential();
  }
  const double compute = median(t_compute), move = median(t_move);
  const double then = median(t_then), together = median(t_overlapped);
  std::printf("  compute alone %8.2f ms   move alone %8.2f ms\n", compute * 1e3, move * 1e3);
  std::printf(
      "  compute then move %8.2f ms   compute + migrate_async %8.2f ms   ratio %.2f (best %.2f)\n",
      then * 1e3, together * 1e3, together / then, std::max(compute, move) / (compute + move));
  return 0;
}
