// How place_for_schedule() and follow_threads() give pages out and move them: one parallel
// region in which every thread finds its node and one thread plans; then every thread moves its
// own pages, or the primary thread moves them all in one call while the others sleep
// (openmp/team.hpp, movers), or, in follow_threads() while the team sleeps and its bindings
// can be read from the kernel, the calling thread moves them with no region at all. follow_async
// moves a plan on the mover thread with the same call.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/openmp/distribute.hpp is internal: include a public numamove header"
#endif

#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <system_error>
#include <utility>
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

/// The data_mapping of the mapping that holds `data`. With `present_only` (follow_threads: only
/// the pages present now move), anonymous memory's granule is a huge page where THPs back it
/// now, which PAGEMAP_SCAN (Linux 6.7+) tells without smaps; smaps shows the THP advice too, but
/// the kernel writes it by walking the pages of every mapping up to this one (on the host 0.2 ms
/// per MiB, more than the query of those pages). So smaps is read only where THPs may back the
/// data and PAGEMAP_SCAN cannot tell, and for file mappings (hugetlb's page size); else maps.
inline data_mapping inspect_mapping(const void* data, std::size_t bytes, bool present_only) {
  data_mapping found{page_size(), false};
  const auto begin = reinterpret_cast<std::uintptr_t>(data);
  const capabilities& system = capabilities::of_this_process();
  const bool thp_possible = !system.thp.empty() && system.thp != "never";
  const bool scans = present_only && system.pagemap_scan;
  const bool smaps_needed = thp_possible && !scans;
  const std::optional<mapping> listed = read_mapping_at(
      0, begin, smaps_needed ? mapping_detail::smaps : mapping_detail::maps);
  if (!listed) return found;
  found.writable = (listed->protection() & PROT_WRITE) != 0;
  const std::uintptr_t huge = thp_size();
  // The aligned huge pages that fit in the mapping and hold part of the data.
  const std::uintptr_t first =
      std::max((listed->start + huge - 1) / huge * huge, begin / huge * huge);
  const std::uintptr_t end =
      std::min(listed->end / huge * huge, (begin + bytes + huge - 1) / huge * huge);
  const bool room = first < end;
  if (!listed->file_backed()) {
    if (!room || !thp_possible) return found;
    std::vector<pagemap_scan::page_region> regions;
    if (scans && scan_huge_regions(first, end, regions) == 0) {
      if (!regions.empty()) found.granule = huge;
      return found;
    }
  }
  const std::optional<mapping> m = smaps_needed ? listed : read_mapping_at(0, begin);
  if (!m) return found;
  if (m->kernel_page_size > page_size())
    found.granule = m->kernel_page_size;
  else if (room && thp_backs(*m, system.thp))
    found.granule = huge;
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

/// Each binding's node.
inline std::vector<int> nodes_of(const std::vector<api::thread_binding>& bindings) {
  std::vector<int> nodes;
  for (const api::thread_binding& binding : bindings) nodes.push_back(binding.node);
  return nodes;
}

/// Each thread's node, from its binding.
inline std::vector<int> nodes_of(const std::vector<api::thread_migration>& threads) {
  std::vector<int> nodes;
  for (const api::thread_migration& thread : threads) nodes.push_back(thread.binding.node);
  return nodes;
}

/// The moves of a schedule plan, as one migration with a target per page.
struct follow_moves {
  std::vector<void*> pages;     ///< the pages of threads on a node with memory, ascending
  std::vector<int> targets;     ///< targets[i]: the node of the thread that owns pages[i]
  std::vector<int> owners;      ///< owners[i]: that thread
  std::vector<void*> stranded;  ///< the pages of threads on no node with memory, ascending
};

/// A run of a plan with the thread that places it.
struct owned_run {
  std::uintptr_t first;
  std::size_t pages;
  std::size_t thread;
};

/// Pure: the runs of `plan`, sorted by address (they are disjoint: sorting them, not their
/// pages, orders the pages).
inline std::vector<owned_run> runs_by_address(const api::schedule_plan& plan) {
  std::vector<owned_run> runs;
  for (std::size_t t = 0; t < plan.runs.size(); ++t)
    for (const api::page_run& run : plan.runs[t])
      runs.push_back({reinterpret_cast<std::uintptr_t>(run.first), run.pages, t});
  std::sort(runs.begin(), runs.end(),
            [](const owned_run& a, const owned_run& b) { return a.first < b.first; });
  return runs;
}

/// Pure: every page of `plan`, sorted by address, with the thread that owns it and its node.
inline follow_moves moves_of(const api::schedule_plan& plan) {
  const std::vector<owned_run> runs = runs_by_address(plan);
  std::size_t pages = 0;
  for (const owned_run& run : runs) pages += run.pages;
  follow_moves moves;
  moves.pages.reserve(pages);
  moves.targets.reserve(pages);
  moves.owners.reserve(pages);
  for (const owned_run& run : runs) {
    const int node = plan.nodes[run.thread];
    for (std::size_t i = 0; i < run.pages; ++i) {
      void* const address = reinterpret_cast<void*>(run.first + i * page_size());
      if (node < 0) {
        moves.stranded.push_back(address);
        continue;
      }
      moves.pages.push_back(address);
      moves.targets.push_back(node);
      moves.owners.push_back(static_cast<int>(run.thread));
    }
  }
  return moves;
}

/// Moves `moves` in one migrate_pages() call. The stranded pages stay where they are, with
/// status -ENODEV, counted in `failed`, in address order among the others.
inline migration_result follow(follow_moves moves, const migrate_options& options) {
  if (moves.stranded.empty()) return migrate_pages(std::move(moves.pages), moves.targets, options);
  const std::vector<void*> moving = moves.pages;
  migration_result result = migrate_pages(std::move(moves.pages), moves.targets, options);
  const auto before = [](const void* a, const void* b) {
    return reinterpret_cast<std::uintptr_t>(a) < reinterpret_cast<std::uintptr_t>(b);
  };
  result.first_page = moving.empty() || before(moves.stranded.front(), moving.front())
                          ? moves.stranded.front()
                          : moving.front();
  if (result.error) return result;
  std::vector<int> status;
  status.reserve(moving.size() + moves.stranded.size());
  std::size_t k = 0;
  for (const void* stranded : moves.stranded) {
    for (; k < moving.size() && before(moving[k], stranded); ++k)
      status.push_back(result.status[k]);
    status.push_back(-ENODEV);
  }
  for (; k < moving.size(); ++k) status.push_back(result.status[k]);
  result.failed += moves.stranded.size();
  result.status = std::move(status);
  return result;
}

/// Who moves the `bytes` of a plan for a team of `threads`, as `asked` says.
inline api::movers movers_for(api::movers asked, std::size_t bytes, int threads) {
  if (asked != api::movers::automatic) return asked;
  const bool large = bytes / static_cast<std::size_t>(threads) >= parallel_move_min_bytes;
  return threads > 1 && large ? api::movers::team : api::movers::caller;
}

/// Counts `thread`'s pages of a plan; ENODEV for a thread with pages on no node with memory.
inline void give_pages(const api::schedule_plan& plan, api::thread_migration& thread) {
  thread.pages = plan.pages_of(thread.binding.thread);
  if (plan.nodes[static_cast<std::size_t>(thread.binding.thread)] < 0 && thread.pages != 0)
    thread.error = std::error_code(ENODEV, std::generic_category());
}

/// movers::team: the calling thread's share of a plan: touch its pages (when `touch`), then
/// move those not on its node, all its runs in one migrate (one set of call-level checks and
/// one batched query).
inline void move_share(const api::schedule_plan& plan, api::thread_migration& mine, bool touch,
                       std::uintptr_t begin, const migrate_options& options) {
  const auto started = std::chrono::steady_clock::now();
  const auto t = static_cast<std::size_t>(mine.binding.thread);
  give_pages(plan, mine);
  if (mine.error) return;
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

/// movers::caller: every page of `plan` in one migration from the calling thread, each page to
/// its thread's node; each thread's share of the outcome goes to threads[t].
inline void move_for_team(const api::schedule_plan& plan, const migrate_options& options,
                          std::vector<api::thread_migration>& threads) {
  const auto started = std::chrono::steady_clock::now();
  for (api::thread_migration& thread : threads) give_pages(plan, thread);
  follow_moves moves = moves_of(plan);
  std::vector<bool> placed_before;
  const migration_result r =
      migrate_pages(std::move(moves.pages), moves.targets, options, &placed_before);
  const auto elapsed = std::chrono::steady_clock::now() - started;
  for (std::size_t k = 0; k < r.status.size(); ++k) {
    api::thread_migration& owner = threads[static_cast<std::size_t>(moves.owners[k])];
    if (placed_before[k])
      ++owner.already_local;
    else if (r.status[k] == moves.targets[k])
      ++owner.moved;
    else if (r.status[k] == -ENOENT)
      ++owner.not_present;
    else if (r.status[k] < 0)
      ++owner.failed;
  }
  for (api::thread_migration& thread : threads) {
    if (thread.pages == 0 || thread.error) continue;
    thread.bytes = thread.moved * page_size();
    thread.error = r.error;
    thread.elapsed = elapsed;
  }
}

/// Where the team's other threads wait while the primary thread plans and moves for them:
/// asleep, not spinning at an OpenMP barrier. Every page the kernel moves shoots down the TLBs
/// of the CPUs running the process's threads (an interrupt per page; in the emulated guests a
/// spinning team made one 8 MiB move 5x slower), and each barrier of a waking team cost
/// milliseconds there.
class sleeping_team {
 public:
  explicit sleeping_team(int threads) : others_(threads - 1) {}

  /// Called by every thread but the primary: sleeps until the primary's next wake(). What the
  /// thread wrote before is visible to the primary once until_all_asleep() returns.
  void sleep() {
    std::unique_lock<std::mutex> lock(mutex_);
    const unsigned round = round_;
    if (++asleep_ == others_) all_asleep_.notify_one();
    woken_.wait(lock, [&] { return round_ != round; });
  }

  /// Called by the primary: returns once every other thread sleeps.
  void until_all_asleep() {
    std::unique_lock<std::mutex> lock(mutex_);
    all_asleep_.wait(lock, [&] { return asleep_ == others_; });
  }

  /// Called by the primary after until_all_asleep(): wakes the others. What the primary wrote
  /// before is visible to them.
  void wake() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      asleep_ = 0;
      ++round_;
    }
    woken_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable all_asleep_;
  std::condition_variable woken_;
  int others_;
  int asleep_ = 0;
  unsigned round_ = 0;
};

/// Whether a huge page may hold pages of two threads of `plan` bound for different nodes: true
/// unless one query on `path` finds, at every such boundary, the pages on its two sides on
/// different nodes or not present. A huge page moves whole and lies on one node, so one that
/// spans the boundary would show the same node on both sides.
inline bool may_split_huge_page(const api::schedule_plan& plan, backend path) {
  const std::vector<owned_run> runs = runs_by_address(plan);
  const std::size_t page = page_size();
  std::vector<void*> sides;  // the last page before each boundary, then the first after it
  for (std::size_t k = 1; k < runs.size(); ++k)
    if (plan.nodes[runs[k].thread] != plan.nodes[runs[k - 1].thread]) {
      sides.push_back(reinterpret_cast<void*>(runs[k - 1].first + (runs[k - 1].pages - 1) * page));
      sides.push_back(reinterpret_cast<void*>(runs[k].first));
    }
  if (sides.empty()) return false;
  std::vector<int> status;
  if (query_all(path, sides, status) != 0) return true;
  for (std::size_t i = 0; i < sides.size(); i += 2)
    if (status[i] >= 0 && status[i] == status[i + 1]) return true;
  return false;
}

/// follow_threads(): the plan of `data` for threads bound for `nodes`, and its granule.
struct follow_plan {
  api::schedule_plan plan;
  std::size_t granule = 0;
};

/// Plans with the base page, and asks inspect_mapping() for the granule only where a huge page
/// may hold pages of two threads going to different nodes (may_split_huge_page()): its /proc
/// read costs 0.1 ms on a host and 2 to 4 ms in the emulated guests, more than a small move,
/// where the query of two pages per boundary costs about 0.5 us each (never more than smaps,
/// which walks every page of the mapping, even with a boundary on every page).
inline follow_plan plan_to_follow(const void* data, std::size_t bytes,
                                  const api::static_schedule& schedule,
                                  const std::vector<int>& nodes, backend path) {
  follow_plan planned{api::plan_for_schedule(data, bytes, schedule, nodes), page_size()};
  if (bytes == 0 || !may_split_huge_page(planned.plan, path)) return planned;
  planned.granule = inspect_mapping(data, bytes, true).granule;
  if (planned.granule != page_size())
    planned.plan = api::plan_for_schedule(data, bytes, schedule, nodes, planned.granule);
  return planned;
}

/// follow_threads() with movers::caller, when the team sleeps and its bindings were read from the
/// kernel: the calling thread plans and moves, and no other thread wakes.
inline void follow_without_team(const void* data, std::size_t bytes,
                                const api::static_schedule& schedule,
                                const api::team_options& options,
                                std::vector<api::thread_binding> bindings,
                                api::team_migration& result) {
  for (std::size_t t = 0; t < bindings.size(); ++t)
    result.threads[t].binding = std::move(bindings[t]);
  const follow_plan planned =
      plan_to_follow(data, bytes, schedule, nodes_of(result.threads), result.used);
  move_for_team(planned.plan, options.migrate, result.threads);
  result.granule = planned.granule;
  result.bindings_reused = true;
}

/// place_for_schedule() and follow_threads(): one parallel region in which every thread finds
/// its node and one thread plans; then, as options.moved_by says, every thread moves its own
/// pages, or the threads touch theirs (when `touch`) and the primary thread (the caller) moves
/// them all while the others sleep. follow_threads() with movers::caller skips the region when it
/// can read the bindings from the kernel (bindings_without_waking()).
inline api::team_migration distribute(const void* data, std::size_t bytes,
                                      const api::static_schedule& schedule,
                                      const api::team_options& options, bool touch) {
  const auto started = std::chrono::steady_clock::now();
  api::bytes_per_iteration(bytes, schedule);  // throws before any thread starts
  const topology& machine = topology::system();
  data_mapping mapping{page_size(), false};  // place_for_schedule: inspected while the team wakes
  const auto begin = reinterpret_cast<std::uintptr_t>(data);
  const bool present_only = !touch;  // follow_threads() moves only the pages present
  api::team_migration result;
  result.used = path_for(options.migrate);
  result.moved_by = movers_for(options.moved_by, bytes, schedule.threads);
  result.threads.resize(static_cast<std::size_t>(schedule.threads));
  const bool team_moves = result.moved_by == api::movers::team;
  const team_shape shape = shape_of_team(schedule.threads, options.bind);
  if (!touch && !team_moves)
    if (auto bindings = bindings_without_waking(machine, shape)) {
      follow_without_team(data, bytes, schedule, options, std::move(*bindings), result);
      result.elapsed = std::chrono::steady_clock::now() - started;
      return result;
    }
  std::vector<pid_t> thread_ids(static_cast<std::size_t>(schedule.threads));
  api::schedule_plan plan;
  team_errors errors;
  sleeping_team sleep(schedule.threads);
  const auto plan_for_team = [&] {
    errors.guard([&] {
      if (errors.failed()) return;
      const std::vector<int> nodes = nodes_of(result.threads);
      if (present_only) {
        follow_plan planned = plan_to_follow(data, bytes, schedule, nodes, result.used);
        plan = std::move(planned.plan);
        mapping.granule = planned.granule;
      } else {
        plan = api::plan_for_schedule(data, bytes, schedule, nodes, mapping.granule);
      }
    });
  };
  // movers::team: barriers, then every thread moves its own share.
  const auto team_body = [&](api::thread_migration& mine) {
#pragma omp barrier
#pragma omp single
    plan_for_team();
    if (errors.failed()) return;
    errors.guard([&] { move_share(plan, mine, touch, begin, options.migrate); });
  };
  // movers::caller: the others sleep while the primary plans, wake to touch their pages (when
  // `touch`), and sleep again while it moves them all.
  const auto caller_body = [&](std::size_t t) {
    const auto touch_own = [&] {
      if (touch && plan.nodes[t] >= 0)
        for (const api::page_run& run : plan.runs[t]) touch_run(run, begin);
    };
    if (t != 0) {
      sleep.sleep();
      if (errors.failed()) return;
      touch_own();
      if (touch) sleep.sleep();
      return;
    }
    sleep.until_all_asleep();
    plan_for_team();
    if (!errors.failed() && touch) {
      sleep.wake();
      touch_own();
      sleep.until_all_asleep();
    }
    if (!errors.failed())
      errors.guard([&] { move_for_team(plan, options.migrate, result.threads); });
    sleep.wake();
  };
  auto body = [&] {
    const auto t = static_cast<std::size_t>(omp_get_thread_num());
    api::thread_migration& mine = result.threads[t];
    errors.guard([&] { mine.binding = current_binding(machine); });
    thread_ids[t] = this_thread_id();
    if (t == 0 && touch && bytes != 0)
      errors.guard([&] {
        mapping = inspect_mapping(data, bytes, false);
        touch = mapping.writable;
      });
    if (team_moves)
      team_body(mine);
    else
      caller_body(t);
  };
  in_team(schedule.threads, options.bind, body);
  errors.rethrow();
  learned_team learned{shape, std::move(thread_ids), {}};
  for (const api::thread_migration& thread : result.threads)
    learned.bindings.push_back(thread.binding);
  last_learned_team = std::move(learned);
  result.granule = mapping.granule;
  result.elapsed = std::chrono::steady_clock::now() - started;
  return result;
}

}  // namespace numamove::detail::openmp
