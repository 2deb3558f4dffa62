// numamove/openmp/next_touch.hpp: pages that move to the node of the thread that next touches
// them. Needs no OpenMP runtime; reached through numamove/openmp.hpp with the rest of the layer.
#pragma once
#include "../detail/public_header_begin.hpp"

#include <cstddef>
#include <memory>

#include "../detail/openmp/next_touch.hpp"

namespace numamove::openmp {

/// Marks memory so that each page moves to the node of the thread that next touches it (reads
/// or writes it), then behaves as before: the kernel has no next-touch, so numamove makes the
/// pages inaccessible and moves each one in the SIGSEGV handler that its first access raises
/// (the fault routing the userspace migrator uses too). Concurrent first touches of a page from
/// several nodes move it once, to one of them, and lose no write. Addresses and contents stay
/// as they were. A page never touched is allocated by the touch, on the toucher's node.
/// Unmarked when destroyed (or by disarm()): pages not touched by then get their protection
/// back where they are.
///
/// The path is the one backend::automatic takes. On the kernel path pages move with
/// move_pages(2). Where move_pages(2) is refused (a container's seccomp profile, a kernel
/// without NUMA), the toucher re-backs each page itself through /proc/self/mem: the new page is
/// allocated by its touch, so it lands where that thread's first touch would (its node, unless a
/// memory policy of the range or thread says otherwise). That path cannot ask where a page was,
/// so every present page it re-backs counts as moved(); pages shared with another process and
/// pages of MAP_SHARED mappings stay where they are and count as failed().
///
/// While marked: do not change the protection of the range, nor unmap it; every first touch
/// costs a fault, an mprotect and a move (two move_pages calls, or four more syscalls and two
/// page copies on the userspace path), and a one-page mprotect splits the mapping, so touches
/// scattered over more pages than vm.max_map_count allows end the marking early (every page
/// left gets its protection back at once and counts as failed).
class next_touch {
 public:
  /// Marks the pages that data[0 .. count) touches. Throws std::system_error with ENOSYS where
  /// move_pages(2) is refused and /proc/self/mem or /proc/self/pagemap cannot be opened (no
  /// path can move a page), EINVAL when the pages are not one run of mappings with equal
  /// permissions, ENOSPC when 256 ranges are marked already, and mprotect's or sigaction's
  /// errno when marking fails (nothing stays marked then).
  template <class T>
  next_touch(T* data, std::size_t count)
      : region_(numamove::detail::openmp::mark_next_touch(data, count * sizeof(T))) {}

  ~next_touch() { disarm(); }
  next_touch(const next_touch&) = delete;
  next_touch& operator=(const next_touch&) = delete;

  /// Unmarks now (the destructor does it otherwise); later calls do nothing.
  void disarm() noexcept {
    if (region_ && region_->id >= 0) {
      region_->disarm();
      region_->id = -1;
    }
  }

  std::size_t pages() const noexcept { return region_->pages; }
  /// Pages not touched yet.
  std::size_t armed() const noexcept { return region_->armed_pages.load(); }
  /// Pages that a touch moved to the toucher's node (on the userspace path: re-backed there).
  std::size_t moved() const noexcept { return region_->moved.load(); }
  /// Pages touched that were on the toucher's node already, or allocated there by the touch.
  std::size_t local() const noexcept { return region_->local.load(); }
  /// Pages touched that stayed where they were: the move failed (-EBUSY, no memory), the
  /// toucher ran on a CPU of a node without memory, the page is shared (userspace path), or
  /// the marking ended early.
  std::size_t failed() const noexcept { return region_->failed.load(); }

 private:
  std::unique_ptr<numamove::detail::openmp::next_touch_region> region_;
};

}  // namespace numamove::openmp

#include "../detail/public_header_end.hpp"
