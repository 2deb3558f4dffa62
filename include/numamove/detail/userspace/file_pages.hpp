// Page-cache pages (shared file mappings with MPOL_MF_MOVE_ALL, and pages of private file
// mappings that were never written) cannot be copied without breaking the sharing with the file:
// they are written back if dirty, dropped from this mapping and from the page cache, and faulted
// in again by a thread on the target node, which reads them back from the file into pages of
// its node. A page someone else keeps in the cache (another mapping, a write in between) stays
// where it was.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/userspace/file_pages.hpp is internal: include a public numamove header"
#endif

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

#include "../linux/huge_pages.hpp"
#include "../linux/maps.hpp"
#include "../linux/pagemap.hpp"
#include "fault_injection.hpp"
#include "../linux/syscalls.hpp"
#include "../linux/sys.hpp"

namespace numamove::detail::userspace {

/// The most pages a read fault of a file page maps (the kernel's fault_around_bytes default,
/// 64 KiB). The window is aligned to that size but moved to start at the mapping's start when
/// it would begin before it (do_fault_around), so a fault maps pages up to
/// fault_around_pages - 1 away on either side: the pages there beside a refaulted chunk that
/// were not mapped are unmapped again.
inline constexpr std::size_t fault_around_pages = 16;

/// Drops this process's mapping of the pages of [first, first + pages) that are present now
/// but were not in `before` (their pagemap entries then): file pages a fault mapped around
/// another, which were not mapped before. Allocates nothing.
inline void unmap_mapped_since(const pagemap_file& pagemap, std::uintptr_t first, std::size_t pages,
                               const std::uint64_t* before) noexcept {
  for (std::size_t j = 0; j < pages; ++j) {
    std::uint64_t now = 0;
    const std::uintptr_t at = first + j * page_size();
    if ((before[j] & pagemap_bit::present) == 0 && pagemap.read_entries(at, 1, &now) == 0 &&
        (now & pagemap_bit::present) != 0)
      ::madvise(reinterpret_cast<void*>(at), page_size(), MADV_DONTNEED);
  }
}

/// Writes back, drops and faults in again [begin, begin + pages) of a mapping of `fd` whose first
/// page is at file offset `offset`. `shared` mappings are written back first (msync); private
/// ones hold only clean page-cache pages here (the caller checked). `evicted[j]` says which pages
/// left the cache and were read back by the calling thread; the others stayed where they were.
/// Every page is present again afterwards. Returns 0, or, when the range was left alone, EIO
/// (the writeback failed) or EBUSY. Allocates nothing.
inline int refault(std::uintptr_t begin, std::size_t pages, int fd, off_t offset, bool shared,
                   unsigned char* evicted) noexcept {
  void* const at = reinterpret_cast<void*>(begin);
  const std::size_t bytes = pages * page_size();
  for (std::size_t j = 0; j < pages; ++j) evicted[j] = 0;
  if (shared) {
    int error = injected(failure_point::writeback);
    if (error == 0 && ::msync(at, bytes, MS_SYNC) != 0) error = errno;
    if (error != 0) return error == EIO ? EIO : EBUSY;
  }
  // Our mapping of the pages goes; the data stays in the (clean) cache or the file.
  if (::madvise(at, bytes, MADV_DONTNEED) != 0) return EBUSY;
  // The cache drops only whole folios (up to a huge page in size), and only those nobody maps:
  // ask over the huge-page-aligned span, so that a folio our pages share with unmapped
  // neighbours can go. Those neighbours are read again from the file when someone needs them.
  const auto huge = static_cast<off_t>(thp_size());
  const off_t from = offset / huge * huge;
  const off_t to = (offset + static_cast<off_t>(bytes) + huge - 1) / huge * huge;
  ::posix_fadvise(fd, from, to - from, POSIX_FADV_DONTNEED);
  // mincore reports page-cache residency for file mappings: what is still there was not dropped.
  if (::mincore(at, bytes, evicted) == 0) {
    for (std::size_t j = 0; j < pages; ++j) evicted[j] = (evicted[j] & 1) ? 0 : 1;
  }
#ifdef MADV_POPULATE_READ
  if (::madvise(at, bytes, MADV_POPULATE_READ) == 0) return 0;
#endif
  for (std::size_t j = 0; j < pages; ++j)
    (void)*reinterpret_cast<volatile const char*>(begin + j * page_size());
  return 0;
}

}  // namespace numamove::detail::userspace
