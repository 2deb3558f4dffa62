// numamove/openmp/schedule.hpp: the pure planning of numamove/openmp.hpp: which thread of a
// static schedule owns which pages, and how much of each thread's chunk is local. No OpenMP and
// no system calls, so the logic can be tested on synthetic topologies (and the MPI layer uses
// node_of_cpus() without OpenMP); numamove/openmp.hpp feeds it the live binding and the
// kernel's page statuses.
#pragma once
#include "../detail/public_header_begin.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <vector>

#include "../detail/linux/syscalls.hpp"
#include "../topology.hpp"

namespace numamove::openmp {

/// The iterations of `#pragma omp for schedule(static)` (chunk 0) or `schedule(static, chunk)`
/// over `iterations` iterations on a team of `threads`.
///
/// With a chunk, OpenMP fixes the assignment: chunk k goes to thread k % threads. Without one,
/// OpenMP leaves the split to the runtime; this is the balanced split libgomp and LLVM's libomp
/// make (the first iterations % threads threads get one iteration more), which the tests check
/// against the runtime they are built with. Pass the chunk to be independent of the runtime.
struct static_schedule {
  std::size_t iterations = 0;
  int threads = 1;
  std::size_t chunk = 0;

  /// The thread that runs iteration `i` (< iterations).
  int thread_of(std::size_t i) const noexcept {
    const auto team = static_cast<std::size_t>(threads);
    if (chunk != 0) return static_cast<int>(i / chunk % team);
    const std::size_t small = iterations / team;
    const std::size_t big_threads = iterations % team;
    const std::size_t big_end = big_threads * (small + 1);
    if (i < big_end) return static_cast<int>(i / (small + 1));
    return static_cast<int>(big_threads + (i - big_end) / small);
  }

  /// Calls visit(thread, first, end) for each block of consecutive iterations [first, end) that
  /// one thread runs, in iteration order.
  template <class Visit>
  void for_each_block(Visit visit) const {
    const auto team = static_cast<std::size_t>(threads);
    if (chunk != 0) {
      for (std::size_t first = 0, k = 0; first < iterations; first += chunk, ++k)
        visit(static_cast<int>(k % team), first, std::min(first + chunk, iterations));
      return;
    }
    const std::size_t small = iterations / team;
    const std::size_t big_threads = iterations % team;
    std::size_t first = 0;
    for (std::size_t t = 0; t < team && first < iterations; ++t) {
      const std::size_t length = small + (t < big_threads ? 1 : 0);
      if (length != 0) visit(static_cast<int>(t), first, first + length);
      first += length;
    }
  }
};

/// The node whose memory a thread with affinity mask `cpus`, now running on `cpu`, should use:
/// the one node with memory that holds every CPU of the mask (a thread bound to a place, or
/// pinned by sched_setaffinity); for a mask spanning nodes (an unbound thread, free to drift),
/// the node of `cpu`. -1 when that CPU is on no node with memory (a memoryless node).
inline int node_of_cpus(const topology& machine, const std::vector<int>& cpus, int cpu) {
  int node = cpus.empty() ? -1 : machine.node_of_cpu(cpus.front());
  for (const int c : cpus)
    if (machine.node_of_cpu(c) != node) return machine.node_of_cpu(cpu);
  return node >= 0 ? node : machine.node_of_cpu(cpu);
}

/// Consecutive base pages one thread places.
struct page_run {
  void* first = nullptr;  ///< page-aligned
  std::size_t pages = 0;
};

/// Which thread places which pages of an array, and where.
struct schedule_plan {
  std::vector<int> nodes;                   ///< per thread: the node its pages go to (-1: none)
  std::vector<std::vector<page_run>> runs;  ///< per thread: its pages, in address order

