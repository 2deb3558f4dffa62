// Page table entries of a process, from /proc/<pid>/pagemap: present, swapped, exclusive,
// soft-dirty, the frame number, and (Linux 6.7+) the PAGEMAP_SCAN categories.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/linux/pagemap.hpp is internal: include a public numamove header"
#endif

#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#include "../errors.hpp"
#include "../page_batches.hpp"
#include "fd.hpp"
#include "proc.hpp"
#include "syscalls.hpp"

namespace numamove::detail {

/// Bits of a /proc/<pid>/pagemap entry (Documentation/admin-guide/mm/pagemap.rst).
namespace pagemap_bit {
inline constexpr std::uint64_t soft_dirty = 1ULL << 55;
inline constexpr std::uint64_t exclusive = 1ULL << 56;
inline constexpr std::uint64_t file_or_shared = 1ULL << 61;
inline constexpr std::uint64_t swapped = 1ULL << 62;
inline constexpr std::uint64_t present = 1ULL << 63;
inline constexpr std::uint64_t pfn_mask = (1ULL << 55) - 1;  // zero without CAP_SYS_ADMIN
}  // namespace pagemap_bit

/// Reads the pagemap entries of `count` base pages starting at `first` from an open pagemap
/// file into out[0 .. count). Allocates nothing, so the migrator may call it while pages are
/// write-protected. Returns 0, or the errno of pread(2) (EIO for a short file) when the entries
/// cannot all be read.
inline int read_pagemap_entries(int fd, std::uintptr_t first, std::size_t count,
                                std::uint64_t* out) noexcept {
  const std::size_t bytes = count * sizeof(std::uint64_t);
  const off_t offset = static_cast<off_t>(first / page_size() * sizeof(std::uint64_t));
  std::size_t done = 0;
  while (done < bytes) {
    const ssize_t got = ::pread(fd, reinterpret_cast<char*>(out) + done, bytes - done,
                                offset + static_cast<off_t>(done));
    if (got <= 0) return got == 0 ? EIO : last_errno();
    done += static_cast<std::size_t>(got);
  }
  return 0;
}

/// PAGEMAP_SCAN (Linux 6.7, uapi linux/fs.h), spelled out for older headers: the one
/// unprivileged way to tell the shared zero page from a page shared copy-on-write.
namespace pagemap_scan {
struct page_region {
  std::uint64_t start, end, categories;
};
struct arguments {
  std::uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
  std::uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
inline constexpr std::uint64_t is_pfn_zero = 1u << 5;
inline constexpr std::uint64_t is_huge = 1u << 6;
inline constexpr unsigned long request = _IOWR('f', 16, arguments);

/// Walks [first, end) of an open pagemap file, calling visit(region) for each region, in
/// address order, whose pages are all in `category` (is_pfn_zero, is_huge). Returns 0, or the
/// ioctl's errno when the kernel cannot answer (ENOTTY before Linux 6.7).
template <class Visit>
int walk(int pagemap_fd, std::uintptr_t first, std::uintptr_t end, std::uint64_t category,
         Visit visit) {
  page_region regions[64];
  for (std::uintptr_t at = first; at < end;) {
    arguments a{};
    a.size = sizeof a;
    a.start = at;
    a.end = end;
    a.vec = reinterpret_cast<std::uintptr_t>(regions);
    a.vec_len = 64;
    a.category_mask = category;
    a.return_mask = category;
    const int found = ::ioctl(pagemap_fd, request, &a);
    if (found < 0) return last_errno();
    for (int r = 0; r < found; ++r) visit(regions[r]);
    if (a.walk_end <= at) break;
    at = static_cast<std::uintptr_t>(a.walk_end);
  }
  return 0;
}

/// Marks in zero[0 .. count) the base pages of [first, first + count pages) that map the zero
/// page or the huge zero page. Returns 0, or walk()'s errno when the kernel cannot answer;
/// `zero` is then unspecified.
inline int find_zero_pages(int pagemap_fd, std::uintptr_t first, std::size_t count,
                           std::vector<bool>& zero) {
  zero.assign(count, false);
  return walk(pagemap_fd, first, first + count * page_size(), is_pfn_zero,
              [&](const page_region& region) {
                for (std::uintptr_t page = region.start; page < region.end; page += page_size())
                  zero[(page - first) / page_size()] = true;
              });
}
}  // namespace pagemap_scan

/// /proc/<pid>/pagemap, open. The one way numamove reads page table entries. Reading and
/// walking allocate nothing, so the migrator may use them while pages are write-protected.
class pagemap_file {
 public:
  pagemap_file() noexcept = default;

  /// Opens the pagemap of process `pid` (0: the calling process). Allocates nothing. On
  /// failure the result is not open() and errno is open(2)'s.
  static pagemap_file of(int pid) noexcept {
    pagemap_file file;
    file.fd_ = open_proc(pid, "pagemap");
    return file;
  }

  bool is_open() const noexcept { return static_cast<bool>(fd_); }

  /// Reads the entries of `count` base pages starting at page-aligned `first` into
  /// out[0 .. count); entries of unmapped pages are 0. Returns 0, or an errno (EBADF when the
  /// file is not open, pread(2)'s, EIO for a short file) when they cannot all be read.
  int read_entries(std::uintptr_t first, std::size_t count, std::uint64_t* out) const noexcept {
    if (!fd_) return EBADF;
    return read_pagemap_entries(fd_.get(), first, count, out);
  }

  /// Walks [first, end), calling visit(region) for each region, in address order, whose pages
  /// are all in `category` (pagemap_scan::is_pfn_zero, is_huge). Returns 0, or an errno when
  /// the kernel cannot answer (ENOTTY before Linux 6.7, EBADF when the file is not open).
  template <class Visit>
  int walk_regions(std::uintptr_t first, std::uintptr_t end, std::uint64_t category,
                   Visit visit) const {
    if (!fd_) return EBADF;
    return pagemap_scan::walk(fd_.get(), first, end, category, visit);
  }

  /// Marks in zero[0 .. count) the base pages of [first, first + count pages) that map the
  /// zero page or the huge zero page. Returns 0, or an errno when the kernel cannot answer
  /// (ENOTTY before Linux 6.7, EBADF when the file is not open); `zero` is then unspecified.
  int mark_zero_pages(std::uintptr_t first, std::size_t count, std::vector<bool>& zero) const {
    if (!fd_) return EBADF;
    return pagemap_scan::find_zero_pages(fd_.get(), first, count, zero);
  }

  /// Reads the entries of the page-aligned addresses pages[0 .. count), one read per run of
  /// consecutive pages, and calls visit(k, entry) for each page k whose entry could be read, in
  /// order; a run that cannot be read is left out. Allocates (not for the migrator's stops).
  template <class Visit>
  void for_each_entry(const std::uintptr_t* pages, std::size_t count, Visit visit) const {
    std::vector<std::uint64_t> run;
    for_each_page_run(pages, count, page_size(), [&](std::size_t first, std::size_t end) {
      run.resize(end - first);
      if (read_entries(pages[first], end - first, run.data()) != 0) return;
      for (std::size_t k = first; k < end; ++k) visit(k, run[k - first]);
    });
  }

 private:
  unique_fd fd_;
};

}  // namespace numamove::detail
