// The userspace migrator's plan, before any page is touched: which pages form runs, where runs
// are cut into chunks, one team of workers per target node and each team's chunks, and the
// batches phase B commits one stop at a time. Pure functions of the examined pages (no system
// calls), tested on their own in tests/unit/test_relocation_plan.cpp; relocation.hpp carries
// the plan out.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/userspace/relocation_plan.hpp is internal: include a public numamove header"
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "../page_batches.hpp"
#include "page_rules.hpp"

namespace numamove::detail::userspace {

/// Bytes committed per stop of the program's threads: long enough to pay for the stop, short
/// enough that the threads are not held long (about 3 ms of copying here).
inline constexpr std::size_t batch_bytes = std::size_t{32} << 20;

/// Bytes of a team's share that ask for one more worker (at most one per CPU of the node and 8).
inline constexpr std::size_t bytes_per_worker = std::size_t{32} << 20;

/// A stretch of consecutive pages of one mapping with one target node and one treatment.
struct run_plan {
  std::size_t first = 0;  ///< pages[first .. first + pages) of the examination
  std::size_t pages = 0;
  int node = -1;
  std::size_t vma = 0;
  treatment kind = treatment::copy;
};

/// At most one huge page's worth of a run, cut at huge-page boundaries of the original
/// addresses.
struct chunk_cut {
  std::size_t first = 0;  ///< pages[first .. first + pages) of the examination
  std::size_t pages = 0;
  std::size_t run = 0;
};

/// Chunks [begin, end), in address order.
struct chunk_range {
  std::size_t begin = 0;
  std::size_t end = 0;
};

/// The whole plan of one relocation.
struct relocation_plan {
  std::vector<run_plan> runs;
  std::vector<chunk_cut> chunks;
  std::vector<int> nodes;            ///< one team per target node, in order of first use
  std::vector<unsigned> team_sizes;  ///< workers per team
  std::vector<std::vector<std::size_t>> orders;  ///< per team: its chunks, ascending
  std::vector<chunk_range> batches;              ///< what each stop commits, in address order
};

/// Copy runs (copy pages, with holes riding inside but never at an end) and refault runs:
/// maximal stretches of `pages` (ascending, `page` bytes apart) of one mapping and one target.
inline std::vector<run_plan> plan_runs(const std::vector<page_facts>& pages, std::size_t page) {
  const auto copy_or_hole = [](treatment t) {
    return t == treatment::copy || t == treatment::hole;
  };
  const auto joins = [&](std::size_t before, std::size_t at) {
    const page_facts& p = pages[before];
    const page_facts& q = pages[at];
    const bool same_kind = (copy_or_hole(p.what) && copy_or_hole(q.what)) ||
                           (p.what == treatment::refault && q.what == treatment::refault);
    return same_kind && q.address == p.address + page && q.vma == p.vma && q.target == p.target;
  };
  std::vector<run_plan> runs;
  for_each_run(pages.size(), joins, [&](std::size_t first, std::size_t end) {
    // Holes at either end stay out: the fresh mapping covers pages to copy only.
    while (first < end && pages[first].what == treatment::hole) ++first;
    while (end > first && pages[end - 1].what == treatment::hole) --end;
    if (first == end ||
        (pages[first].what != treatment::copy && pages[first].what != treatment::refault))
      return;
    runs.push_back({first, end - first, pages[first].target, pages[first].vma, pages[first].what});
  });
  return runs;
}

/// The runs cut into chunks at huge-page boundaries (`huge_pages` base pages of `page` bytes)
/// of the original addresses, in address order.
inline std::vector<chunk_cut> plan_chunks(const std::vector<page_facts>& pages,
                                          const std::vector<run_plan>& runs, std::size_t page,
                                          std::size_t huge_pages) {
  std::vector<chunk_cut> chunks;
  for (std::size_t r = 0; r < runs.size(); ++r) {
    const std::size_t end = runs[r].first + runs[r].pages;
    for (std::size_t i = runs[r].first; i < end;) {
      const std::size_t to_boundary = huge_pages - (pages[i].address / page) % huge_pages;
      const std::size_t length = std::min(to_boundary, end - i);
      chunks.push_back({i, length, r});
      i += length;
    }
  }
  return chunks;
}

/// The target nodes of `runs`, each once, in order of first use: one team each.
inline std::vector<int> plan_nodes(const std::vector<run_plan>& runs) {
  std::vector<int> nodes;
  for (const run_plan& r : runs)
    if (std::find(nodes.begin(), nodes.end(), r.node) == nodes.end()) nodes.push_back(r.node);
  return nodes;
}

/// The index of `node` in `nodes` (it must be there).
inline std::size_t team_of(const std::vector<int>& nodes, int node) noexcept {
  return static_cast<std::size_t>(std::find(nodes.begin(), nodes.end(), node) - nodes.begin());
}

/// Workers per team: `requested` when not 0, else one per bytes_per_worker of the team's runs,
/// at most cpus_of(node) (the CPUs a worker may be pinned to there) and 8; never fewer than 1
/// (a team always has a thread).
template <class CpusOf>
std::vector<unsigned> plan_team_sizes(const std::vector<run_plan>& runs,
                                      const std::vector<int>& nodes, std::size_t page,
                                      unsigned requested, CpusOf cpus_of) {
  std::vector<unsigned> sizes(nodes.size(), 1);
  for (std::size_t t = 0; t < nodes.size(); ++t) {
    if (requested != 0) {
      sizes[t] = requested;
      continue;
    }
    std::size_t bytes = 0;
    for (const run_plan& r : runs)
      if (r.node == nodes[t]) bytes += r.pages * page;
    const std::size_t by_size = std::max<std::size_t>(1, bytes / bytes_per_worker);
    const std::size_t cpus = cpus_of(nodes[t]);
    sizes[t] =
        static_cast<unsigned>(std::max<std::size_t>(1, std::min<std::size_t>({by_size, cpus, 8})));
  }
  return sizes;
}

/// Per team, the indexes of its chunks (those of runs to its node), ascending.
inline std::vector<std::vector<std::size_t>> plan_orders(const std::vector<chunk_cut>& chunks,
                                                         const std::vector<run_plan>& runs,
                                                         const std::vector<int>& nodes) {
  std::vector<std::vector<std::size_t>> orders(nodes.size());
  for (std::size_t k = 0; k < chunks.size(); ++k)
    orders[team_of(nodes, runs[chunks[k].run].node)].push_back(k);
  return orders;
}

/// Consecutive chunks, each batch the fewest that reach `bytes` (the last one may hold less).
inline std::vector<chunk_range> plan_batches(const std::vector<chunk_cut>& chunks, std::size_t page,
                                             std::size_t bytes) {
  std::vector<chunk_range> batches;
  for (std::size_t begin = 0; begin < chunks.size();) {
    std::size_t end = begin;
    for (std::size_t held = 0; end < chunks.size() && held < bytes; ++end)
      held += chunks[end].pages * page;
    batches.push_back({begin, end});
    begin = end;
  }
  return batches;
}

/// The positions in `order` (ascending chunk indexes) of the chunks in `batch`. Allocates
/// nothing: phase B calls it while the program's threads are stopped.
inline chunk_range share_of(const std::vector<std::size_t>& order, chunk_range batch) noexcept {
  const auto position = [&](std::size_t chunk) {
    return static_cast<std::size_t>(std::lower_bound(order.begin(), order.end(), chunk) -
                                    order.begin());
  };
  return {position(batch.begin), position(batch.end)};
}

/// The plan for the examined `pages` (`page` bytes each, `huge_pages` to a huge page) and their
/// `runs` (plan_runs()): chunks, one team per target node of `requested` workers or as many as
/// plan_team_sizes() picks with cpus_of(node), each team's chunks, and batches of batch_bytes.
template <class CpusOf>
relocation_plan plan_relocation(const std::vector<page_facts>& pages, std::vector<run_plan> runs,
                                std::size_t page, std::size_t huge_pages, unsigned requested,
                                CpusOf cpus_of) {
  relocation_plan plan;
  plan.runs = std::move(runs);
  plan.chunks = plan_chunks(pages, plan.runs, page, huge_pages);
  plan.nodes = plan_nodes(plan.runs);
  plan.team_sizes = plan_team_sizes(plan.runs, plan.nodes, page, requested, cpus_of);
  plan.orders = plan_orders(plan.chunks, plan.runs, plan.nodes);
  plan.batches = plan_batches(plan.chunks, page, batch_bytes);
  return plan;
}

}  // namespace numamove::detail::userspace
