// How migrate() turns a range into few, large move_pages calls: query first, skip what is
// placed, one address per huge page, sorted by target node, bounded retries of busy pages, the
// statuses nobody wrote asked for again. The planning is pure (migration_plan.hpp); this file
// runs it, through the engine's dispatch (dispatch.hpp), on the kernel or the userspace path.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/engine/migration.hpp is internal: include a public numamove header"
#endif

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <system_error>
#include <thread>
#include <vector>

#include "../../migration_result.hpp"
#include "../call_checks.hpp"
#include "../errors.hpp"
#include "../linux/huge_pages.hpp"
#include "../linux/sys.hpp"
#include "../linux/syscalls.hpp"
#include "../page_batches.hpp"
#include "../userspace/migrator.hpp"
#include "dispatch.hpp"
#include "kernel_workers.hpp"
#include "migration_plan.hpp"

namespace numamove::detail {

/// The base pages that bytes [data, data + bytes) touch.
struct page_span {
  std::uintptr_t first = 0;  // page-aligned
  std::size_t count = 0;
};

/// True when `count` objects of `size` bytes from `data` do not fit in the address space (the
/// byte count overflows or the range wraps): no page can hold them.
inline bool range_wraps(const void* data, std::size_t count, std::size_t size) noexcept {
  if (size != 0 && count > SIZE_MAX / size) return true;
  return reinterpret_cast<std::uintptr_t>(data) > UINTPTR_MAX - count * size;
}

/// The base pages that bytes [data, data + bytes) touch; none for 0 bytes. The range must not
/// wrap (range_wraps()).
inline page_span pages_spanned(const void* data, std::size_t bytes) noexcept {
  if (bytes == 0) return {};
  const std::uintptr_t page = page_size();
  const auto begin = reinterpret_cast<std::uintptr_t>(data);
  const std::uintptr_t first = begin / page * page;
  const std::uintptr_t last = (begin + bytes - 1) / page * page;
  return {first, (last - first) / page + 1};
}

/// The address of each page of `span`, ascending.
inline std::vector<void*> page_addresses(const page_span& span) {
  std::vector<void*> pages(span.count);
  for (std::size_t i = 0; i < span.count; ++i)
    pages[i] = reinterpret_cast<void*>(span.first + i * page_size());
  return pages;
}

/// How many threads move `pages` base pages on the kernel path when migrate_options::workers is
/// `asked`: slice_count() with the CPUs the process may use. Throws as affinity_of() does.
inline unsigned kernel_slices(unsigned asked, std::size_t pages) {
  if (asked <= 1) return 1;
  return slice_count(asked, affinity_of(0).size(), pages);
}

/// The pause before retry `attempt` (1, 2, ...) of pages that were busy.
inline void pause_before_retry(int attempt) {
  std::this_thread::sleep_for(std::chrono::microseconds(50 << attempt));
}

/// Runs task(k) for k in [0, n): on the calling thread alone when n is 1, else on the kernel
/// workers.
template <class Task>
void run_slices(std::size_t n, const Task& task) {
  if (n == 1)
    task(0u);
  else
    kernel_workers::shared().run(static_cast<unsigned>(n), task);
}

/// Where every page is now: one query on `path` into `status` (a query writes every status or
/// fails; cleared when it fails). Returns 0, or the errno of the query.
inline int query_all(backend path, std::vector<void*>& pages, std::vector<int>& status) {
  status.assign(pages.size(), -EBUSY);
  const int error =
      errno_of(move_pages_on(path, 0, pages.size(), pages.data(), nullptr, status.data(), 0));
  if (error != 0) status.clear();
  return error;
}

/// Where the entries `which` are now: one query on `path`, answers into their statuses. Returns
/// 0, or the errno of the query (statuses unchanged).
inline int query_entries(backend path, const std::vector<std::size_t>& which,
                         const std::vector<void*>& pages, std::vector<int>& status) {
  page_batch query;
  for (const std::size_t i : which) query.add(i, pages[i]);
  const long rc =
      query.call([&](unsigned long n, void** batch_pages, const int* nodes, int* batch_status) {
        return move_pages_on(path, 0, n, batch_pages, nodes, batch_status, 0);
      });
  if (rc == 0) query.scatter(status.data());
  return errno_of(rc);
}

/// Moves the entries `which` to their targets on `path`, in target order (by_target()), cut into
/// `slices` slices of about the same work (cut_slices(), `weight`), each its own move_pages call
/// (on a kernel worker when there are several). Statuses: each entry's answer when every call
/// was complete, else -EBUSY for all of them (unknown: the caller asks again). Returns 0, or
/// the errno of the first slice, in target order, that did not return 0 (0 when that one
/// stopped early with a positive count): the error one call over all the entries would give.
inline int move_entries(backend path, const std::vector<std::size_t>& which,
                        const std::vector<void*>& pages, const std::vector<int>& target,
                        const std::vector<std::size_t>& weight, unsigned slices, int flags,
                        std::vector<int>& status) {
  struct slice_call {
    page_batch batch;
    long rc = 0;
    int error = 0;  // errno_of(rc), read on the thread that made the call
  };
  const std::vector<std::size_t> order = by_target(which, target);
  const std::vector<slice> cut = cut_slices(order, weight, slices);
  std::vector<slice_call> calls(cut.size());
  run_slices(cut.size(), [&](unsigned k) {
    slice_call& c = calls[k];
    for (std::size_t at = cut[k].begin; at < cut[k].end; ++at)
      c.batch.add(order[at], pages[order[at]], target[order[at]]);
    c.rc =
        c.batch.call([&](unsigned long n, void** call_pages, const int* nodes, int* call_status) {
          return move_pages_on(path, 0, n, call_pages, nodes, call_status, flags);
        });
    c.error = errno_of(c.rc);
  });
  for (const slice_call& c : calls)
    if (c.rc != 0) {
      for (const std::size_t i : which) status[i] = -EBUSY;
      return c.error;
    }
  for (const slice_call& c : calls) c.batch.scatter(status.data());
  return 0;
}

/// The entries `plan` says to move, moved with up to options.busy_retries more attempts (after
/// a pause) for those still elsewhere; the first attempt in `slices` slices, the others in one
/// call. After each call, the busy and unwritten entries and the riders are asked about again.
/// An entry still elsewhere after every attempt is -EBUSY, in the seed's words. Returns 0, or
/// the errno of the call or query that failed (which ends the attempts).
inline int move_with_retries(backend path, const std::vector<void*>& pages,
                             const std::vector<int>& target, move_plan plan, unsigned slices,
                             const migrate_options& options, std::vector<int>& status) {
  std::vector<std::size_t> pending = std::move(plan.leaders);
  std::vector<std::size_t> riders = std::move(plan.riders);
  int error = 0;
  for (int attempt = 0; attempt <= options.busy_retries && !pending.empty(); ++attempt) {
    if (attempt > 0) pause_before_retry(attempt);
    error = move_entries(path, pending, pages, target, plan.weight, attempt == 0 ? slices : 1,
                         options.flags, status);
    const std::vector<std::size_t> unsure = entries_to_recheck(pending, status, riders);
    riders.clear();
    if (!unsure.empty())
      if (const int query_error = query_entries(path, unsure, pages, status)) {
        error = query_error;
        break;
      }
    pending = still_elsewhere(unsure, status, target);
    if (error != 0) break;
  }
  for (const std::size_t i : pending) status[i] = -EBUSY;
  return error;
}

/// What the kernel path moves: the entries elsewhere, one address per huge page once there are
/// a huge page's worth of them (huge_extents() reads the page tables), weighed for slices when
/// `weigh`.
inline move_plan plan_moves(const std::vector<void*>& pages, const std::vector<int>& target,
                            const std::vector<int>& status, bool weigh) {
  std::vector<std::size_t> elsewhere = entries_elsewhere(status, target);
  if (elsewhere.size() < thp_size() / page_size()) {
    move_plan plan;
    plan.leaders = std::move(elsewhere);
    return plan;
  }
  const std::vector<std::size_t> extent = huge_extents(pages_of(elsewhere, pages));
  return one_per_huge_page(elsewhere, pages, target, extent, page_size(), weigh);
}

/// The kernel path of migrate_pages, call-level checks done: query, plan, move with retries,
/// count. Returns 0, or the errno of the call that failed (result.status empty when the first
/// query did).
inline int migrate_kernel(std::vector<void*>& pages, const std::vector<int>& target,
                          const migrate_options& options, migration_result& result,
                          std::vector<bool>* placed_before) {
  std::vector<int>& status = result.status;
  if (const int error = query_all(result.used, pages, status)) return error;
  result.already_there = count_placed(status, target);
  if (placed_before != nullptr)
    for (std::size_t i = 0; i < status.size(); ++i) (*placed_before)[i] = status[i] == target[i];
  const unsigned asked =
      options.workers != 0 ? options.workers : automatic_workers(pages.size() * page_size());
  const bool sliced = asked > 1;
  move_plan plan = plan_moves(pages, target, status, sliced);
  const unsigned slices = sliced ? kernel_slices(asked, work_of(plan.leaders, plan.weight)) : 1;
  const int error =
      move_with_retries(result.used, pages, target, std::move(plan), slices, options, status);
  count_outcomes(status, target, page_size(), result);
  return error;
}

/// The userspace migrator's options for a migration with `options`.
inline userspace::relocation_options relocation_of(const migrate_options& options) {
  return {options.force, options.protect_writes, options.workers};
}

/// One call of the userspace migrator over the entries `which`, their statuses and outcomes
/// put back. Returns 0, or the call's errno (statuses and outcomes unchanged).
inline int userspace_move_entries(const std::vector<std::size_t>& which,
                                  const std::vector<void*>& pages, const std::vector<int>& target,
                                  const migrate_options& options, std::vector<int>& status,
                                  std::vector<userspace::entry_outcome>& outcome) {
  page_batch batch;
  for (const std::size_t i : which) batch.add(i, pages[i], target[i]);
  std::vector<userspace::entry_outcome> batch_outcome;
  const long rc =
      batch.call([&](unsigned long n, void** batch_pages, const int* nodes, int* batch_status) {
        return userspace::move_pages(0, n, batch_pages, nodes, batch_status, options.flags,
                                     relocation_of(options), &batch_outcome);
      });
  if (rc != 0) return errno_of(rc);
  batch.scatter(status.data());
  for (std::size_t k = 0; k < batch.size(); ++k) outcome[batch.from[k]] = batch_outcome[k];
  return 0;
}

/// Fills the counts of `result` from the statuses and outcomes of a userspace-path migration.
inline void count_userspace_outcomes(const std::vector<int>& status,
                                     const std::vector<userspace::entry_outcome>& outcome,
                                     migration_result& result) {
  for (std::size_t i = 0; i < status.size(); ++i) {
    if (outcome[i] == userspace::entry_outcome::already_there)
      ++result.already_there;
    else if (outcome[i] == userspace::entry_outcome::moved)
      ++result.moved;
    else if (outcome[i] == userspace::entry_outcome::moved_from_unknown)
      ++result.moved, ++result.node_unknown;
    else if (status[i] == -ENOENT)
      ++result.not_present;
    else if (status[i] < 0)
      ++result.failed;
  }
  result.bytes = result.moved * page_size();
}

/// The userspace path of migrate_pages, call-level checks done: one call over the whole range
/// in address order (the migrator turns consecutive pages into runs it relocates whole), then
/// up to options.busy_retries calls, after a pause, for the pages still busy; a retry that
/// fails ends the retries and is no error. Returns 0, or the errno of the first call
/// (result.status empty).
inline int migrate_userspace(std::vector<void*>& pages, const std::vector<int>& target,
                             const migrate_options& options, migration_result& result,
                             std::vector<bool>* placed_before) {
  std::vector<int>& status = result.status;
  status.assign(pages.size(), -EBUSY);
  std::vector<userspace::entry_outcome> outcome;
  const long rc = userspace::move_pages(0, pages.size(), pages.data(), target.data(), status.data(),
                                        options.flags, relocation_of(options), &outcome);
  if (rc != 0) {
    status.clear();
    return errno_of(rc);
  }
  for (int attempt = 1; attempt <= options.busy_retries; ++attempt) {
    const std::vector<std::size_t> busy = entries_with_status(pages.size(), status.data(), -EBUSY);
    if (busy.empty()) break;
    pause_before_retry(attempt);
    if (userspace_move_entries(busy, pages, target, options, status, outcome) != 0) break;
  }
  count_userspace_outcomes(status, outcome, result);
  if (placed_before != nullptr)
    for (std::size_t i = 0; i < outcome.size(); ++i)
      (*placed_before)[i] = outcome[i] == userspace::entry_outcome::already_there;
  return 0;
}

/// The path a migrate with `options` takes: options.path resolved, except that only the userspace
/// path can move a page onto the node it is on, so `force` with automatic takes it.
inline backend path_for(const migrate_options& options) {
  return options.force && options.path == backend::automatic ? backend::userspace
                                                             : resolve(options.path);
}

/// The call-level checks of a migration on `path`, in the kernel's order: the flags, `force`
/// (EINVAL on the kernel path), then each distinct target node (check_target_node(), and on
/// the userspace path userspace::check_reachable_node()). Returns 0 or the errno.
inline int check_migration(backend path, const migrate_options& options,
                           const std::vector<int>& target) {
  if (const int error = check_flags(options.flags)) return error;
  if (options.force && path == backend::kernel) return EINVAL;
  std::vector<int> checked;
  for (const int node : target) {
    if (std::find(checked.begin(), checked.end(), node) != checked.end()) continue;
    const int error = path == backend::userspace ? userspace::check_reachable_node(node)
                                                 : check_target_node(node);
    if (error != 0) return error;
    checked.push_back(node);
  }
  return 0;
}

/// Moves the base pages `pages` (page-aligned, ascending, distinct) so that pages[i] ends on
/// target[i]. result.first_page is pages[0]. When `placed_before` is given, it is resized to one
/// entry per page, true for the pages that were on their target before the call (counted in
/// already_there).
inline migration_result migrate_pages(std::vector<void*> pages, const std::vector<int>& target,
                                      const migrate_options& options,
                                      std::vector<bool>* placed_before = nullptr) {
  const auto started = std::chrono::steady_clock::now();
  migration_result result;
  result.used = path_for(options);
  result.first_page = pages.empty() ? nullptr : pages.front();
  if (placed_before != nullptr) placed_before->assign(pages.size(), false);
  int error = pages.empty() ? 0 : check_migration(result.used, options, target);
  if (!pages.empty() && error == 0)
    error = result.used == backend::userspace
                ? migrate_userspace(pages, target, options, result, placed_before)
                : migrate_kernel(pages, target, options, result, placed_before);
  if (error != 0) result.error = std::error_code(error, std::generic_category());
  result.elapsed = std::chrono::steady_clock::now() - started;
  return result;
}

}  // namespace numamove::detail
