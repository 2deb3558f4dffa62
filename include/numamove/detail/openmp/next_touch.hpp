// Next-touch in user space (the kernel has none), behind numamove/openmp/next_touch.hpp: the
// marked pages are made inaccessible, and the first access to each one faults into a callback
// that moves the page to the node of the CPU the touching thread runs on, then gives the page
// its protection back. The move is move_pages(2) where the kernel path works, else the page is
// re-backed by the toucher itself (rebuild_on_touch).
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/openmp/next_touch.hpp is internal: include a public numamove header"
#endif

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <system_error>
#include <vector>

#include "../../flags.hpp"
#include "../../topology.hpp"
#include "../engine/backend_choice.hpp"
#include "../engine/migration.hpp"
#include "../linux/fault_handler.hpp"
#include "../linux/fd.hpp"
#include "../linux/maps.hpp"
#include "../linux/pagemap.hpp"
#include "../linux/proc.hpp"
#include "../linux/syscalls.hpp"

namespace numamove::detail::openmp {

/// What the fault callback reads and updates: all of it fixed before the range is marked, or
/// lock-free atomics, since the callback runs in signal context.
struct next_touch_region {
  enum : unsigned char { armed = 0, claimed = 1, done = 2 };

  std::uintptr_t first = 0;  // page-aligned
  std::size_t pages = 0;
  int protection = 0;           // what the pages get back
  bool shared_mapping = false;  // MAP_SHARED: the userspace path leaves it
  unique_fd mem;                // the userspace path: /proc/self/mem, read-write
  pagemap_file pagemap;         // and /proc/self/pagemap
  std::unique_ptr<std::atomic<unsigned char>[]> state;  // per page
  const topology* machine = nullptr;                    // whose nodes the touchers' CPUs are on
  std::atomic<std::size_t> armed_pages{0};
  std::atomic<std::size_t> moved{0};
  std::atomic<std::size_t> local{0};
  std::atomic<std::size_t> failed{0};
  int id = -1;

  /// Gives every page still armed its protection back (one mprotect of the whole range, which
  /// also merges the mapping again), counting them in `failed`: the way out when a one-page
  /// mprotect fails (vm.max_map_count reached), so that no access crashes.
  void release_all() noexcept {
    ::mprotect(reinterpret_cast<void*>(first), pages * page_size(), protection);
    for (std::size_t i = 0; i < pages; ++i) {
      unsigned char expected = armed;
      if (state[i].compare_exchange_strong(expected, done)) {
        armed_pages.fetch_sub(1);
        failed.fetch_add(1);
      }
    }
  }

  /// The node of the CPU the calling thread runs on, or -1 (unknown, or a node without memory).
  /// Allocation-free, as the handler needs.
  int toucher_node() const noexcept { return machine->current_node(); }

  void finish(std::size_t i, std::atomic<std::size_t>& outcome) noexcept {
    outcome.fetch_add(1);
    armed_pages.fetch_sub(1);
    state[i].store(done, std::memory_order_release);
  }

  /// Gives page i its protection back. When that fails (vm.max_map_count), every page gets it
  /// back, page i counts as failed, and the result is false.
  bool restore(std::size_t i) noexcept {
    if (::mprotect(reinterpret_cast<void*>(first + i * page_size()), page_size(), protection) == 0)
      return true;
    finish(i, failed);
    release_all();
    return false;
  }

  /// restore(i), then page i counts in `outcome`.
  void unprotect(std::size_t i, std::atomic<std::size_t>& outcome) noexcept {
    if (restore(i)) finish(i, outcome);
  }

  /// The first touch of page i on the kernel path: restores the page's protection (Linux 6.1
  /// cannot move a page of a PROT_NONE mapping) and moves it to the node of this CPU.
  void move_on_touch(std::size_t i) noexcept {
    if (!restore(i)) return;
    void* page = reinterpret_cast<void*>(first + i * page_size());
    int node = toucher_node();
    int status = -1;
    if (node < 0) return finish(i, failed);
    // Query first, so that a page already there counts as local, not as moved. On this node
    // already, or never touched (this access allocates it here): local.
    if (sys_move_pages(0, 1, &page, nullptr, &status, 0) != 0 || status == node || status < 0)
      return finish(i, local);
    const bool went =
        sys_move_pages(0, 1, &page, &node, &status, MPOL_MF_MOVE) >= 0 && status == node;
    finish(i, went ? moved : failed);
  }

