// numamove/openmp/follow_async.hpp: follow_threads() whose moves run on numamove's mover
// thread, so that a team computes on other data while its data follows it.
#pragma once
#include "../detail/public_header_begin.hpp"

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <future>
#include <utility>
#include <vector>

#include "../detail/engine/async_mover.hpp"
#include "../detail/engine/migration.hpp"
#include "../detail/openmp/distribute.hpp"
#include "../migration_result.hpp"
#include "../openmp.hpp"

namespace numamove::detail::openmp {

/// The moves of a schedule plan, as one migration with a target per page.
struct follow_moves {
  std::vector<void*> pages;     ///< the pages of threads on a node with memory, ascending
  std::vector<int> targets;     ///< targets[i]: the node of the thread that owns pages[i]
  std::vector<void*> stranded;  ///< the pages of threads on no node with memory, ascending
};

/// Pure: every page of `plan`, sorted by address, with the node of the thread that owns it.
inline follow_moves moves_of(const numamove::openmp::schedule_plan& plan) {
  std::vector<std::pair<std::uintptr_t, int>> owned;
  for (std::size_t t = 0; t < plan.runs.size(); ++t)
    for (const numamove::openmp::page_run& run : plan.runs[t])
      for (std::size_t i = 0; i < run.pages; ++i)
        owned.emplace_back(reinterpret_cast<std::uintptr_t>(run.first) + i * page_size(),
                           plan.nodes[t]);
  std::sort(owned.begin(), owned.end());
  follow_moves moves;
  for (const auto& [page, node] : owned) {
    void* const address = reinterpret_cast<void*>(page);
    if (node < 0) {
      moves.stranded.push_back(address);
      continue;
    }
    moves.pages.push_back(address);
    moves.targets.push_back(node);
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

}  // namespace numamove::detail::openmp

namespace numamove::openmp {

/// follow_threads(data, count, schedule, options), with the moves done on numamove's mover
/// thread (the one of numamove/migrate_async.hpp): at the call, one parallel region bound as
/// options.bind says learns each thread's node, and the pages are given out as
/// plan_for_schedule() says; then the call returns, and one migration with a target per page
/// moves each page that is not on its thread's node while the team computes.
///
/// The future holds one migration_result for the whole data, as migrate() reports it (a status
/// per page from the page holding data on, the counts, one call-level error, path
/// options.migrate.path), not a team_migration: the moves run on one thread, so a thread's
/// share of them has no time or call-level error of its own. The pages of a thread on a CPU of
/// a node without memory stay where they are, with status -ENODEV, counted in `failed`
/// (follow_threads() reports ENODEV for such a thread). The team's nodes are those of the call:
/// a thread re-bound before the future is ready is not followed again.
///
/// Throws at the call as follow_threads() does (std::invalid_argument, std::runtime_error,
/// std::system_error, std::bad_alloc); the future holds std::bad_alloc where the moves'
/// bookkeeping cannot be allocated. The data must stay mapped until the future is ready; what
/// writers meanwhile get, and what a destroyed future, an exit or a fork() do, is as for
/// migrate_async().
template <class T>
std::future<migration_result> follow_async(T* data, std::size_t count,
                                           const static_schedule& schedule,
                                           const team_options& options = {}) {
  const std::size_t bytes = count * sizeof(T);
  bytes_per_iteration(bytes, schedule);  // throws before the team runs
  std::vector<int> nodes;
  for (const thread_binding& b : team_bindings(schedule.threads, options.bind))
    nodes.push_back(b.node);
  const std::size_t granule =
      bytes == 0 ? detail::page_size() : detail::openmp::inspect_mapping(data, bytes).granule;
  detail::openmp::follow_moves moves =
      detail::openmp::moves_of(plan_for_schedule(data, bytes, schedule, nodes, granule));
  return detail::async_mover::shared().submit(
      [moves = std::move(moves), migrate = options.migrate]() mutable {
        return detail::openmp::follow(std::move(moves), migrate);
      });
}

}  // namespace numamove::openmp

#include "../detail/public_header_end.hpp"
