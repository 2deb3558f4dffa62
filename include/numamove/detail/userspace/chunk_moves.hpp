// What the userspace migrator's workers do to one chunk: populate its fresh pages on the target
// node (phase A), or, while the program's other threads are stopped (phase B), look at its pages
// again, copy them (populating a late chunk's fresh pages just before) and put the fresh pages
// in place, or refault page-cache pages. Everything here runs on worker threads during the
// phases: nothing throws, nothing allocates (a stopped thread may hold the malloc lock), and
// everything written lies in the arena relocation.hpp made before the first stop.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/userspace/chunk_moves.hpp is internal: include a public numamove header"
#endif

#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <vector>

#include "../linux/fd.hpp"
#include "../linux/maps.hpp"
#include "../linux/pagemap.hpp"
#include "../linux/syscalls.hpp"
#include "../page_batches.hpp"
#include "../sanitizers.hpp"
#include "fault_injection.hpp"
#include "file_pages.hpp"
#include "live_maps.hpp"
#include "page_rules.hpp"
#include "relocation_plan.hpp"
#include "workers.hpp"

// Under a sanitizer the copy goes through the kernel (process_vm_readv): the pages may hold
// another allocation's redzones, or bytes other threads wrote before the protection, which the
// sanitizer cannot see ordered by mprotect.
#if defined(NUMAMOVE_DETAIL_ADDRESS_SANITIZER) || defined(NUMAMOVE_DETAIL_THREAD_SANITIZER) || \
    defined(NUMAMOVE_DETAIL_MEMORY_SANITIZER)
#define NUMAMOVE_DETAIL_KERNEL_COPY 1
#endif

namespace numamove::detail::userspace {

/// A run as prepared: its plan, and what preparing it made.
struct run : run_plan {
  explicit run(const run_plan& plan) : run_plan(plan) {}

  int error = 0;     ///< errno of every page when the run could not be prepared or placed
  bool thp = false;  ///< THP may back its fresh huge chunks (the original's opt-in or opt-out)
  // Copy runs: the reservation holding the fresh mapping, and the mapping's original policy.
  std::uintptr_t reservation = 0;
  std::size_t reserved = 0;
  std::uintptr_t fresh = 0;
  bool placed_by_mbind = false;
  int policy_mode = mpol_default;
  unsigned long policy_mask[16] = {};
  // Refault runs: the mapped file, opened again.
  unique_fd file;
};

/// Bits of policy_mask, as get_mempolicy and mbind read it.
inline constexpr unsigned long policy_mask_bits = 16 * 64 + 1;

/// A chunk as the phases see it. Lives in the arena.
struct chunk {
  std::size_t first = 0;  // pages[first .. first + pages) of the examination
  std::size_t pages = 0;
  std::size_t run = 0;
  std::uintptr_t fresh = 0;  // copy chunks: where their fresh pages are
  int error = 0;             // errno of its pages when it did not move
  bool huge = false;         // a whole huge page that THP may back
  // A huge chunk populated in phase B by the worker that copies into it, just before the copy:
  // the zeroed huge page is still in the cache when the copy overwrites it.
  bool late = false;
  bool committed = false;  // its fresh pages are at the original addresses now
};

/// The request and its runs, as the workers read them (unchanged during the phases).
struct examined_request {
  const page_facts* pages = nullptr;
  const std::vector<mapping>* maps = nullptr;
  const run* runs = nullptr;

  const run& run_of(const chunk& c) const noexcept { return runs[c.run]; }
  const mapping& mapping_of(const chunk& c) const noexcept { return (*maps)[runs[c.run].vma]; }
};

/// What the workers write, in the arena: per chunk its state, per page of the examination
/// whether it moved and, for pages not committed, its live_verdict.
struct relocation_progress {
  chunk* chunks = nullptr;
  unsigned char* moved = nullptr;
  int* verdict = nullptr;
};

/// What phase B checks a page against before it touches it: the address space as of this
/// batch's stop, where no mapping numamove made during the call is the program's.
struct live_view {
  const live_maps* now = nullptr;
  const own_range* own = nullptr;
  std::size_t own_count = 0;

