// How migrate() turns a range into few, large move_pages calls: query first, skip what is
// placed, one address per huge page, sorted by target node, bounded retries of busy pages.
#pragma once

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <system_error>
#include <thread>
#include <vector>

#include "../../migration_result.hpp"
#include "../../move_pages.hpp"
#include "../call_checks.hpp"
#include "../linux/huge_pages.hpp"
#include "kernel_workers.hpp"
#include "../linux/proc.hpp"
#include "../linux/syscalls.hpp"
#include "../userspace/migrator.hpp"
#include "../linux/sys.hpp"

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

inline page_span pages_spanned(const void* data, std::size_t bytes) noexcept {
  if (bytes == 0) return {};
  const std::uintptr_t page = page_size();
  const auto begin = reinterpret_cast<std::uintptr_t>(data);
  const std::uintptr_t first = begin / page * page;
  const std::uintptr_t last = (begin + bytes - 1) / page * page;
  return {first, (last - first) / page + 1};
}

inline std::vector<void*> page_addresses(const page_span& span) {
  std::vector<void*> pages(span.count);
  for (std::size_t i = 0; i < span.count; ++i)
    pages[i] = reinterpret_cast<void*>(span.first + i * page_size());
  return pages;
}

/// One move_pages call over the entries `order` (sorted by target node, so that the kernel
/// batches them). Returns the kernel's return value, errno as the call left it; statuses land in
/// status[order[k]] when it returns 0.
inline long move_entries(backend path, const std::vector<std::size_t>& order, const std::vector<void*>& pages,
                         const std::vector<int>& target, std::vector<int>& status, int flags) {
  std::vector<void*> call_pages(order.size());
  std::vector<int> call_nodes(order.size());
  std::vector<int> call_status(order.size(), -EBUSY);
  for (std::size_t k = 0; k < order.size(); ++k) {
    call_pages[k] = pages[order[k]];
    call_nodes[k] = target[order[k]];
  }
  const long rc = numamove::move_pages(0, order.size(), call_pages.data(), call_nodes.data(),
                                       call_status.data(), flags, path);
  if (rc == 0)
    for (std::size_t k = 0; k < order.size(); ++k) status[order[k]] = call_status[k];
  return rc;
}

/// Fewest base pages a kernel-path worker moves: below that a slice costs more than it copies.
inline constexpr std::size_t kernel_slice_min_pages = 512;

/// How many threads move `pages` base pages on the kernel path when migrate_options::workers is
/// `asked`: 0 and 1 mean the caller alone; more are at most one per kernel_slice_min_pages pages
/// and one per CPU the process may use. Throws as affinity_of() does.
inline unsigned kernel_slices(unsigned asked, std::size_t pages) {
  if (asked <= 1) return 1;
  const std::size_t cpus = affinity_of(0).size();
  const std::size_t by_size = std::max<std::size_t>(1, pages / kernel_slice_min_pages);
  return static_cast<unsigned>(std::max<std::size_t>(1, std::min<std::size_t>({asked, cpus, by_size})));
}

/// Moves the entries `which` as move_entries does, cut into `slices` parts of about the same
/// number of base pages (`weight[i]` for entry i: a huge page's leader moves the whole huge
/// page), in target order, each part its own move_pages call on a kernel worker. Returns 0 when
/// every call returned 0; else the return value of the first part, in entry order, that did
/// not, with that call's errno: the error one call over all the entries would have stopped at.
inline long move_entries_sliced(backend path, const std::vector<std::size_t>& which, const std::vector<void*>& pages,
                                const std::vector<int>& target, const std::vector<std::size_t>& weight,
                                std::vector<int>& status, int flags, unsigned slices) {
  std::vector<std::size_t> order = which;
  const auto by_target = [&](std::size_t a, std::size_t b) { return target[a] < target[b]; };
  if (!std::is_sorted(order.begin(), order.end(), by_target))
    std::stable_sort(order.begin(), order.end(), by_target);
  if (slices <= 1 || order.size() < 2) return move_entries(path, order, pages, target, status, flags);

  std::size_t total = 0;
  for (const std::size_t i : order) total += weight[i];
  std::vector<std::vector<std::size_t>> parts(1);
  std::size_t so_far = 0;
  for (const std::size_t i : order) {
    if (parts.size() < slices && so_far >= total * parts.size() / slices && !parts.back().empty()) parts.emplace_back();
    parts.back().push_back(i);
    so_far += weight[i];
  }
  std::vector<long> rc(parts.size(), 0);
  std::vector<int> call_errno(parts.size(), 0);
  kernel_workers::shared().run(static_cast<unsigned>(parts.size()), [&](unsigned k) {
    rc[k] = move_entries(path, parts[k], pages, target, status, flags);
    call_errno[k] = rc[k] < 0 ? errno : 0;
  });
  for (std::size_t k = 0; k < parts.size(); ++k)
    if (rc[k] != 0) {
      errno = call_errno[k];
      return rc[k];
    }
  return 0;
}

