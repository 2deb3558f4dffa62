// numamove/openmp/follow_async.hpp: follow_threads() whose moves run on numamove's mover
// thread, so that a team computes on other data while its data follows it.
#pragma once
#include "../detail/public_header_begin.hpp"

#include <cstddef>
#include <future>
#include <utility>
#include <vector>

#include "../detail/engine/async_mover.hpp"
#include "../detail/openmp/distribute.hpp"
#include "../migration_result.hpp"
#include "../openmp.hpp"

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
  const std::vector<int> nodes =
      detail::openmp::nodes_of(team_bindings(schedule.threads, options.bind));
  const detail::openmp::follow_plan planned = detail::openmp::plan_to_follow(
      data, bytes, schedule, nodes, detail::path_for(options.migrate));
  detail::openmp::follow_moves moves = detail::openmp::moves_of(planned.plan);
  return detail::async_mover::shared().submit(
      [moves = std::move(moves), migrate = options.migrate]() mutable {
        return detail::openmp::follow(std::move(moves), migrate);
      });
}

}  // namespace numamove::openmp

#include "../detail/public_header_end.hpp"
