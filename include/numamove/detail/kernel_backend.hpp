// The kernel path: move_pages(2) itself, with statuses brought to the seed's meaning on every
// kernel version.
#pragma once

#include <cerrno>
#include <cstdint>
#include <vector>

#include "mappings.hpp"
#include "procfs.hpp"
#include "syscalls.hpp"

namespace numamove::detail {

/// Linux 4.3 to 6.11 report an anonymous page that was never touched as -EFAULT; the seed and
/// every other kernel say -ENOENT ("page is not present").
inline bool kernel_reports_untouched_as_efault() noexcept {
  const int release = kernel_release();
  return release >= 4003 && release < 6012;
}

/// Rewrites -EFAULT to -ENOENT for entries whose address lies in a mapping but has no page
/// (neither present nor swapped). Present pages that gave -EFAULT (the zero page, I/O mappings)
/// and addresses outside any mapping keep -EFAULT. Costs one smaps and one pagemap read, and
/// only on kernels that need it and only when some entry is -EFAULT.
inline void restore_enoent(int pid, unsigned long count, void* const* pages, int* status) {
  std::vector<unsigned long> suspects;
  for (unsigned long i = 0; i < count; ++i)
    if (status[i] == -EFAULT) suspects.push_back(i);
  if (suspects.empty()) return;
  const std::vector<mapping> maps = read_mappings(pid);
  std::vector<std::uint64_t> entry;
  for (const unsigned long i : suspects) {
    const auto address = reinterpret_cast<std::uintptr_t>(pages[i]) / page_size() * page_size();
    const mapping* m = find_mapping(maps, address);
    if (m == nullptr || m->has_flag("io") || m->has_flag("pf")) continue;
    if (!read_pagemap(pid, address, 1, entry)) continue;
    if ((entry[0] & (pagemap_bit::present | pagemap_bit::swapped)) == 0) status[i] = -ENOENT;
  }
}

/// move_pages(2) with the kernel's contract, statuses normalized as restore_enoent says.
/// Normalization runs only on a complete call (return 0), where every status was written.
inline long kernel_move_pages(int pid, unsigned long count, void** pages, const int* nodes,
                              int* status, int flags) {
  const long rc = sys_move_pages(pid, count, pages, nodes, status, flags);
  if (rc == 0 && count > 0 && kernel_reports_untouched_as_efault()) {
    const int saved = errno;
    restore_enoent(pid, count, pages, status);
    errno = saved;
  }
  return rc;
}

}  // namespace numamove::detail