  live_verdict verdict(std::uintptr_t address, const mapping& examined) const noexcept {
    return now->verdict(address, examined, own, own_count);
  }
};

/// This process's files that phase B reads: its page table, and its memory for originals the
/// program cannot read (PROT_NONE; -1 when the request has none).
struct process_files {
  const pagemap_file* pagemap = nullptr;
  int mem_fd = -1;
};

/// A team's share of one phase's chunks: order[begin .. end), each taken by one worker.
struct chunk_queue {
  const std::size_t* order = nullptr;
  std::atomic<std::size_t>* next = nullptr;  // in the arena
  std::size_t begin = 0;
  std::size_t end = 0;

  /// Queues order[share.begin .. share.end). Allocates nothing.
  void reset(chunk_range share) noexcept {
    begin = share.begin;
    end = share.end;
    next->store(begin);
  }
  bool empty() const noexcept { return begin >= end; }

  /// Calls take(chunk index) for each chunk left, on as many workers as call it.
  template <class Take>
  void drain(Take take) const noexcept {
    for (std::size_t k = next->fetch_add(1); k < end; k = next->fetch_add(1)) take(order[k]);
  }
};

/// One worker's buffers, one huge page's worth each.
struct worker_scratch {
  std::uint64_t* entries = nullptr;  // pagemap entries
  unsigned char* evicted = nullptr;  // one byte per page
  void** addresses = nullptr;        // a late chunk's placement query
  int* nodes = nullptr;
};

/// The workers' buffers in the arena: one huge page's worth per worker, the first worker's at
/// `first`.
struct worker_buffers {
  worker_scratch first;
  std::size_t per_worker = 0;

