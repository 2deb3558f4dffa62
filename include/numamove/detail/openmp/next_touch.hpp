// Next-touch in user space (the kernel has none): the marked pages are made inaccessible, and
// the first access to each one faults into a callback that moves the page to the node of the
// CPU the touching thread runs on, then gives the page its protection back. The move is
// move_pages(2) where the kernel path works, else the page is re-backed by the toucher itself
// (rebuild_on_touch). The class is a public name, reached through numamove/openmp.hpp.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "../../flags.hpp"
#include "../../topology.hpp"
#include "../engine/backend_choice.hpp"
#include "../linux/fault_handler.hpp"
#include "../linux/maps.hpp"
#include "../linux/pagemap.hpp"
#include "../engine/migration.hpp"
#include "../linux/proc.hpp"
#include "../linux/syscalls.hpp"

namespace numamove::detail::openmp {

/// What the fault callback reads and updates: all of it fixed before the range is marked, or
/// lock-free atomics, since the callback runs in signal context.
struct next_touch_region {
  enum : unsigned char { armed = 0, claimed = 1, done = 2 };

  std::uintptr_t first = 0;  // page-aligned
  std::size_t pages = 0;
  int protection = 0;                            // what the pages get back
  bool shared_mapping = false;                   // MAP_SHARED: the userspace path leaves it
  int mem_fd = -1;                               // the userspace path: /proc/self/mem, read-write
  int pagemap_fd = -1;                           // and /proc/self/pagemap
  std::unique_ptr<std::atomic<unsigned char>[]> state;  // per page
  const topology* machine = nullptr;             // whose nodes the touchers' CPUs are on
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

  ~next_touch_region() {
    if (mem_fd >= 0) ::close(mem_fd);
    if (pagemap_fd >= 0) ::close(pagemap_fd);
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
    if (::mprotect(reinterpret_cast<void*>(first + i * page_size()), page_size(), protection) == 0) return true;
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
    if (sys_move_pages(0, 1, &page, nullptr, &status, 0) != 0 || status == node || status < 0) return finish(i, local);
    const bool went = sys_move_pages(0, 1, &page, &node, &status, MPOL_MF_MOVE) >= 0 && status == node;
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
    if (!read_pagemap_entries(pagemap_fd, at, 1, &entry)) entry = pagemap_bit::present;  // unknown: treated as present
    const bool present = (entry & pagemap_bit::present) != 0;
    const bool swapped = (entry & pagemap_bit::swapped) != 0;
    if (!present && !swapped) return unprotect(i, local);
    if (toucher_node() < 0 || shared_mapping) return unprotect(i, failed);
    void* spare = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (spare == MAP_FAILED) return unprotect(i, failed);
    void* page = reinterpret_cast<void*>(at);
    const auto offset = static_cast<off_t>(at);
    const bool copied = ::pread(mem_fd, spare, size, offset) == static_cast<ssize_t>(size);
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
    while (::pwrite(mem_fd, spare, size, offset) != static_cast<ssize_t>(size)) {
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
      if (self.mem_fd >= 0) self.rebuild_on_touch(i);
      else self.move_on_touch(i);
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
      ::mprotect(reinterpret_cast<void*>(first + i * page_size()), (end - i) * page_size(), protection);
      for (std::size_t k = i; k < end; ++k) state[k].store(done, std::memory_order_release);
      armed_pages.fetch_sub(end - i);
      i = end;
    }
    for (std::size_t i = 0; i < pages; ++i)
      while (state[i].load(std::memory_order_acquire) != done) ::sched_yield();
    unregister_fault_range(id);
  }
};

}  // namespace numamove::detail::openmp

namespace numamove::openmp {

/// Marks memory so that each page moves to the node of the thread that next touches it (reads
/// or writes it), then behaves as before: the kernel has no next-touch, so numamove makes the
/// pages inaccessible and moves each one in the SIGSEGV handler that its first access raises
/// (detail/fault_handler.hpp, shared with the userspace migrator). Concurrent first touches of a
/// page from several nodes move it once, to one of them, and lose no write. Addresses and
/// contents stay as they were. A page never touched is allocated by the touch, on the toucher's
/// node. Unmarked when destroyed (or by disarm()): pages not touched by then get their
/// protection back where they are.
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
  next_touch(T* data, std::size_t count) : region_(mark(data, count * sizeof(T))) {}

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
  using region = numamove::detail::openmp::next_touch_region;

  static std::unique_ptr<region> mark(const void* data, std::size_t bytes) {
    namespace d = numamove::detail;
    auto made = std::make_unique<region>();
    if (!d::kernel_path_available()) {
      made->mem_fd = ::open("/proc/self/mem", O_RDWR | O_CLOEXEC);
      made->pagemap_fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
      if (made->mem_fd < 0 || made->pagemap_fd < 0)
        throw std::system_error(ENOSYS, std::generic_category(),
                                "numamove::openmp::next_touch: neither move_pages(2) nor /proc/self/mem here");
    }
    const d::page_span span = d::pages_spanned(data, bytes);
    made->first = span.first;
    made->pages = span.count;
    if (span.count == 0) return made;
    const std::uintptr_t end = span.first + span.count * d::page_size();
    const std::vector<d::mapping> maps = d::read_mappings(0);
    const d::mapping* m = d::find_mapping(maps, span.first);
    if (m == nullptr) throw std::system_error(EINVAL, std::generic_category(), "numamove::openmp::next_touch: not mapped");
    made->protection = m->protection();
    made->shared_mapping = m->shared();
    for (std::uintptr_t at = m->end; at < end;) {
      const d::mapping* next = d::find_mapping(maps, at);
      if (next == nullptr || next->perms != m->perms)
        throw std::system_error(EINVAL, std::generic_category(),
                                "numamove::openmp::next_touch: the range spans mappings with other permissions");
      at = next->end;
    }
    made->machine = &topology::system();
    made->state = std::make_unique<std::atomic<unsigned char>[]>(span.count);
    made->armed_pages = span.count;
    made->id = d::register_fault_range(reinterpret_cast<void*>(span.first), span.count * d::page_size(),
                                       &region::on_fault, made.get());
    if (made->id < 0)
      throw std::system_error(errno, std::generic_category(), "numamove::openmp::next_touch: register_fault_range");
    if (::mprotect(reinterpret_cast<void*>(span.first), span.count * d::page_size(), PROT_NONE) != 0) {
      const int error = errno;
      ::mprotect(reinterpret_cast<void*>(span.first), span.count * d::page_size(), made->protection);
      d::unregister_fault_range(made->id);
      throw std::system_error(error, std::generic_category(), "numamove::openmp::next_touch: mprotect");
    }
    return made;
  }

  std::unique_ptr<region> region_;
};

}  // namespace numamove::openmp
