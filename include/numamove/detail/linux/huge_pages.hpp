// Which pages of a range are backed by huge pages (THP or hugetlb), so a move can pass one
// address per huge page.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/linux/huge_pages.hpp is internal: include a public numamove header"
#endif

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "../errors.hpp"
#include "maps.hpp"
#include "pagemap.hpp"
#include "sys.hpp"
#include "syscalls.hpp"

namespace numamove::detail {

/// True when transparent huge pages may back mapping `m` under THP mode `thp` ("always",
/// "madvise", "never", as capabilities::thp reports it): "always" unless the mapping opted out
/// (MADV_NOHUGEPAGE), "madvise" where it opted in (MADV_HUGEPAGE).
inline bool thp_backs(const mapping& m, const std::string& thp) {
  if (m.has_flag("nh")) return false;
  return thp == "always" || (thp == "madvise" && m.has_flag("hg"));
}

/// The huge-page-backed parts of [first, end) of this process into `regions`, from one
/// PAGEMAP_SCAN walk of just that range. Returns 0, or an errno: ENOTTY where the kernel does
/// not have the ioctl (before 6.7), open(2)'s where the pagemap cannot be opened.
inline int scan_huge_regions(std::uintptr_t first, std::uintptr_t end,
                             std::vector<pagemap_scan::page_region>& regions) {
  regions.clear();
  const pagemap_file pagemap = pagemap_file::of(0);
  if (!pagemap.is_open()) return last_errno();
  const auto keep = [&](const pagemap_scan::page_region& region) { regions.push_back(region); };
  return pagemap.walk_regions(first, end, pagemap_scan::is_huge, keep);
}

/// For each page of `pages` (page-aligned, ascending), the size of the huge page that backs or
/// may back it, or 0 for a base page. With PAGEMAP_SCAN (Linux 6.7+): exact. Without it, only
/// where a file, shmem or hugetlb mapping overlaps the pages: the mapping's page size for
/// hugetlb, and the THP size anywhere in a mapping that holds THPs (from smaps; a guess the
/// caller verifies with a query after the move). Anonymous memory then gets 0 without reading
/// smaps, whose page-table walk over the whole process cost more than the move for moves of a
/// few MiB: the kernel moves a THP whole from any of its pages, and the other pages' -EBUSY in
/// the same call is checked by the caller's query after the move.
inline std::vector<std::size_t> huge_extents(const std::vector<void*>& pages) {
  std::vector<std::size_t> extent(pages.size(), 0);
  if (pages.empty()) return extent;
  const auto first = reinterpret_cast<std::uintptr_t>(pages.front());
  const auto end = reinterpret_cast<std::uintptr_t>(pages.back()) + page_size();
  std::vector<pagemap_scan::page_region> regions;
  if (scan_huge_regions(first, end, regions) == 0) {
    std::size_t r = 0;
    for (std::size_t k = 0; k < pages.size() && r < regions.size(); ++k) {
      const auto address = reinterpret_cast<std::uintptr_t>(pages[k]);
      while (r < regions.size() && regions[r].end <= address) ++r;
      if (r < regions.size() && regions[r].start <= address) extent[k] = thp_size();
    }
    return extent;
  }
  bool file_backed = false;
  for (const mapping& m : read_mappings(0, mapping_detail::maps))
    file_backed = file_backed || (m.start < end && first < m.end && m.file_backed());
  if (!file_backed) return extent;
  const std::vector<mapping> maps = read_mappings(0);
  for (std::size_t k = 0; k < pages.size(); ++k) {
    const mapping* m = find_mapping(maps, reinterpret_cast<std::uintptr_t>(pages[k]));
    if (m == nullptr) continue;
    if (m->kernel_page_size > page_size())
      extent[k] = m->kernel_page_size;
    else if (m->anon_huge_bytes > 0)
      extent[k] = thp_size();
  }
  return extent;
}

}  // namespace numamove::detail
