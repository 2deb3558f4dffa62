// The planning of a kernel-path migration, as pure functions (no system call): which entries to
// move, one address per huge page, slices of equal work in target order, which entries to ask
// about again after a call, and the counts of the outcome. migration.hpp runs the plan.
//
// An "entry" is an index into the caller's arrays: pages[i] moves to target[i], status[i] is
// its move_pages(2) status (a node, or a negative errno).
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/engine/migration_plan.hpp is internal: include a public numamove header"
#endif

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../../migration_result.hpp"

namespace numamove::detail {

/// True when an entry with `status` is on a node, and not `target`: a page to move.
constexpr bool is_elsewhere(int status, int target) noexcept {
  return status >= 0 && status != target;
}

/// Entries already on their target: their number.
inline std::size_t count_placed(const std::vector<int>& status, const std::vector<int>& target) {
  std::size_t placed = 0;
  for (std::size_t i = 0; i < status.size(); ++i)
    if (status[i] == target[i]) ++placed;
  return placed;
}

/// Entries on a node other than their target, ascending: what a migration moves. The others
/// (placed, never touched, unmapped) are final as queried.
inline std::vector<std::size_t> entries_elsewhere(const std::vector<int>& status,
                                                  const std::vector<int>& target) {
  std::vector<std::size_t> elsewhere;
  for (std::size_t i = 0; i < status.size(); ++i)
    if (is_elsewhere(status[i], target[i])) elsewhere.push_back(i);
  return elsewhere;
}

/// The entries of `which` (any order) still on a node other than their target, in that order.
inline std::vector<std::size_t> still_elsewhere(const std::vector<std::size_t>& which,
                                                const std::vector<int>& status,
                                                const std::vector<int>& target) {
  std::vector<std::size_t> elsewhere;
  for (const std::size_t i : which)
    if (is_elsewhere(status[i], target[i])) elsewhere.push_back(i);
  return elsewhere;
}

/// pages[which[k]] for each k: the addresses of the entries `which`.
inline std::vector<void*> pages_of(const std::vector<std::size_t>& which,
                                   const std::vector<void*>& pages) {
  std::vector<void*> chosen(which.size());
  for (std::size_t k = 0; k < which.size(); ++k) chosen[k] = pages[which[k]];
  return chosen;
}

/// What a migration moves, one address per huge page.
struct move_plan {
  /// Entries to move, ascending: every base page, and the first entry inside each huge page
  /// (with the same target), which moves the huge page whole.
  std::vector<std::size_t> leaders;
  /// The other entries inside a leader's huge page, ascending: verified after the move, and
  /// moved on their own if they stayed.
  std::vector<std::size_t> riders;
  /// Base pages each entry moves, by entry, for cutting slices of equal work (a leader moves
  /// its whole huge page); empty when not asked for: one each.
  std::vector<std::size_t> weight;
};

/// Splits `elsewhere` (ascending entries) into leaders and riders, given extent[k], the size of
/// the huge page that backs pages[elsewhere[k]] (0 for a base page; linux/huge_pages.hpp). An
/// entry rides when its huge page and target are those of the leader before it. With `weigh`,
/// weight[i] is extent / base_page for each entry inside a huge page, 1 for the others.
inline move_plan one_per_huge_page(const std::vector<std::size_t>& elsewhere,
                                   const std::vector<void*>& pages, const std::vector<int>& target,
                                   const std::vector<std::size_t>& extent, std::size_t base_page,
                                   bool weigh) {
  move_plan plan;
  if (weigh) plan.weight.assign(pages.size(), 1);
  std::uintptr_t last_block = 0;
  bool have_block = false;
  for (std::size_t k = 0; k < elsewhere.size(); ++k) {
    const std::size_t i = elsewhere[k];
    if (extent[k] == 0) {
      plan.leaders.push_back(i);
      continue;
    }
    const std::uintptr_t block = reinterpret_cast<std::uintptr_t>(pages[i]) / extent[k];
    const bool same_block =
        have_block && block == last_block && target[i] == target[plan.leaders.back()];
    (same_block ? plan.riders : plan.leaders).push_back(i);
    if (weigh) plan.weight[i] = extent[k] / base_page;
    last_block = block;
    have_block = true;
  }
  return plan;
}

/// Base pages the entries `which` move in all, as `weight` counts them (empty: one each).
inline std::size_t work_of(const std::vector<std::size_t>& which,
                           const std::vector<std::size_t>& weight) {
  if (weight.empty()) return which.size();
  std::size_t pages = 0;
  for (const std::size_t i : which) pages += weight[i];
  return pages;
}

/// The workers a kernel-path migration of `bytes` asks for when migrate_options::workers is 0:
/// one per parallel_move_min_bytes, at least 1.
inline unsigned automatic_workers(std::size_t bytes) {
  const std::size_t wanted = bytes / parallel_move_min_bytes;
  return static_cast<unsigned>(std::clamp<std::size_t>(wanted, 1, 1024));
}

/// Fewest base pages a kernel-path worker moves: below that a slice costs more than it copies.
inline constexpr std::size_t kernel_slice_min_pages = 512;

/// How many slices move `pages` base pages when migrate_options::workers is `asked` and the
/// process may use `cpus` CPUs: 1 for asked 0 and 1; else at most one per
/// kernel_slice_min_pages pages and one per CPU, and at least 1.
inline unsigned slice_count(unsigned asked, std::size_t cpus, std::size_t pages) {
  if (asked <= 1) return 1;
  const std::size_t by_size = std::max<std::size_t>(1, pages / kernel_slice_min_pages);
  return static_cast<unsigned>(
      std::max<std::size_t>(1, std::min<std::size_t>({asked, cpus, by_size})));
}

/// `which` in the order of their targets, entries with the same target in the order given:
/// the kernel moves a run of entries with one target as one batch.
inline std::vector<std::size_t> by_target(std::vector<std::size_t> which,
                                          const std::vector<int>& target) {
  const auto before = [&](std::size_t a, std::size_t b) { return target[a] < target[b]; };
  if (!std::is_sorted(which.begin(), which.end(), before))
    std::stable_sort(which.begin(), which.end(), before);
  return which;
}

/// Positions [begin, end) in a list of entries: one slice, one move_pages call.
struct slice {
  std::size_t begin = 0;
  std::size_t end = 0;
};

/// Cuts the entries `order` into at most `slices` consecutive slices of about the same work
/// (weight, as work_of() counts it), none empty: a new slice starts once the slices before it
/// hold their share. One slice when `slices` is 0 or 1 or there are fewer than 2 entries.
inline std::vector<slice> cut_slices(const std::vector<std::size_t>& order,
                                     const std::vector<std::size_t>& weight, unsigned slices) {
  if (slices <= 1 || order.size() < 2) return {slice{0, order.size()}};
  const std::size_t total = work_of(order, weight);
  std::vector<slice> cut(1);
  std::size_t so_far = 0;
  for (std::size_t k = 0; k < order.size(); ++k) {
    const bool share_done = so_far >= total * cut.size() / slices;
    if (cut.size() < slices && share_done && cut.back().end > cut.back().begin)
      cut.push_back(slice{k, k});
    cut.back().end = k + 1;
    so_far += weight.empty() ? 1 : weight[order[k]];
  }
  return cut;
}

/// The entries to ask about after a move of `moved`: those whose status is -EBUSY (busy, or
/// not written because a call stopped early) and every rider, ascending.
inline std::vector<std::size_t> entries_to_recheck(const std::vector<std::size_t>& moved,
                                                   const std::vector<int>& status,
                                                   const std::vector<std::size_t>& riders) {
  std::vector<std::size_t> unsure;
  for (const std::size_t i : moved)
    if (status[i] == -EBUSY) unsure.push_back(i);
  unsure.insert(unsure.end(), riders.begin(), riders.end());
  std::sort(unsure.begin(), unsure.end());
  return unsure;
}

/// Fills the counts of `result` from the final statuses of a kernel-path migration, given
/// result.already_there (entries on their target before it): moved, not_present, failed, bytes.
inline void count_outcomes(const std::vector<int>& status, const std::vector<int>& target,
                           std::size_t base_page, migration_result& result) {
  std::size_t on_target = 0;
  for (std::size_t i = 0; i < status.size(); ++i) {
    if (status[i] == target[i])
      ++on_target;
    else if (status[i] == -ENOENT)
      ++result.not_present;
    else if (status[i] < 0)
      ++result.failed;
  }
  result.moved = on_target - result.already_there;  // on the target now, and not before
  result.bytes = result.moved * base_page;
}

}  // namespace numamove::detail