  static bool all_zero(const unsigned char* bytes, std::size_t size) noexcept {
    for (std::size_t k = 0; k < size; ++k)
      if (bytes[k] != 0) return false;
    return true;
  }

  /// The first touch of page i where move_pages(2) is refused: the toucher re-backs the page
  /// while it is still PROT_NONE (other touchers wait), so the new page is allocated by this
  /// thread, on its node, as a first touch would be. /proc/self/mem reaches the inaccessible
  /// page: its contents are read into a spare page, the page is dropped (MADV_DONTNEED) and
  /// written back, which faults a fresh page in. Should the write-back fail, the spare page,
  /// which holds the contents, is put in its place with mremap. A page not present (and not
  /// swapped), or the zero page, is left for the touch to allocate; a page shared with another
  /// process, or of a MAP_SHARED mapping, stays where it is (failed()), since re-backing it
  /// would break the sharing.
  void rebuild_on_touch(std::size_t i) noexcept {
    const std::size_t size = page_size();
    const std::uintptr_t at = first + i * size;
    std::uint64_t entry = 0;
    if (pagemap.read_entries(at, 1, &entry) != 0)
      entry = pagemap_bit::present;  // unknown: treated as present
    const bool present = (entry & pagemap_bit::present) != 0;
    const bool swapped = (entry & pagemap_bit::swapped) != 0;
    if (!present && !swapped) return unprotect(i, local);
    if (toucher_node() < 0 || shared_mapping) return unprotect(i, failed);
    void* spare = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (spare == MAP_FAILED) return unprotect(i, failed);
    void* page = reinterpret_cast<void*>(at);
    const auto offset = static_cast<off_t>(at);
    const bool copied = ::pread(mem.get(), spare, size, offset) == static_cast<ssize_t>(size);
    if (copied && present && (entry & pagemap_bit::exclusive) == 0) {
      // Mapped elsewhere too: the zero page (its write allocates here) stays local; a page
      // shared copy-on-write with another process stays where it is.
      const bool zero = all_zero(static_cast<const unsigned char*>(spare), size);
      ::munmap(spare, size);
      return unprotect(i, zero ? local : failed);
    }
    if (!copied || ::madvise(page, size, MADV_DONTNEED) != 0) {
      ::munmap(spare, size);
      return unprotect(i, failed);
    }
    bool spare_in_place = false;
    while (::pwrite(mem.get(), spare, size, offset) != static_cast<ssize_t>(size)) {
      if (::mremap(spare, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, page) != MAP_FAILED) {
        spare_in_place = true;
        break;
      }
      ::sched_yield();  // both need memory: wait for some
    }
    if (!spare_in_place) ::munmap(spare, size);
    unprotect(i, moved);
  }

  /// The fault callback. The thread that claims the page moves it; a thread that touches the
  /// page meanwhile (from any node) waits until it is accessible, then retries its access, so
  /// the page lands on one node and no write is lost.
  static bool on_fault(void* address, bool, void* context) noexcept {
    auto& self = *static_cast<next_touch_region*>(context);
    const std::size_t i = (reinterpret_cast<std::uintptr_t>(address) - self.first) / page_size();
    unsigned char expected = armed;
    if (self.state[i].compare_exchange_strong(expected, claimed, std::memory_order_acq_rel)) {
      if (self.mem)
        self.rebuild_on_touch(i);
      else
        self.move_on_touch(i);
    }
    while (self.state[i].load(std::memory_order_acquire) != done) ::sched_yield();
    return true;
  }

