// Which pages of a range are backed by huge pages (THP or hugetlb), so a move can pass one
// address per huge page.
#pragma once

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "mappings.hpp"
#include "procfs.hpp"

namespace numamove::detail {

/// Size of a PMD-mapped transparent huge page (2 MiB on x86-64).
inline std::size_t thp_size() {
  static const std::size_t size = [] {
    const std::string text = read_text("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size");
    const unsigned long long value = std::strtoull(text.c_str(), nullptr, 10);
    return value ? static_cast<std::size_t>(value) : std::size_t{2} << 20;
  }();
  return size;
}

// PAGEMAP_SCAN (Linux 6.7, uapi linux/fs.h), spelled out for older headers.
struct pagemap_scan_region {
  std::uint64_t start, end, categories;
};
struct pagemap_scan_arg {
  std::uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted,
      category_mask, category_anyof_mask, return_mask;
};
inline constexpr unsigned long pagemap_scan_request = _IOWR('f', 16, pagemap_scan_arg);
inline constexpr std::uint64_t page_is_huge = 1 << 6;

/// The huge-page-backed parts of [first, end) from one PAGEMAP_SCAN walk of just that range.
/// Returns false where the kernel does not have the ioctl (before 6.7).
inline bool scan_huge_regions(std::uintptr_t first, std::uintptr_t end,
                              std::vector<pagemap_scan_region>& regions) {
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  regions.clear();
  std::vector<pagemap_scan_region> chunk(256);
  pagemap_scan_arg arg{};
  arg.size = sizeof arg;
  arg.start = first;
  arg.end = end;
  arg.category_mask = page_is_huge;
  arg.return_mask = page_is_huge;
  bool supported = true;
  while (arg.start < end) {
    arg.vec = reinterpret_cast<std::uintptr_t>(chunk.data());
    arg.vec_len = chunk.size();
    const long found = ::ioctl(fd, pagemap_scan_request, &arg);
    if (found < 0) {
      supported = false;
      break;
    }
    regions.insert(regions.end(), chunk.begin(), chunk.begin() + found);
    if (arg.walk_end <= arg.start) break;
    arg.start = arg.walk_end;
  }
  ::close(fd);
  return supported;
}

/// For each page of `pages` (page-aligned, ascending), the size of the huge page that backs or
/// may back it, or 0 for a base page. With PAGEMAP_SCAN: exact. Without it: the mapping's page
/// size for hugetlb, and the THP size anywhere in a mapping that holds THPs (a guess the caller
/// verifies with a query after the move).
inline std::vector<std::size_t> huge_extents(const std::vector<void*>& pages) {
  std::vector<std::size_t> extent(pages.size(), 0);
  if (pages.empty()) return extent;
  const auto first = reinterpret_cast<std::uintptr_t>(pages.front());
  const auto end = reinterpret_cast<std::uintptr_t>(pages.back()) + page_size();
  std::vector<pagemap_scan_region> regions;
  if (scan_huge_regions(first, end, regions)) {
    std::size_t r = 0;
    for (std::size_t k = 0; k < pages.size() && r < regions.size(); ++k) {
      const auto address = reinterpret_cast<std::uintptr_t>(pages[k]);
      while (r < regions.size() && regions[r].end <= address) ++r;
      if (r < regions.size() && regions[r].start <= address) extent[k] = thp_size();
    }
    return extent;
  }
  const std::vector<mapping> maps = read_mappings(0);
  for (std::size_t k = 0; k < pages.size(); ++k) {
    const mapping* m = find_mapping(maps, reinterpret_cast<std::uintptr_t>(pages[k]));
    if (m == nullptr) continue;
    if (m->kernel_page_size > page_size()) extent[k] = m->kernel_page_size;
    else if (m->anon_huge_bytes > 0) extent[k] = thp_size();
  }
  return extent;
}

}  // namespace numamove::detail