  /// Base pages thread `t` places.
  std::size_t pages_of(int t) const {
    std::size_t total = 0;
    for (const page_run& run : runs.at(static_cast<std::size_t>(t))) total += run.pages;
    return total;
  }
};

/// Bytes of one iteration when `bytes` are split evenly over `schedule`'s iterations. Throws
/// std::invalid_argument for a team of fewer than one thread or bytes that do not split evenly.
inline std::size_t bytes_per_iteration(std::size_t bytes, const static_schedule& schedule) {
  if (schedule.threads < 1)
    throw std::invalid_argument("numamove::openmp: a schedule needs at least one thread");
  if (schedule.iterations == 0) {
    if (bytes != 0)
      throw std::invalid_argument("numamove::openmp: data for a schedule of no iterations");
    return 0;
  }
  if (bytes % schedule.iterations != 0)
    throw std::invalid_argument(
        "numamove::openmp: the data does not split evenly over the iterations");
  return bytes / schedule.iterations;
}

/// Plans the placement of the `bytes` at `data` for `schedule`, where iteration i works on the
/// i-th of `schedule.iterations` equal slices and thread t should have its slices on
/// thread_nodes[t]. Ownership is decided per `granule` (a multiple of the base page: the base
/// page, or the huge page size where transparent huge pages may back the data, since a huge page
/// moves whole): each granule-aligned block goes to the thread whose iteration holds the middle
/// byte of the block's part inside the array. Every base page the bytes touch is in exactly one
/// run. Throws std::invalid_argument for a thread_nodes size other than schedule.threads, a
/// granule that is not a multiple of the base page, or as bytes_per_iteration() does.
inline schedule_plan plan_for_schedule(const void* data, std::size_t bytes,
                                       const static_schedule& schedule,
                                       const std::vector<int>& thread_nodes,
                                       std::size_t granule = detail::page_size()) {
  const std::size_t slice = bytes_per_iteration(bytes, schedule);
  if (thread_nodes.size() != static_cast<std::size_t>(schedule.threads))
    throw std::invalid_argument("numamove::openmp: one node per thread of the schedule expected");
  const std::size_t page = detail::page_size();
  if (granule == 0 || granule % page != 0)
    throw std::invalid_argument(
        "numamove::openmp: the granule must be a multiple of the page size");
  schedule_plan plan;
  plan.nodes = thread_nodes;
  plan.runs.resize(thread_nodes.size());
  if (bytes == 0) return plan;
  const auto begin = reinterpret_cast<std::uintptr_t>(data);
  const std::uintptr_t end = begin + bytes;
  const std::uintptr_t first_page = begin / page * page;
  const std::uintptr_t end_page = (end + page - 1) / page * page;
  for (std::uintptr_t block = begin / granule * granule; block < end; block += granule) {
    const std::uintptr_t inside_begin = std::max(block, begin);
    const std::uintptr_t inside_end = std::min(block + granule, end);
    const std::uintptr_t middle = inside_begin + (inside_end - inside_begin) / 2;
    const int t = schedule.thread_of((middle - begin) / slice);
    const std::uintptr_t from = std::max(block, first_page);
    const std::uintptr_t to = std::min(block + granule, end_page);
    std::vector<page_run>& runs = plan.runs[static_cast<std::size_t>(t)];
    if (!runs.empty() &&
        reinterpret_cast<std::uintptr_t>(runs.back().first) + runs.back().pages * page == from)
      runs.back().pages += (to - from) / page;
    else
      runs.push_back({reinterpret_cast<void*>(from), (to - from) / page});
  }
  return plan;
}

/// How much of one thread's share of an array is on the thread's node.
struct thread_locality {
  int thread = 0;
  int node = -1;                        ///< the thread's node (-1: on no node with memory)
  std::size_t bytes = 0;                ///< bytes of the thread's iterations
  std::size_t local_bytes = 0;          ///< of those, bytes on `node`
  std::map<int, std::size_t> bytes_on;  ///< bytes per node, or per negative page status

  /// local_bytes / bytes; 1 for a thread with no bytes.
  double fraction() const noexcept {
    return bytes == 0 ? 1.0 : static_cast<double>(local_bytes) / static_cast<double>(bytes);
  }
};

/// Per thread of `schedule`, the bytes of its iterations' slices of [data, data + bytes) on each
/// node, given page_status: one entry per base page from the page holding `data` on, as
/// move_pages(2) reports it in query mode. Throws std::invalid_argument when page_status does
/// not cover the bytes, or as plan_for_schedule() does for the schedule and thread_nodes.
inline std::vector<thread_locality> locality_of(const void* data, std::size_t bytes,
                                                const static_schedule& schedule,
                                                const std::vector<int>& thread_nodes,
                                                const std::vector<int>& page_status) {
  const std::size_t slice = bytes_per_iteration(bytes, schedule);
  if (thread_nodes.size() != static_cast<std::size_t>(schedule.threads))
    throw std::invalid_argument("numamove::openmp: one node per thread of the schedule expected");
  const std::size_t page = detail::page_size();
  const auto begin = reinterpret_cast<std::uintptr_t>(data);
  const std::uintptr_t first_page = begin / page * page;
  if (bytes != 0 && page_status.size() < (begin + bytes - 1 - first_page) / page + 1)
    throw std::invalid_argument("numamove::openmp: page statuses do not cover the data");
  std::vector<thread_locality> result(thread_nodes.size());
  for (std::size_t t = 0; t < result.size(); ++t) {
    result[t].thread = static_cast<int>(t);
    result[t].node = thread_nodes[t];
  }
  if (bytes == 0) return result;
  schedule.for_each_block([&](int t, std::size_t first, std::size_t end) {
    thread_locality& mine = result[static_cast<std::size_t>(t)];
    std::uintptr_t at = begin + first * slice;
    const std::uintptr_t stop = begin + end * slice;
    while (at < stop) {
      const std::size_t index = (at - first_page) / page;
      const std::uintptr_t next = std::min(first_page + (index + 1) * page, stop);
      const int status = page_status[index];
      mine.bytes_on[status] += next - at;
      mine.bytes += next - at;
      if (status == mine.node) mine.local_bytes += next - at;
      at = next;
    }
  });
  return result;
}

}  // namespace numamove::openmp

#include "../detail/public_header_end.hpp"