  /// Gives every page not touched yet its protection back, waits for touches in progress,
  /// and stops routing faults here.
  void disarm() noexcept {
    for (std::size_t i = 0; i < pages;) {
      unsigned char expected = armed;
      if (!state[i].compare_exchange_strong(expected, claimed)) {
        ++i;
        continue;
      }
      std::size_t end = i + 1;
      for (; end < pages; ++end) {
        expected = armed;
        if (!state[end].compare_exchange_strong(expected, claimed)) break;
      }
      ::mprotect(reinterpret_cast<void*>(first + i * page_size()), (end - i) * page_size(),
                 protection);
      for (std::size_t k = i; k < end; ++k) state[k].store(done, std::memory_order_release);
      armed_pages.fetch_sub(end - i);
      i = end;
    }
    for (std::size_t i = 0; i < pages; ++i)
      while (state[i].load(std::memory_order_acquire) != done) ::sched_yield();
    unregister_fault_range(id);
  }
};

/// The userspace path: opens /proc/self/mem (read-write) and /proc/self/pagemap for `region`.
/// Throws std::system_error with ENOSYS when either cannot be opened: no path can move a page.
inline void open_userspace_path(next_touch_region& region) {
  region.mem = open_proc(0, "mem", O_RDWR);
  region.pagemap = pagemap_file::of(0);
  if (!region.mem || !region.pagemap.is_open())
    throw std::system_error(
        ENOSYS, std::generic_category(),
        "numamove::openmp::next_touch: neither move_pages(2) nor /proc/self/mem here");
}

/// Sets region.protection and region.shared_mapping from the mappings that hold the region's
/// pages. Throws std::system_error with EINVAL when its first page is not mapped, or when the
/// pages are not one run of mappings with equal permissions.
inline void read_protection(next_touch_region& region) {
  const std::uintptr_t end = region.first + region.pages * page_size();
  const std::vector<mapping> maps = read_mappings(0, mapping_detail::maps);
  const mapping* m = find_mapping(maps, region.first);
  if (m == nullptr)
    throw std::system_error(EINVAL, std::generic_category(),
                            "numamove::openmp::next_touch: not mapped");
  region.protection = m->protection();
  region.shared_mapping = m->shared();
  for (std::uintptr_t at = m->end; at < end;) {
    const mapping* next = find_mapping(maps, at);
    if (next == nullptr || next->perms != m->perms)
      throw std::system_error(
          EINVAL, std::generic_category(),
          "numamove::openmp::next_touch: the range spans mappings with other permissions");
    at = next->end;
  }
}

/// Routes the faults of the region's pages to its callback, then makes the pages
/// inaccessible. Throws std::system_error with ENOSPC when 256 ranges are marked already, and
/// with register_fault_range's or mprotect's errno; nothing stays marked then.
inline void arm(next_touch_region& region) {
  void* const first = reinterpret_cast<void*>(region.first);
  const std::size_t bytes = region.pages * page_size();
  region.id = register_fault_range(first, bytes, &next_touch_region::on_fault, &region);
  if (region.id < 0)
    throw std::system_error(errno, std::generic_category(),
                            "numamove::openmp::next_touch: register_fault_range");
  if (::mprotect(first, bytes, PROT_NONE) != 0) {
    const int error = errno;
    ::mprotect(first, bytes, region.protection);
    unregister_fault_range(region.id);
    throw std::system_error(error, std::generic_category(),
                            "numamove::openmp::next_touch: mprotect");
  }
}

/// Marks the pages that bytes [data, data + bytes) touch for next-touch, as the constructor of
/// numamove::openmp::next_touch says (and throws).
inline std::unique_ptr<next_touch_region> mark_next_touch(const void* data, std::size_t bytes) {
  auto made = std::make_unique<next_touch_region>();
  if (!kernel_path_available()) open_userspace_path(*made);
  const page_span span = pages_spanned(data, bytes);
  made->first = span.first;
  made->pages = span.count;
  if (span.count == 0) return made;
  read_protection(*made);
  made->machine = &topology::system();
  made->state = std::make_unique<std::atomic<unsigned char>[]>(span.count);
  made->armed_pages = span.count;
  arm(*made);
  return made;
}

}  // namespace numamove::detail::openmp