  worker_scratch of(std::size_t worker) const noexcept {
    const std::size_t at = worker * per_worker;
    return {first.entries + at, first.evicted + at, first.addresses + at, first.nodes + at};
  }
};

/// How a team's refaults are placed, and kept from overlapping.
struct refault_rules {
  // Not pinned (a node without CPUs): the faults ask for the node with set_mempolicy, this mask.
  const node_mask* prefer = nullptr;
  // Held from a refault chunk's look at its neighbours until it unmapped what its faults mapped
  // around: another chunk's refault in between would change what "not mapped before" means.
  std::mutex* one_at_a_time = nullptr;
};

/// What the workers of one team share.
struct team_job {
  examined_request request;
  relocation_progress progress;
  live_view live;
  process_files files;
  chunk_queue queue;
  worker_buffers buffers;
  refault_rules refaults;
  bool query_late = false;  // late chunks' pages may land off their node: ask where they are
};

/// Copies `bytes` of the original pages into fresh ones. Unreadable originals (PROT_NONE) are
/// read through /proc/self/mem (`mem_fd`). Returns 0, or EFAULT when the data could not be read.
inline int copy_bytes(std::uintptr_t to, std::uintptr_t from, std::size_t bytes, bool readable,
                      int mem_fd) noexcept {
  if (!readable) {
    for (std::size_t done = 0; done < bytes;) {
      const ssize_t got = ::pread(mem_fd, reinterpret_cast<void*>(to + done), bytes - done,
                                  static_cast<off_t>(from + done));
      if (got <= 0) return EFAULT;
      done += static_cast<std::size_t>(got);
    }
    return 0;
  }
#ifdef NUMAMOVE_DETAIL_KERNEL_COPY
  iovec local{reinterpret_cast<void*>(to), bytes};
  iovec remote{reinterpret_cast<void*>(from), bytes};
  if (::process_vm_readv(::getpid(), &local, 1, &remote, 1, 0) == static_cast<ssize_t>(bytes))
    return 0;
#endif
  std::memcpy(reinterpret_cast<void*>(to), reinterpret_cast<const void*>(from), bytes);
  return 0;
}

/// Phase A for one copy chunk: populates its fresh pages (not the holes). THP may back a huge
/// chunk's block with one huge page, which allocates its holes too: they are dropped again, so
/// that the block ends as base pages with its holes not present. (Keeping the kernel from
/// allocating the huge page instead, by making a hole inaccessible meanwhile, splits the fresh
/// mapping in two for good; mremap before Linux 6.17 cannot move two mappings, and fails only
/// after it has unmapped the original pages.) Sets c.error to ENOMEM when the pages could not
/// all be had.
inline void populate_chunk(chunk& c, const page_facts* pages, const run& r) noexcept {
  const std::size_t page = page_size();
  const page_facts* facts = pages + c.first;
  int error = 0;
  const auto same_treatment = [&](std::size_t before, std::size_t at) {
    return facts[at].what == facts[before].what;
  };
  for_each_run(c.pages, same_treatment, [&](std::size_t first, std::size_t end) {
    if (error == 0 && facts[first].what == treatment::copy)
      error = populate(c.fresh + first * page, c.fresh + end * page);
  });
  if (error == 0 && c.huge && r.thp)
    for_each_run(c.pages, same_treatment, [&](std::size_t first, std::size_t end) {
      if (facts[first].what == treatment::hole)
        ::madvise(reinterpret_cast<void*>(c.fresh + first * page), (end - first) * page,
                  MADV_DONTNEED);
    });
  if (error != 0) c.error = ENOMEM;
}

/// Phase A, on each worker: populates the team's copy chunks but the late ones.
inline void populate_chunks(void* context, unsigned) noexcept {
  const team_job& job = *static_cast<const team_job*>(context);
  job.queue.drain([&](std::size_t k) {
    chunk& c = job.progress.chunks[k];
    const run& r = job.request.run_of(c);
    if (r.kind == treatment::copy && r.error == 0 && c.error == 0 && !c.late)
      populate_chunk(c, job.request.pages, r);
  });
}

/// Gives `bytes` of the fresh pages of run `r` from `fresh` the original mapping's policy back
/// after mbind placed them.
inline void restore_policy(const run& r, std::uintptr_t fresh, std::size_t bytes) noexcept {
  const bool by_default = r.policy_mode == mpol_default;
  sys_mbind(reinterpret_cast<void*>(fresh), bytes, r.policy_mode,
            by_default ? nullptr : r.policy_mask, by_default ? 0 : policy_mask_bits, 0);
}

/// Phase B for late chunk `c`: phase A's work on it (populate, the policy back, and where the
/// pages could land elsewhere, a query of where they did). Sets c.error to ENOMEM when the
/// pages could not all be had on the target node.
inline void place_late_chunk(const team_job& job, chunk& c,
                             const worker_scratch& scratch) noexcept {
  const run& r = job.request.run_of(c);
  const page_facts* facts = job.request.pages + c.first;
  populate_chunk(c, job.request.pages, r);
  if (r.placed_by_mbind) restore_policy(r, c.fresh, c.pages * page_size());
  if (c.error == 0 && injected(failure_point::place) != 0) c.error = ENOMEM;
  if (c.error != 0 || !job.query_late) return;
  std::size_t asked = 0;
  for (std::size_t j = 0; j < c.pages; ++j)
    if (facts[j].what == treatment::copy)
      scratch.addresses[asked++] = reinterpret_cast<void*>(c.fresh + j * page_size());
  if (sys_move_pages(0, asked, scratch.addresses, nullptr, scratch.nodes, 0) != 0) {
    c.error = ENOMEM;
    return;
  }
  for (std::size_t a = 0; a < asked; ++a)
    if (scratch.nodes[a] != r.node) c.error = ENOMEM;
}

/// Whether the pages of chunk `c` are all still in the mapping that was examined; the verdict
/// of each page goes to progress.verdict.
inline bool chunk_unchanged(const examined_request& request, const live_view& live,
                            const relocation_progress& progress, const chunk& c) noexcept {
  const mapping& m = request.mapping_of(c);
  bool all = true;
  for (std::size_t j = 0; j < c.pages; ++j) {
    const live_verdict v = live.verdict(request.pages[c.first + j].address, m);
    progress.verdict[c.first + j] = static_cast<int>(v);
    all = all && v == live_verdict::unchanged;
  }
  return all;
}

/// Which of `length` examined pages from `facts` to copy, into moved[0 .. length): the program
/// may have written a hole or dropped a page between the examination and the stop, so their
/// pagemap entries are read again (into `entries`) and what is there now is copied. A copy
/// page that is gone now is dropped from the fresh pages at `fresh` too.
inline void choose_pages_to_copy(const page_facts* facts, std::size_t length, std::uintptr_t fresh,
                                 const pagemap_file& pagemap, std::uint64_t* entries,
                                 unsigned char* moved) noexcept {
  const std::size_t page = page_size();
  const bool fresh_look = pagemap.read_entries(facts[0].address, length, entries) == 0;
  for (std::size_t j = 0; j < length; ++j) {
    bool copy = facts[j].what == treatment::copy;
    if (fresh_look) {
      const std::uint64_t e = entries[j];
      const bool data =
          (e & pagemap_bit::swapped) != 0 ||
          ((e & pagemap_bit::present) != 0 && (copy || (e & pagemap_bit::exclusive) != 0));
      if (copy && !data) ::madvise(reinterpret_cast<void*>(fresh + j * page), page, MADV_DONTNEED);
      copy = data;
    }
    moved[j] = copy ? 1 : 0;
  }
}

/// The zero pages that rode along in a committed stretch are no pages in the fresh mapping:
/// reads them again, through the kernel (no sanitizer sees a read of memory it may think
/// poisoned), to map the zero page.
inline void map_zero_pages_again(const page_facts* facts, std::size_t length,
                                 const unsigned char* moved, int prot, int mem_fd) noexcept {
  for (std::size_t j = 0; j < length; ++j) {
    if (facts[j].what != treatment::hole || facts[j].status != -EFAULT || moved[j]) continue;
    char byte = 0;
    iovec local{&byte, 1};
    iovec remote{reinterpret_cast<void*>(facts[j].address), 1};
    if ((prot & PROT_READ) != 0)
      ::process_vm_readv(::getpid(), &local, 1, &remote, 1, 0);
    else if (mem_fd >= 0)
      ::pread(mem_fd, &byte, 1, static_cast<off_t>(facts[j].address));
  }
}

/// Phase B for `length` pages of copy chunk `c` from its page `offset` (pages the program still
/// has, unchanged): look again, copy, give the fresh pages the original protection, and put
/// them in place. On failure nothing of the stretch moved and c.error says why (ENOMEM,
/// EFAULT: the data could not be read, EBUSY: anything else).
inline void move_copy_pages(const examined_request& request, const relocation_progress& progress,
                            const process_files& files, chunk& c, std::size_t offset,
                            std::size_t length, std::uint64_t* entries) noexcept {
  const std::size_t page = page_size();
  const page_facts* facts = request.pages + c.first + offset;
  unsigned char* moved = progress.moved + c.first + offset;
  const std::uintptr_t original = facts[0].address;
  const std::uintptr_t fresh = c.fresh + offset * page;
  const std::size_t bytes = length * page;
  const int prot = request.mapping_of(c).protection();
  choose_pages_to_copy(facts, length, fresh, *files.pagemap, entries, moved);
  int error = 0;
  for_each_run(
      length, [&](std::size_t before, std::size_t at) { return moved[at] == moved[before]; },
      [&](std::size_t first, std::size_t end) {
        if (error == 0 && moved[first])
          error = copy_bytes(fresh + first * page, original + first * page, (end - first) * page,
                             (prot & PROT_READ) != 0, files.mem_fd);
      });
  if (error == 0 && prot != (PROT_READ | PROT_WRITE) &&
      ::mprotect(reinterpret_cast<void*>(fresh), bytes, prot) != 0)
    error = errno;
  if (error == 0) error = injected(failure_point::commit);
  if (error == 0 &&
      ::mremap(reinterpret_cast<void*>(fresh), bytes, bytes, MREMAP_MAYMOVE | MREMAP_FIXED,
               reinterpret_cast<void*>(original)) == MAP_FAILED)
    error = errno;
  if (error != 0) {
    for (std::size_t j = 0; j < length; ++j) moved[j] = 0;
    c.error = error == ENOMEM || error == EFAULT ? error : EBUSY;
    return;
  }
  c.committed = true;
  map_zero_pages_again(facts, length, moved, prot, files.mem_fd);
}

/// Phase B for a copy chunk: the stretches of its pages that are still the program's, each
/// moved on its own (a chunk the program partly unmapped moves the rest).
inline void move_copy_chunk(const team_job& job, chunk& c, const worker_scratch& scratch) noexcept {
  std::uint64_t* entries = scratch.entries;
  if (c.late) place_late_chunk(job, c, scratch);
  if (c.error != 0) return;
  if (chunk_unchanged(job.request, job.live, job.progress, c)) {
    move_copy_pages(job.request, job.progress, job.files, c, 0, c.pages, entries);
    return;
  }
  const int* verdict = job.progress.verdict + c.first;
  const auto unchanged = [&](std::size_t j) {
    return verdict[j] == static_cast<int>(live_verdict::unchanged);
  };
  for_each_run(
      c.pages,
      [&](std::size_t before, std::size_t at) { return unchanged(at) == unchanged(before); },
      [&](std::size_t first, std::size_t end) {
        if (c.error == 0 && unchanged(first))
          move_copy_pages(job.request, job.progress, job.files, c, first, end - first, entries);
      });
}

/// Whether the pages of page-cache chunk `c` are all still the examined mapping's, clean cache
/// pages mapped by this process alone (their entries are read into `entries`).
inline bool still_private_cache(const team_job& job, const chunk& c,
                                std::uint64_t* entries) noexcept {
  const std::uintptr_t begin = job.request.pages[c.first].address;
  if (!chunk_unchanged(job.request, job.live, job.progress, c) ||
      job.files.pagemap->read_entries(begin, c.pages, entries) != 0)
    return false;
  constexpr std::uint64_t wanted =
      pagemap_bit::present | pagemap_bit::file_or_shared | pagemap_bit::exclusive;
  for (std::size_t j = 0; j < c.pages; ++j)
    if ((entries[j] & wanted) != wanted) return false;
  return true;
}

/// Refaults chunk `c` (see refault()) from this (target) node, and unmaps again the pages
/// beside it that its faults mapped around and that were not mapped before. `evicted` gets
/// which pages left the cache. Returns 0 or refault()'s errno.
inline int refault_alone(const team_job& job, const chunk& c, unsigned char* evicted) noexcept {
  const std::size_t page = page_size();
  const run& r = job.request.run_of(c);
  const mapping& m = job.request.mapping_of(c);
  const pagemap_file& pagemap = *job.files.pagemap;
  const std::uintptr_t begin = job.request.pages[c.first].address;
  const std::uintptr_t end = begin + c.pages * page;
  const auto offset = static_cast<off_t>(m.offset + (begin - m.start));
  const std::lock_guard<std::mutex> one_refault_at_a_time(*job.refaults.one_at_a_time);
  const std::size_t pages_below = std::min((begin - m.start) / page, fault_around_pages - 1);
  const std::size_t pages_above = std::min((m.end - end) / page, fault_around_pages - 1);
  const std::uintptr_t below = begin - pages_below * page;
  std::uint64_t before_below[fault_around_pages] = {};
  std::uint64_t before_above[fault_around_pages] = {};
  const bool sides_known = pagemap.read_entries(below, pages_below, before_below) == 0 &&
                           pagemap.read_entries(end, pages_above, before_above) == 0;
  const node_mask* prefer = job.refaults.prefer;
  if (prefer != nullptr) sys_set_mempolicy(mpol_preferred, prefer->words.data(), prefer->maxnode);
  const int error = refault(begin, c.pages, r.file.get(), offset, m.shared(), evicted);
  if (prefer != nullptr) sys_set_mempolicy(mpol_default, nullptr, 0);
  if (sides_known) {
    unmap_mapped_since(pagemap, below, pages_below, before_below);
    unmap_mapped_since(pagemap, end, pages_above, before_above);
  }
  return error;
}

/// Phase B for a chunk of page-cache pages: check they are still the examined mapping's clean
/// cache pages mapped by this process alone, then write back, drop and fault in again from
/// this (target) node. The pages that left the cache are the ones that moved.
inline void move_refault_chunk(const team_job& job, chunk& c, std::uint64_t* entries,
                               unsigned char* evicted) noexcept {
  if (!still_private_cache(job, c, entries)) {
    c.error = EBUSY;
    return;
  }
  const int error = refault_alone(job, c, evicted);
  unsigned char* moved = job.progress.moved + c.first;
  for (std::size_t j = 0; j < c.pages; ++j) moved[j] = error == 0 ? evicted[j] : 0;
  c.error = error;
}

/// Phase B, on each worker: the team's chunks of one batch.
inline void move_chunks(void* context, unsigned worker) noexcept {
  const team_job& job = *static_cast<const team_job*>(context);
  const worker_scratch scratch = job.buffers.of(worker);
  job.queue.drain([&](std::size_t k) {
    chunk& c = job.progress.chunks[k];
    const run& r = job.request.run_of(c);
    if (r.error != 0 || c.error != 0) return;
    if (r.kind == treatment::copy)
      move_copy_chunk(job, c, scratch);
    else
      move_refault_chunk(job, c, scratch.entries, scratch.evicted);
  });
}

}  // namespace numamove::detail::userspace
