// The kernel path: move_pages(2) itself, with statuses brought to the seed's meaning on every
// kernel version.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/kernel/backend.hpp is internal: include a public numamove header"
#endif

#include <sys/mman.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../page_batches.hpp"
#include "../linux/maps.hpp"
#include "../linux/pagemap.hpp"
#include "../linux/sys.hpp"
#include "../linux/syscalls.hpp"

namespace numamove::detail {

/// Linux 4.3 to 6.11 report an anonymous page that was never touched as -EFAULT; the seed and
/// every other kernel say -ENOENT ("page is not present").
inline bool kernel_reports_untouched_as_efault() noexcept {
  const int release = kernel_release();
  return release >= 4003 && release < 6012;
}

/// The page-aligned address of each entry of `which`, in that order.
inline std::vector<std::uintptr_t> page_starts(const std::vector<std::size_t>& which,
                                               void* const* pages) {
  std::vector<std::uintptr_t> starts(which.size());
  for (std::size_t k = 0; k < which.size(); ++k)
    starts[k] = reinterpret_cast<std::uintptr_t>(pages[which[k]]) / page_size() * page_size();
  return starts;
}

/// Rewrites -EFAULT to -ENOENT for entries whose address lies in a mapping but has no page
/// (neither present nor swapped). Present pages that gave -EFAULT (the zero page, I/O mappings)
/// and addresses outside any mapping keep -EFAULT. Costs one smaps read and one pagemap read
/// per run of consecutive pages, and only on kernels that need it and only when some entry is
/// -EFAULT.
inline void restore_enoent(int pid, unsigned long count, void* const* pages, int* status) {
  const std::vector<std::size_t> suspects = entries_with_status(count, status, -EFAULT);
  if (suspects.empty()) return;
  const std::vector<mapping> maps = read_mappings(pid);
  std::vector<std::size_t> mapped;  // in a mapping that may hold an ordinary page
  for (const std::size_t i : suspects) {
    const mapping* m = find_mapping(maps, reinterpret_cast<std::uintptr_t>(pages[i]));
    if (m != nullptr && !m->has_flag("io") && !m->has_flag("pf") && m->path != "[vsyscall]")
      mapped.push_back(i);
  }
  const std::vector<std::uintptr_t> starts = page_starts(mapped, pages);
  const pagemap_file pagemap = pagemap_file::of(pid);
  if (!pagemap.is_open()) return;
  pagemap.for_each_entry(starts.data(), starts.size(), [&](std::size_t k, std::uint64_t entry) {
    if ((entry & (pagemap_bit::present | pagemap_bit::swapped)) == 0) status[mapped[k]] = -ENOENT;
  });
}

/// Linux before 6.5 does not see a present page whose entry is PROT_NONE, which is how
/// automatic NUMA balancing leaves the pages it samples: move_pages says -ENOENT and leaves it.
inline bool kernel_hides_numa_hinted_pages() noexcept {
  return kernel_release() < 6005;
}

/// The node of the present page whose pagemap entry is `entry`, in mapping `m`, without
/// move_pages: from its frame number (readable with CAP_SYS_ADMIN) and the memory blocks of each
/// node in sysfs, else from numa_maps when all pages of its mapping are on one node. -1 when
/// neither can tell.
inline int node_of_present_page(std::uint64_t entry, const mapping& m) {
  const int by_frame = node_of_frame(entry & pagemap_bit::pfn_mask);
  if (by_frame >= 0) return by_frame;
  const auto counts = read_numa_maps(0);
  const auto found = counts.find(m.start);
  int only = -1;
  if (found != counts.end())
    for (const auto& [node, pages] : found->second)
      if (pages > 0) only = only == -1 ? node : -2;
  return only >= 0 ? only : -1;
}

/// One look at the present pages of the entries `hidden` of this process (reported -ENOENT):
/// each page of a readable mapping is read once, which ends its NUMA-hinting state, and its
/// entry is returned to be asked for again. A page of a mapping the program made unreadable
/// cannot be read: a query gives its node as node_of_present_page() finds it
/// (numamove::node_unknown when it cannot), a move its node when it is on the target already,
/// else -EBUSY (Linux 6.5+ would move it). Entries whose page is not present stay -ENOENT.
inline std::vector<std::size_t> touch_hidden_pages(const pagemap_file& pagemap,
                                                   std::vector<mapping>& maps,
                                                   const std::vector<std::size_t>& hidden,
                                                   void* const* pages, const int* nodes,
                                                   int* status) {
  std::vector<std::size_t> touched;
  const std::vector<std::uintptr_t> starts = page_starts(hidden, pages);
  pagemap.for_each_entry(starts.data(), starts.size(), [&](std::size_t k, std::uint64_t entry) {
    if ((entry & pagemap_bit::present) == 0) return;
    if (maps.empty()) maps = read_mappings(0);
    const mapping* m = find_mapping(maps, starts[k]);
    if (m == nullptr) return;
    const std::size_t i = hidden[k];
    if ((m->protection() & PROT_READ) == 0) {
      const int node = node_of_present_page(entry, *m);
      if (nodes == nullptr)
        status[i] = node >= 0 ? node : -ENODATA;
      else
        status[i] = node >= 0 && node == nodes[i] ? node : -EBUSY;
      return;
    }
    (void)*reinterpret_cast<const volatile char*>(starts[k]);
    touched.push_back(i);
  });
  return touched;
}

/// move_pages(2) again for the entries `which` of this process, their answers put back in
/// `status`. Returns the entries still -ENOENT; none when the call fails (statuses unchanged).
inline std::vector<std::size_t> ask_again(const std::vector<std::size_t>& which, void** pages,
                                          const int* nodes, int* status, int flags) {
  page_batch again;
  for (const std::size_t i : which) {
    if (nodes == nullptr)
      again.add(i, pages[i]);
    else
      again.add(i, pages[i], nodes[i]);
  }
  const long rc = again.call(
      [&](unsigned long n, void** batch_pages, const int* batch_nodes, int* batch_status) {
        return sys_move_pages(0, n, batch_pages, batch_nodes, batch_status, flags);
      });
  if (rc != 0) return {};
  again.scatter(status);
  std::vector<std::size_t> hidden;
  for (const std::size_t i : which)
    if (status[i] == -ENOENT) hidden.push_back(i);
  return hidden;
}

/// Entries of the calling process reported -ENOENT although the page table holds a present
/// page: their pages are touched (touch_hidden_pages()) and asked for again. The balancer keeps
/// sampling while this runs, so a few rounds are allowed.
inline void reveal_numa_hinted(unsigned long count, void** pages, const int* nodes, int* status,
                               int flags) {
  std::vector<std::size_t> hidden = entries_with_status(count, status, -ENOENT);
  if (hidden.empty()) return;
  const pagemap_file pagemap = pagemap_file::of(0);
  if (!pagemap.is_open()) return;
  std::vector<mapping> maps;  // read when a hidden page is found present
  for (int round = 0; round < 4 && !hidden.empty(); ++round) {
    const std::vector<std::size_t> touched =
        touch_hidden_pages(pagemap, maps, hidden, pages, nodes, status);
    if (touched.empty()) break;
    hidden = ask_again(touched, pages, nodes, status, flags);
  }
}

/// move_pages(2) with the kernel's contract, statuses corrected to the seed's meaning where the
/// kernel version needs it (reveal_numa_hinted, restore_enoent). Corrections run only on a
/// complete call (return 0), where every status was written.
inline long kernel_move_pages(int pid, unsigned long count, void** pages, const int* nodes,
                              int* status, int flags) {
  const long rc = sys_move_pages(pid, count, pages, nodes, status, flags);
  if (rc != 0 || count == 0) return rc;
  const int saved = errno;
  if (pid == 0 && kernel_hides_numa_hinted_pages())
    reveal_numa_hinted(count, pages, nodes, status, flags);
  if (kernel_reports_untouched_as_efault()) restore_enoent(pid, count, pages, status);
  errno = saved;
  return rc;
}

}  // namespace numamove::detail