/// Where the entries `which` are now (a query), into status[which[k]]; false on a call error.
inline bool query_entries(backend path, const std::vector<std::size_t>& which,
                          const std::vector<void*>& pages, std::vector<int>& status) {
  std::vector<void*> call_pages(which.size());
  std::vector<int> call_status(which.size());
  for (std::size_t k = 0; k < which.size(); ++k) call_pages[k] = pages[which[k]];
  if (numamove::move_pages(0, which.size(), call_pages.data(), nullptr, call_status.data(), 0, path) != 0)
    return false;
  for (std::size_t k = 0; k < which.size(); ++k) status[which[k]] = call_status[k];
  return true;
}

/// The userspace path of migrate_pages: one call over the whole range in address order (the
/// migrator turns consecutive pages into runs it relocates whole), then bounded retries of the
/// pages that were busy. Call-level checks are done.
inline void migrate_userspace(std::vector<void*>& pages, const std::vector<int>& target, const migrate_options& options,
                              migration_result& result) {
  std::vector<int>& status = result.status;
  status.assign(pages.size(), -EBUSY);
  const userspace::relocation_options relocation{options.force, options.protect_writes, options.workers};
  std::vector<userspace::entry_outcome> outcome;
  if (userspace::move_pages(0, pages.size(), pages.data(), target.data(), status.data(), options.flags, relocation,
                            &outcome) != 0) {
    status.clear();
    result.error = std::error_code(errno, std::generic_category());
    return;
  }
  for (int attempt = 1; attempt <= options.busy_retries; ++attempt) {
    std::vector<std::size_t> busy;
    for (std::size_t i = 0; i < pages.size(); ++i)
      if (status[i] == -EBUSY) busy.push_back(i);
    if (busy.empty()) break;
    std::this_thread::sleep_for(std::chrono::microseconds(50 << attempt));
    std::vector<void*> again(busy.size());
    std::vector<int> nodes(busy.size());
    std::vector<int> again_status(busy.size());
    std::vector<userspace::entry_outcome> again_outcome;
    for (std::size_t k = 0; k < busy.size(); ++k) {
      again[k] = pages[busy[k]];
      nodes[k] = target[busy[k]];
    }
    if (userspace::move_pages(0, busy.size(), again.data(), nodes.data(), again_status.data(), options.flags,
                              relocation, &again_outcome) != 0)
      break;
    for (std::size_t k = 0; k < busy.size(); ++k) {
      status[busy[k]] = again_status[k];
      outcome[busy[k]] = again_outcome[k];
    }
  }
  for (std::size_t i = 0; i < pages.size(); ++i) {
    if (outcome[i] == userspace::entry_outcome::already_there) ++result.already_there;
    else if (outcome[i] == userspace::entry_outcome::moved) ++result.moved;
    else if (outcome[i] == userspace::entry_outcome::moved_from_unknown) ++result.moved, ++result.node_unknown;
    else if (status[i] == -ENOENT) ++result.not_present;
    else if (status[i] < 0) ++result.failed;
  }
  result.bytes = result.moved * page_size();
}

/// The path a migrate with `options` takes: options.path resolved, except that only the userspace
/// path can move a page onto the node it is on, so `force` with automatic takes it.
inline backend path_for(const migrate_options& options) {
  return options.force && options.path == backend::automatic ? backend::userspace : resolve(options.path);
}

