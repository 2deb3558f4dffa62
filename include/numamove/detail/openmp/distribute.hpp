// How place_for_schedule() and follow_threads() give pages out and move them: one parallel
// region in which every thread finds its node, one thread plans, every thread moves its pages.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/openmp/distribute.hpp is internal: include a public numamove header"
#endif

#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <system_error>
#include <vector>

#include "../../capabilities.hpp"
#include "../../migration_result.hpp"
#include "../../openmp/schedule.hpp"
#include "../../openmp/team.hpp"
#include "../../topology.hpp"
#include "../engine/backend_choice.hpp"
#include "../engine/migration.hpp"
#include "../linux/huge_pages.hpp"
#include "../linux/maps.hpp"
#include "../linux/proc.hpp"
#include "../linux/sys.hpp"
#include "../linux/syscalls.hpp"
#include "team.hpp"

namespace numamove::detail::openmp {

namespace api = numamove::openmp;

/// The block size pages are given out in: a huge page where one may back the data (a hugetlb
/// mapping, or transparent huge pages enabled for it and an aligned huge page fitting in it),
/// since a huge page moves whole; else the base page. Also whether the mapping is writable.
struct data_mapping {
  std::size_t granule = 0;
  bool writable = false;
};

inline data_mapping inspect_mapping(const void* data, std::size_t bytes) {
  data_mapping found{page_size(), false};
  const std::vector<mapping> maps = read_mappings(0);
  const auto begin = reinterpret_cast<std::uintptr_t>(data);
  const mapping* m = find_mapping(maps, begin);
  if (m == nullptr) return found;
  found.writable = (m->protection() & PROT_WRITE) != 0;
  if (m->kernel_page_size > page_size()) {
    found.granule = m->kernel_page_size;
    return found;
  }
  const bool eligible = thp_backs(*m, capabilities::of_this_process().thp);
  const std::uintptr_t huge = thp_size();
  const std::uintptr_t block = std::max((m->start + huge - 1) / huge * huge, begin / huge * huge);
  if (eligible && block + huge <= m->end && block < begin + bytes) found.granule = huge;
  return found;
}

/// Writes, in each page of `run`, the first byte that belongs to the array starting at `begin`
/// with its own value (an atomic add of 0, so a concurrent write is never lost): a page never
/// touched, or mapped to the zero page, gets a page of its own, allocated by the calling thread
/// as the memory policy says. One write fault per page: a load first would map the zero page
/// and the write then copy it (two faults; 8x slower for a fresh array).
inline void touch_run(const api::page_run& run, std::uintptr_t begin) noexcept {
  const std::size_t page = page_size();
  const auto first = reinterpret_cast<std::uintptr_t>(run.first);
  for (std::size_t i = 0; i < run.pages; ++i) {
    char* byte = reinterpret_cast<char*>(std::max(first + i * page, begin));
    __atomic_fetch_add(byte, 0, __ATOMIC_RELAXED);
  }
}

/// The calling thread's share of a plan: touch its pages (when `touch`), then move those not on
/// its node, all its runs in one migrate (one set of call-level checks and one batched query).
inline void move_share(const api::schedule_plan& plan, api::thread_migration& mine, bool touch,
                       std::uintptr_t begin, const migrate_options& options) {
  const auto started = std::chrono::steady_clock::now();
  const auto t = static_cast<std::size_t>(mine.binding.thread);
  mine.pages = plan.pages_of(mine.binding.thread);
  if (plan.nodes[t] < 0) {
    if (mine.pages != 0) mine.error = std::error_code(ENODEV, std::generic_category());
    return;
  }
  std::vector<void*> pages;
  pages.reserve(mine.pages);
  for (const api::page_run& run : plan.runs[t]) {
    if (touch) touch_run(run, begin);
    for (std::size_t i = 0; i < run.pages; ++i)
      pages.push_back(static_cast<char*>(run.first) + i * page_size());
  }
  const migration_result r =
      migrate_pages(std::move(pages), std::vector<int>(mine.pages, plan.nodes[t]), options);
  mine.moved = r.moved;
  mine.already_local = r.already_there;
  mine.not_present = r.not_present;
  mine.failed = r.failed;
  mine.bytes = r.bytes;
  mine.error = r.error;
  mine.elapsed = std::chrono::steady_clock::now() - started;
}

/// place_for_schedule() and follow_threads(): one parallel region in which every thread finds
/// its node, one thread plans, and every thread then moves its own pages.
inline api::team_migration distribute(const void* data, std::size_t bytes,
                                      const api::static_schedule& schedule,
                                      const api::team_options& options, bool touch) {
  const auto started = std::chrono::steady_clock::now();
  api::bytes_per_iteration(bytes, schedule);  // throws before any thread starts
  const topology& machine = topology::system();
  const data_mapping mapping =
      bytes == 0 ? data_mapping{page_size(), false} : inspect_mapping(data, bytes);
  api::team_migration result;
  result.used = path_for(options.migrate);
  result.granule = mapping.granule;
  result.threads.resize(static_cast<std::size_t>(schedule.threads));
  api::schedule_plan plan;
  team_errors errors;
  auto body = [&] {
    api::thread_migration& mine = result.threads[static_cast<std::size_t>(omp_get_thread_num())];
    errors.guard([&] { mine.binding = current_binding(machine); });
#pragma omp barrier
#pragma omp single
    errors.guard([&] {
      if (errors.failed()) return;
      std::vector<int> nodes;
      for (const api::thread_migration& t : result.threads) nodes.push_back(t.binding.node);
      plan = api::plan_for_schedule(data, bytes, schedule, nodes, mapping.granule);
    });
    if (errors.failed()) return;
    errors.guard([&] {
      move_share(plan, mine, touch && mapping.writable, reinterpret_cast<std::uintptr_t>(data),
                 options.migrate);
    });
  };
  in_team(schedule.threads, options.bind, body);
  errors.rethrow();
  result.elapsed = std::chrono::steady_clock::now() - started;
  return result;
}

}  // namespace numamove::detail::openmp