/// Moves the base pages `pages` (page-aligned, ascending, distinct) so that pages[i] ends on
/// target[i]. result.first_page is pages[0].
inline migration_result migrate_pages(std::vector<void*> pages, const std::vector<int>& target,
                                      const migrate_options& options) {
  const auto started = std::chrono::steady_clock::now();
  const std::size_t count = pages.size();
  migration_result result;
  result.used = path_for(options);
  result.first_page = count == 0 ? nullptr : pages.front();
  const auto finish = [&]() -> migration_result {
    result.elapsed = std::chrono::steady_clock::now() - started;
    return result;
  };
  const auto fail = [&](int error) {
    result.error = std::error_code(error, std::generic_category());
    return finish();
  };
  if (count == 0) return finish();
  if (const int error = check_flags(options.flags)) return fail(error);
  if (options.force && result.used == backend::kernel) return fail(EINVAL);
  const bool userspace_path = result.used == backend::userspace;
  std::vector<int> checked;
  for (const int node : target) {
    if (std::find(checked.begin(), checked.end(), node) != checked.end()) continue;
    const int error = userspace_path ? userspace::check_reachable_node(node) : check_target_node(node);
    if (error != 0) return fail(error);
    checked.push_back(node);
  }
  if (userspace_path) {
    migrate_userspace(pages, target, options, result);
    return finish();
  }

  std::vector<int>& status = result.status;
  status.assign(count, -EBUSY);
  if (numamove::move_pages(0, count, pages.data(), nullptr, status.data(), 0, result.used) != 0) {
    status.clear();
    return fail(errno);
  }

  // Pages to move; the others are final as queried.
  std::vector<std::size_t> pending;
  for (std::size_t i = 0; i < count; ++i) {
    if (status[i] == target[i]) ++result.already_there;
    else if (status[i] >= 0) pending.push_back(i);
  }

  // One address per huge page: the first pending page inside each huge page moves it whole;
  // the others ("riders") are verified afterwards and moved on their own if they stayed.
  std::vector<std::size_t> riders;
  // Base pages each entry moves, for cutting slices of the same size: only with workers.
  const bool sliced = options.workers > 1;
  std::vector<std::size_t> weight(sliced ? count : 0, 1);
  if (pending.size() >= thp_size() / page_size()) {
    std::vector<void*> pending_pages(pending.size());
    for (std::size_t k = 0; k < pending.size(); ++k) pending_pages[k] = pages[pending[k]];
    const std::vector<std::size_t> extent = huge_extents(pending_pages);
    std::vector<std::size_t> leaders;
    std::uintptr_t last_block = 0;
    bool have_block = false;
    for (std::size_t k = 0; k < pending.size(); ++k) {
      const std::size_t i = pending[k];
      if (extent[k] == 0) {
        leaders.push_back(i);
        continue;
      }
      const std::uintptr_t block = reinterpret_cast<std::uintptr_t>(pages[i]) / extent[k];
      const bool same_block = have_block && block == last_block && target[i] == target[leaders.back()];
      (same_block ? riders : leaders).push_back(i);
      if (sliced && !same_block) weight[i] = extent[k] / page_size();
      last_block = block;
      have_block = true;
    }
    pending.swap(leaders);
  }
  std::size_t pages_to_move = 0;
  if (sliced)
    for (const std::size_t i : pending) pages_to_move += weight[i];
  const unsigned slices = sliced ? kernel_slices(options.workers, pages_to_move) : 1;
  int error = 0;
  for (int attempt = 0; attempt <= options.busy_retries && !pending.empty(); ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::microseconds(50 << attempt));
    const long rc = move_entries_sliced(result.used, pending, pages, target, weight, status, options.flags,
                                        attempt == 0 ? slices : 1);
    if (rc < 0) error = errno;
    std::vector<std::size_t> unsure = pending;
    if (rc == 0) {
      unsure.clear();
      for (const std::size_t i : pending)
        if (status[i] == -EBUSY) unsure.push_back(i);
    }
    unsure.insert(unsure.end(), riders.begin(), riders.end());
    riders.clear();
    std::sort(unsure.begin(), unsure.end());
    if (!unsure.empty() && !query_entries(result.used, unsure, pages, status)) {
      error = errno;
      break;
    }
    pending.clear();
    for (const std::size_t i : unsure)
      if (status[i] >= 0 && status[i] != target[i]) pending.push_back(i);
    if (error != 0) break;
  }
  // A page that is still elsewhere after every attempt is busy, in the seed's words.
  for (const std::size_t i : pending) status[i] = -EBUSY;

  for (std::size_t i = 0; i < count; ++i) {
    if (status[i] == -ENOENT) ++result.not_present;
    else if (status[i] < 0) ++result.failed;
  }
  for (std::size_t i = 0; i < count; ++i)
    if (status[i] == target[i]) ++result.moved;
  result.moved -= result.already_there;  // on the target now, and not before
  result.bytes = result.moved * page_size();
  return error ? fail(error) : finish();
}

}  // namespace numamove::detail
