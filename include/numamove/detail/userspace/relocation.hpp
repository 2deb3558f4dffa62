// How the userspace migrator moves private pages: fresh pages on the target node (mbind where
// allowed, else first touch by a worker pinned to the node), the data copied, and the fresh pages
// put atomically at the original virtual addresses with mremap(MREMAP_FIXED). See
// docs/userspace.md for the whole story; in short:
//
//   plan      consecutive pages of one mapping with one target form a run (never-touched pages
//             and the zero page may ride inside: the fresh pages leave them untouched); runs are
//             cut into chunks at huge-page boundaries. Each copy run gets one fresh mapping, at
//             the same offset modulo the huge-page size, so huge pages survive the mremap, and
//             committed chunks merge back into one mapping.
//   phase A   workers populate the fresh pages (first touch places them); the caller checks
//             where they landed (query, or numa_maps) and gives up runs that are not on target.
//   phase B   batch by batch, with the program's other threads stopped (fence.hpp): read the
//             address space again (live_maps.hpp; a page whose mapping the program unmapped or
//             changed is not touched), read pagemap again (the program may have written or
//             dropped a page meanwhile), copy, mremap into place; then let the threads go.
//
// Nothing the workers write during phase B lies in memory a request could name (the arena and
// the workers' control pages are mapped after the request was examined, and are never taken
// for the program's pages), and nothing allocates there: a stopped thread may hold the malloc
// lock.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#include "../../capabilities.hpp"
#include "../linux/huge_pages.hpp"
#include "../linux/maps.hpp"
#include "../linux/pagemap.hpp"
#include "../engine/memory_policy.hpp"
#include "../linux/proc.hpp"
#include "../sanitizers.hpp"
#include "../linux/syscalls.hpp"
#include "fault_injection.hpp"
#include "fence.hpp"
#include "file_pages.hpp"
#include "live_maps.hpp"
#include "page_rules.hpp"
#include "workers.hpp"
#include "own_mappings.hpp"
#include "../linux/sys.hpp"

// Under a sanitizer the copy goes through the kernel (process_vm_readv): the pages may hold
// another allocation's redzones, or bytes other threads wrote before the protection, which the
// sanitizer cannot see ordered by mprotect.
#if defined(NUMAMOVE_DETAIL_ADDRESS_SANITIZER) || defined(NUMAMOVE_DETAIL_THREAD_SANITIZER) || \
    defined(NUMAMOVE_DETAIL_MEMORY_SANITIZER)
#define NUMAMOVE_DETAIL_KERNEL_COPY 1
#endif

namespace numamove::detail::userspace {

/// How the userspace path moves pages; the defaults are move_pages(2)'s behaviour.
struct relocation_options {
  bool force = false;          ///< move pages already on their target too
  bool protect_writes = true;  ///< stop the other threads while pages are copied and committed
  unsigned workers = 0;        ///< threads per target node; 0 picks by size and the node's CPUs
};

/// Bytes committed per stop of the program's threads: long enough to pay for the stop, short
/// enough that the threads are not held long (about 3 ms of copying here).
inline constexpr std::size_t batch_bytes = std::size_t{32} << 20;

/// Memory for what the workers write during phase B: one anonymous mapping, carved up once.
class arena {
 public:
  explicit arena(std::size_t bytes) : size_((bytes + page_size() - 1) / page_size() * page_size()) {
    void* memory = map_own(size_, PROT_READ | PROT_WRITE);
    if (memory == MAP_FAILED) throw std::bad_alloc();
    base_ = static_cast<char*>(memory);
  }
  arena(const arena&) = delete;
  arena& operator=(const arena&) = delete;
  ~arena() { ::munmap(base_, size_); }

  /// `count` value-initialized objects of type T (trivially destructible ones only).
  template <class T>
  T* make(std::size_t count) {
    static_assert(std::is_trivially_destructible_v<T>, "the arena never runs destructors");
    used_ = (used_ + alignof(T) - 1) / alignof(T) * alignof(T);
    if (used_ + count * sizeof(T) > size_) throw std::bad_alloc();
    T* first = reinterpret_cast<T*>(base_ + used_);
    for (std::size_t i = 0; i < count; ++i) new (first + i) T();
    used_ += count * sizeof(T);
    return first;
  }

  /// The arena's own mapping.
  own_range extent() const noexcept {
    const auto at = reinterpret_cast<std::uintptr_t>(base_);
    return {at, at + size_};
  }

  /// What make() needs at most for `count` objects of type T.
  template <class T>
  static constexpr std::size_t room(std::size_t count) {
    return count * sizeof(T) + alignof(T);
  }

 private:
  std::size_t size_;
  std::size_t used_ = 0;
  char* base_ = nullptr;
};

/// A stretch of consecutive pages of one mapping with one target node.
struct run {
  std::size_t first = 0;  // e.pages[first .. first + pages)
  std::size_t pages = 0;
  int node = -1;
  std::size_t vma = 0;
  treatment kind = treatment::copy;
  int error = 0;  // negative errno for every page when the run could not be prepared
  // Copy runs: the reservation holding the fresh mapping, and the mapping's original policy.
  std::uintptr_t reservation = 0;
  std::size_t reserved = 0;
  std::uintptr_t fresh = 0;
  bool placed_by_mbind = false;
  int policy_mode = mpol_default;
  unsigned long policy_mask[16] = {};
  // Refault runs: the file, opened again by path.
  int fd = -1;
};

/// A chunk: at most one huge page's worth of a run. Lives in the arena.
struct chunk {
  std::size_t first = 0;  // e.pages[first .. first + pages)
  std::size_t pages = 0;
  std::size_t run = 0;
  std::uintptr_t fresh = 0;  // copy chunks: where their fresh pages are
  int error = 0;             // negative errno for its pages when it did not move
  bool huge = false;         // a whole huge page that THP may back
  bool committed = false;    // its fresh pages are at the original addresses now
};

/// What the workers of one team share. Read-only during the phases except the atomics and the
/// arena arrays.
struct team_job {
  const page_facts* pages = nullptr;
  const std::vector<mapping>* maps = nullptr;
  const run* runs = nullptr;
  chunk* chunks = nullptr;
  unsigned char* moved = nullptr;  // per e.pages index: 1 when the page moved
  int* verdict = nullptr;          // per e.pages index: a live_verdict, for pages not committed
  const live_maps* now = nullptr;  // the address space as of this batch's stop
  const own_range* own = nullptr;  // what numamove mapped during the call
  std::size_t own_count = 0;
  const std::size_t* order = nullptr;  // this team's chunk indexes
  std::size_t count = 0;
  std::atomic<std::size_t>* next = nullptr;  // in the arena
  std::uint64_t* entries = nullptr;          // per worker, one huge page's worth
  unsigned char* scratch = nullptr;          // per worker, one byte per page of a huge page
  std::size_t per_worker = 0;
  int pagemap_fd = -1;
  int mem_fd = -1;
  const bool* run_thp = nullptr;  // per run: THP may back its fresh huge chunks
  // Not pinned (a node without CPUs): refaults ask for the node with set_mempolicy, this mask.
  const node_mask* prefer = nullptr;
  // Held from a refault chunk's look at its neighbours until it unmapped what its faults mapped
  // around: another chunk's refault in between would change what "not mapped before" means.
  std::mutex* refault_lock = nullptr;
};

/// Copies `bytes` of the original pages into fresh ones. Unreadable originals (PROT_NONE) are
/// read through /proc/self/mem. Returns false when the data could not be read.
inline bool copy_bytes(std::uintptr_t to, std::uintptr_t from, std::size_t bytes, bool readable, int mem_fd) noexcept {
  if (!readable) {
    std::size_t done = 0;
    while (done < bytes) {
      const ssize_t got = ::pread(mem_fd, reinterpret_cast<void*>(to + done), bytes - done, static_cast<off_t>(from + done));
      if (got <= 0) return false;
      done += static_cast<std::size_t>(got);
    }
    return true;
  }
#ifdef NUMAMOVE_DETAIL_KERNEL_COPY
  iovec local{reinterpret_cast<void*>(to), bytes};
  iovec remote{reinterpret_cast<void*>(from), bytes};
  if (::process_vm_readv(::getpid(), &local, 1, &remote, 1, 0) == static_cast<ssize_t>(bytes)) return true;
#endif
  std::memcpy(reinterpret_cast<void*>(to), reinterpret_cast<const void*>(from), bytes);
  return true;
}

/// Phase A, on each worker: populate the fresh pages of the team's copy chunks. A huge chunk with
/// holes gets one page of its fresh block made inaccessible while it is populated, so that the
/// kernel cannot back the block with a huge page (which would allocate the holes).
inline void populate_chunks(void* context, unsigned) noexcept {
  team_job& job = *static_cast<team_job*>(context);
  for (std::size_t k = job.next->fetch_add(1); k < job.count; k = job.next->fetch_add(1)) {
    chunk& c = job.chunks[job.order[k]];
    const run& r = job.runs[c.run];
    if (r.kind != treatment::copy || r.error != 0 || c.error != 0) continue;
    const std::size_t page = page_size();
    std::uintptr_t split = 0;
    if (c.huge && job.run_thp[c.run]) {
      for (std::size_t j = 0; j < c.pages && split == 0; ++j)
        if (job.pages[c.first + j].what == treatment::hole) split = c.fresh + j * page;
    }
    if (split != 0 && ::mprotect(reinterpret_cast<void*>(split), page, PROT_NONE) != 0) {
      c.error = -ENOMEM;
      continue;
    }
    int error = 0;
    for (std::size_t j = 0; j < c.pages && error == 0;) {
      if (job.pages[c.first + j].what != treatment::copy) {
        ++j;
        continue;
      }
      std::size_t end = j + 1;
      while (end < c.pages && job.pages[c.first + end].what == treatment::copy) ++end;
      error = populate(c.fresh + j * page, c.fresh + end * page);
      j = end;
    }
    if (split != 0) ::mprotect(reinterpret_cast<void*>(split), page, PROT_READ | PROT_WRITE);
    if (error != 0) c.error = -ENOMEM;
  }
}

/// Which pages of chunk `c` are still in the mapping that was examined: job.verdict gets the
/// verdict of each page, and the result says whether all of them are.
inline bool chunk_unchanged(const team_job& job, const chunk& c) noexcept {
  const mapping& m = (*job.maps)[job.runs[c.run].vma];
  bool all = true;
  for (std::size_t j = 0; j < c.pages; ++j) {
    const live_verdict v = job.now->verdict(job.pages[c.first + j].address, m, job.own, job.own_count);
    job.verdict[c.first + j] = static_cast<int>(v);
    all = all && v == live_verdict::unchanged;
  }
  return all;
}

/// Phase B for a copy chunk of `length` pages from page `offset` of chunk `c` (pages the
/// program still has, unchanged): look again, copy, put in place.
inline void move_copy_pages(team_job& job, chunk& c, std::size_t offset, std::size_t length, std::uint64_t* entries) noexcept {
  const std::size_t page = page_size();
  const std::size_t first = c.first + offset;
  const std::uintptr_t original = job.pages[first].address;
  const std::uintptr_t fresh = c.fresh + offset * page;
  const std::size_t bytes = length * page;
  const int prot = (*job.maps)[job.runs[c.run].vma].protection();
  // The program may have written a hole or dropped a page between the examination and the
  // stop: copy what is there now.
  const bool fresh_look = read_pagemap_entries(job.pagemap_fd, original, length, entries);
  unsigned char* moved = job.moved + first;
  for (std::size_t j = 0; j < length; ++j) {
    const page_facts& p = job.pages[first + j];
    bool copy = p.what == treatment::copy;
    if (fresh_look) {
      const std::uint64_t e = entries[j];
      const bool data = (e & pagemap_bit::swapped) != 0 ||
                        ((e & pagemap_bit::present) != 0 && (copy || (e & pagemap_bit::exclusive) != 0));
      if (copy && !data) ::madvise(reinterpret_cast<void*>(fresh + j * page), page, MADV_DONTNEED);
      copy = data;
    }
    moved[j] = copy ? 1 : 0;
  }
  bool copied = true;
  for (std::size_t j = 0; j < length && copied;) {
    if (!moved[j]) {
      ++j;
      continue;
    }
    std::size_t end = j + 1;
    while (end < length && moved[end]) ++end;
    copied = copy_bytes(fresh + j * page, original + j * page, (end - j) * page, (prot & PROT_READ) != 0, job.mem_fd);
    j = end;
  }
  int error = copied ? 0 : EFAULT;
  if (error == 0 && prot != (PROT_READ | PROT_WRITE) && ::mprotect(reinterpret_cast<void*>(fresh), bytes, prot) != 0)
    error = errno;
  if (error == 0) error = injected(failure_point::commit);
  if (error == 0 && ::mremap(reinterpret_cast<void*>(fresh), bytes, bytes, MREMAP_MAYMOVE | MREMAP_FIXED,
                             reinterpret_cast<void*>(original)) == MAP_FAILED)
    error = errno;
  if (error != 0) {
    for (std::size_t j = 0; j < length; ++j) moved[j] = 0;
    c.error = error == ENOMEM ? -ENOMEM : error == EFAULT ? -EFAULT : -EBUSY;
    return;
  }
  c.committed = true;
  // The zero pages that rode along are no pages in the fresh mapping: read them again, through
  // the kernel (no sanitizer sees a read of memory it may think poisoned), to map the zero page.
  for (std::size_t j = 0; j < length; ++j) {
    const page_facts& p = job.pages[first + j];
    if (p.what != treatment::hole || p.status != -EFAULT || moved[j]) continue;
    char byte = 0;
    iovec local{&byte, 1};
    iovec remote{reinterpret_cast<void*>(original + j * page), 1};
    if ((prot & PROT_READ) != 0) ::process_vm_readv(::getpid(), &local, 1, &remote, 1, 0);
    else if (job.mem_fd >= 0) ::pread(job.mem_fd, &byte, 1, static_cast<off_t>(original + j * page));
  }
}

/// Phase B for a copy chunk: the stretches of its pages that are still the program's, each
/// moved on its own (a chunk the program partly unmapped moves the rest).
inline void move_copy_chunk(team_job& job, chunk& c, std::uint64_t* entries) noexcept {
  if (chunk_unchanged(job, c)) {
    move_copy_pages(job, c, 0, c.pages, entries);
    return;
  }
  for (std::size_t j = 0; j < c.pages && c.error == 0;) {
    if (job.verdict[c.first + j] != static_cast<int>(live_verdict::unchanged)) {
      ++j;
      continue;
    }
    std::size_t end = j + 1;
    while (end < c.pages && job.verdict[c.first + end] == static_cast<int>(live_verdict::unchanged)) ++end;
    move_copy_pages(job, c, j, end - j, entries);
    j = end;
  }
}

/// Phase B for a chunk of page-cache pages: check they are still the examined mapping's clean
/// cache pages mapped by us alone, then write back, drop and fault in again from this (target)
/// node.
inline void move_refault_chunk(team_job& job, chunk& c, std::uint64_t* entries, unsigned char* scratch) noexcept {
  const run& r = job.runs[c.run];
  const mapping& m = (*job.maps)[r.vma];
  const std::uintptr_t begin = job.pages[c.first].address;
  bool unchanged = chunk_unchanged(job, c) && read_pagemap_entries(job.pagemap_fd, begin, c.pages, entries);
  constexpr std::uint64_t wanted = pagemap_bit::present | pagemap_bit::file_or_shared | pagemap_bit::exclusive;
  for (std::size_t j = 0; j < c.pages && unchanged; ++j) unchanged = (entries[j] & wanted) == wanted;
  if (!unchanged) {
    c.error = -EBUSY;
    return;
  }
  const auto offset = static_cast<off_t>(m.offset + (begin - m.start));
  // A read fault maps the cached neighbours of the page too (fault-around): the pages of the
  // mapping beside the chunk that are not mapped now must not be afterwards.
  const std::uintptr_t end = begin + c.pages * page_size();
  const std::lock_guard<std::mutex> one_refault_at_a_time(*job.refault_lock);
  const std::size_t pages_below = std::min((begin - m.start) / page_size(), fault_around_pages - 1);
  const std::size_t pages_above = std::min((m.end - end) / page_size(), fault_around_pages - 1);
  const std::uintptr_t below = begin - pages_below * page_size();
  std::uint64_t before_below[fault_around_pages] = {};
  std::uint64_t before_above[fault_around_pages] = {};
  const bool sides_known = read_pagemap_entries(job.pagemap_fd, below, pages_below, before_below) &&
                           read_pagemap_entries(job.pagemap_fd, end, pages_above, before_above);
  if (job.prefer != nullptr) sys_set_mempolicy(mpol_preferred, job.prefer->words.data(), job.prefer->maxnode);
  const int error = refault(begin, c.pages, r.fd, offset, m.shared(), scratch);
  if (job.prefer != nullptr) sys_set_mempolicy(mpol_default, nullptr, 0);
  if (sides_known) {
    unmap_mapped_since(job.pagemap_fd, below, pages_below, before_below);
    unmap_mapped_since(job.pagemap_fd, end, pages_above, before_above);
  }
  unsigned char* moved = job.moved + c.first;
  for (std::size_t j = 0; j < c.pages; ++j) moved[j] = error == 0 ? scratch[j] : 0;
  c.error = error;
}

/// Phase B, on each worker: the chunks job.order[*job.next .. job.count) of one batch.
inline void move_chunks(void* context, unsigned worker) noexcept {
  team_job& job = *static_cast<team_job*>(context);
  std::uint64_t* entries = job.entries + worker * job.per_worker;
  unsigned char* scratch = job.scratch + worker * job.per_worker;
  for (std::size_t k = job.next->fetch_add(1); k < job.count; k = job.next->fetch_add(1)) {
    chunk& c = job.chunks[job.order[k]];
    if (job.runs[c.run].error != 0 || c.error != 0) continue;
    if (job.runs[c.run].kind == treatment::copy) move_copy_chunk(job, c, entries);
    else move_refault_chunk(job, c, entries, scratch);
  }
}

/// Calls, once per process, every function that phase B calls, so that lazy binding has
/// resolved them before any page is protected (resolving writes the GOT, which may share a page
/// with a global array being moved).
inline void resolve_phase_b_calls() {
  static const bool done = [] {
    void* page = ::mmap(nullptr, page_size(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) return false;
    unsigned char byte = 0;
    ::mprotect(page, page_size(), PROT_READ | PROT_WRITE);
    ::madvise(page, page_size(), MADV_NORMAL);
    ::mremap(page, page_size(), page_size(), 0);
    ::msync(page, page_size(), MS_ASYNC);
    ::mincore(page, page_size(), &byte);
    const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      std::uint64_t entry = 0;
      ::pread(fd, &entry, sizeof entry, 0);
      ::posix_fadvise(fd, 0, 0, POSIX_FADV_NORMAL);
      ::close(fd);
    }
    iovec local{&byte, 1};
    iovec remote{page, 1};
    ::process_vm_readv(::getpid(), &local, 1, &remote, 1, 0);
    std::memcpy(&byte, page, 1);
    // The fence's and live_maps' calls.
    const int maps = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (maps >= 0) {
      char text[64];
      ::lseek(maps, 0, SEEK_SET);
      (void)!::read(maps, text, sizeof text);
      (void)std::memchr(text, '\n', sizeof text);
      ::close(maps);
    }
    (void)std::atol("1");
    const timespec no_time{0, 0};
    ::nanosleep(&no_time, nullptr);
    timespec t{};
    ::clock_gettime(CLOCK_MONOTONIC, &t);
    ::syscall(SYS_tgkill, ::getpid(), fencing::this_thread_id(), 0);
    ::munmap(page, page_size());
    return true;
  }();
  (void)done;
}

/// Cuts the examined pages into runs: copy runs (copy pages, holes inside) and refault runs.
inline std::vector<run> plan_runs(const examination& e) {
  std::vector<run> runs;
  const std::size_t n = e.pages.size();
  const std::size_t page = page_size();
  for (std::size_t i = 0; i < n;) {
    const page_facts& p = e.pages[i];
    if (p.what != treatment::copy && p.what != treatment::refault) {
      ++i;
      continue;
    }
    std::size_t last = i;  // the last page of the run that must move
    std::size_t j = i + 1;
    for (; j < n; ++j) {
      const page_facts& q = e.pages[j];
      const bool fits = q.address == e.pages[j - 1].address + page && q.vma == p.vma && q.target == p.target &&
                        (q.what == p.what || (p.what == treatment::copy && q.what == treatment::hole));
      if (!fits) break;
      if (q.what == p.what) last = j;
    }
    run r;
    r.first = i;
    r.pages = last - i + 1;
    r.node = p.target;
    r.vma = p.vma;
    r.kind = p.what;
    runs.push_back(r);
    i = last + 1;
  }
  return runs;
}

/// The file mapping `m` maps, opened for reading: through /proc/self/map_files (the mapped file
/// itself, unlinked or renamed too; needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE), else by its
/// path when that still names the mapped file. Returns the descriptor, or -1.
inline int open_mapped_file(const mapping& m) {
  char name[64];
  std::snprintf(name, sizeof name, "/proc/self/map_files/%lx-%lx", static_cast<unsigned long>(m.start),
                static_cast<unsigned long>(m.end));
  for (const char* path : {static_cast<const char*>(name), m.path.c_str()}) {
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st{};
    if (::fstat(fd, &st) == 0 && static_cast<std::uint64_t>(st.st_ino) == m.inode &&
        (static_cast<std::uint64_t>(major(st.st_dev)) << 32 | minor(st.st_dev)) == m.device)
      return fd;
    ::close(fd);
  }
  return -1;
}

/// Maps the fresh pages of a copy run inside a reservation, at the run's offset modulo the
/// huge-page size, with the original mapping's madvise flags, placed on the run's node by mbind
/// where allowed. Returns 0 or a negative status for the run's pages.
inline int map_fresh(run& r, const mapping& m, std::uintptr_t begin, const capabilities& here) {
  const std::size_t page = page_size();
  const std::size_t huge = thp_size();
  const std::size_t bytes = r.pages * page;
  if (injected(failure_point::map_destination) != 0) return -ENOMEM;
  // Guard pages on both sides keep the fresh mapping from merging with its neighbours, so that
  // numa_maps shows it alone.
  r.reserved = bytes + huge + 2 * page;
  void* reservation = map_own(r.reserved, PROT_NONE, MAP_NORESERVE);
  if (reservation == MAP_FAILED) return -ENOMEM;
  r.reservation = reinterpret_cast<std::uintptr_t>(reservation);
  const std::uintptr_t lowest = r.reservation + page;
  r.fresh = lowest + ((begin % huge) + huge - lowest % huge) % huge;
  // MAP_NORESERVE: mremap charges moved accountable memory after it has unmapped the
  // destination, and a refused charge there would lose the original pages.
  if (::mmap(reinterpret_cast<void*>(r.fresh), bytes, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == MAP_FAILED)
    return -ENOMEM;
  void* fresh = reinterpret_cast<void*>(r.fresh);
  if (m.has_flag("hg")) ::madvise(fresh, bytes, MADV_HUGEPAGE);
  if (m.has_flag("nh")) ::madvise(fresh, bytes, MADV_NOHUGEPAGE);
  if (m.has_flag("dd")) ::madvise(fresh, bytes, MADV_DONTDUMP);
#ifdef MADV_WIPEONFORK
  if (m.has_flag("wf")) ::madvise(fresh, bytes, MADV_WIPEONFORK);
#endif
  if (m.has_flag("mg")) ::madvise(fresh, bytes, MADV_MERGEABLE);
#ifdef PR_SET_VMA
  if (m.path.rfind("[anon:", 0) == 0 && m.path.back() == ']') {
    const std::string name = m.path.substr(6, m.path.size() - 7);
    ::prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, r.fresh, bytes, name.c_str());
  }
#endif
  if (here.mbind) {
    // The original policy comes back once the pages are placed; MPOL_PREFERRED rather than
    // MPOL_BIND, so that a full node shows as misplaced pages (-ENOMEM) instead of the OOM killer.
    if (here.get_mempolicy &&
        sys_get_mempolicy(&r.policy_mode, r.policy_mask, 16 * 64 + 1, reinterpret_cast<void*>(begin), mpol_f_addr) != 0)
      r.policy_mode = mpol_default;
    const node_mask mask({r.node});
    r.placed_by_mbind = sys_mbind(fresh, bytes, mpol_preferred, mask.words.data(), mask.maxnode, 0) == 0;
  }
  return 0;
}

/// Moves the copy and refault pages of `e` (statuses and `moved` flags land in e.pages).
inline void relocate(examination& e, const relocation_options& options) {
  std::vector<run> runs = plan_runs(e);
  if (runs.empty()) return;
  const capabilities& here = capabilities::of_this_process();
  const std::size_t page = page_size();
  const std::size_t huge_pages = thp_size() / page;

  // Chunks at huge-page boundaries of the original addresses, in address order.
  struct chunk_plan {
    std::size_t first, pages, run;
  };
  std::vector<chunk_plan> cuts;
  for (std::size_t r = 0; r < runs.size(); ++r) {
    for (std::size_t i = runs[r].first; i < runs[r].first + runs[r].pages;) {
      const std::uintptr_t address = e.pages[i].address;
      const std::size_t to_boundary = huge_pages - (address / page) % huge_pages;
      const std::size_t pages = std::min(to_boundary, runs[r].first + runs[r].pages - i);
      cuts.push_back({i, pages, r});
      i += pages;
    }
  }

  // One team per target node.
  std::vector<int> nodes;
  for (const run& r : runs)
    if (std::find(nodes.begin(), nodes.end(), r.node) == nodes.end()) nodes.push_back(r.node);
  std::vector<unsigned> team_size(nodes.size(), 1);
  for (std::size_t t = 0; t < nodes.size(); ++t) {
    std::size_t bytes = 0;
    for (const run& r : runs)
      if (r.node == nodes[t]) bytes += r.pages * page;
    const capabilities::node_access* access = here.find(nodes[t]);
    const std::size_t cpus = access != nullptr && access->pinnable ? access->cpus.size() : 1;
    const std::size_t by_size = std::max<std::size_t>(1, bytes / (std::size_t{32} << 20));
    team_size[t] = options.workers != 0 ? options.workers
                                        : static_cast<unsigned>(std::min<std::size_t>({by_size, cpus, 8}));
  }
  unsigned all_workers = 0;
  for (const unsigned w : team_size) all_workers += w;

  // What phase B writes and reads while the program's threads are stopped; sized now, since
  // nothing may allocate then. The thread ids: the threads now, with room for many more.
  const std::size_t thread_room = 2 * count_threads() + 256;
  const std::size_t maps_room = 2 * e.maps.size() + 256;
  const std::size_t own_room = runs.size() + all_workers + nodes.size() + 3;
  arena memory(arena::room<chunk>(cuts.size()) + arena::room<unsigned char>(e.pages.size()) +
               arena::room<int>(e.pages.size()) + arena::room<std::atomic<std::size_t>>(2 * nodes.size()) +
               arena::room<std::uint64_t>(all_workers * huge_pages) + arena::room<unsigned char>(all_workers * huge_pages) +
               arena::room<pid_t>(thread_room) + arena::room<live_mapping>(maps_room) +
               arena::room<char>(maps_room * 256) + arena::room<own_range>(own_room));
  chunk* chunks = memory.make<chunk>(cuts.size());
  unsigned char* moved = memory.make<unsigned char>(e.pages.size());
  int* verdict = memory.make<int>(e.pages.size());
  std::atomic<std::size_t>* next = memory.make<std::atomic<std::size_t>>(2 * nodes.size());
  std::uint64_t* entries = memory.make<std::uint64_t>(all_workers * huge_pages);
  unsigned char* scratch = memory.make<unsigned char>(all_workers * huge_pages);
  pid_t* tids = memory.make<pid_t>(thread_room);
  live_mapping* live_entries = memory.make<live_mapping>(maps_room);
  char* live_text = memory.make<char>(maps_room * 256);
  own_range* own = memory.make<own_range>(own_room);
  std::size_t own_count = 0;
  own[own_count++] = memory.extent();
  live_maps now(live_text, maps_room * 256, live_entries, maps_room);

  // Whatever happens from here on (an exception too), the reservations and files go back: not
  // the addresses committed chunks came from, which another thread may have mapped since.
  struct release {
    std::vector<run>& runs;
    const chunk* chunks;
    std::size_t count;
    int pagemap_fd = -1;
    int mem_fd = -1;
    ~release() {
      for (std::size_t r = 0; r < runs.size(); ++r) {
        if (runs[r].fd >= 0) ::close(runs[r].fd);
        if (runs[r].reservation == 0) continue;
        std::uintptr_t from = runs[r].reservation;
        const std::uintptr_t end = runs[r].reservation + runs[r].reserved;
        for (std::size_t k = 0; k < count; ++k) {
          if (chunks[k].run != r || !chunks[k].committed) continue;
          if (chunks[k].fresh > from) ::munmap(reinterpret_cast<void*>(from), chunks[k].fresh - from);
          from = chunks[k].fresh + chunks[k].pages * page_size();
        }
        if (end > from) ::munmap(reinterpret_cast<void*>(from), end - from);
      }
      if (pagemap_fd >= 0) ::close(pagemap_fd);
      if (mem_fd >= 0) ::close(mem_fd);
    }
  } give_back{runs, chunks, cuts.size()};

  // Prepare the runs: fresh mappings for copies, the files for refaults.
  bool unreadable_source = false;
  std::unique_ptr<bool[]> run_thp(new bool[runs.size()]());
  std::mutex refault_lock;
  for (std::size_t r = 0; r < runs.size(); ++r) {
    run& each = runs[r];
    const mapping& m = e.maps[each.vma];
    const std::uintptr_t begin = e.pages[each.first].address;
    if (each.kind == treatment::copy) {
      each.error = map_fresh(each, m, begin, here);
      run_thp[r] = thp_backs(m, here.thp);  // the fresh mapping copies the opt-in or opt-out
      if ((m.protection() & PROT_READ) == 0) unreadable_source = true;
    } else {
      each.fd = open_mapped_file(m);
      if (each.fd < 0) each.error = -EBUSY;
    }
  }
  for (std::size_t k = 0; k < cuts.size(); ++k) {
    chunk& c = chunks[k];
    const run& r = runs[cuts[k].run];
    c.first = cuts[k].first;
    c.pages = cuts[k].pages;
    c.run = cuts[k].run;
    c.fresh = r.fresh + (e.pages[c.first].address - e.pages[r.first].address);
    c.huge = c.pages == huge_pages;
  }
  for (const run& r : runs)
    if (r.reservation != 0) own[own_count++] = {r.reservation, r.reservation + r.reserved};

  resolve_phase_b_calls();
  const int pagemap_fd = give_back.pagemap_fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  const int mem_fd = give_back.mem_fd = unreadable_source ? ::open("/proc/self/mem", O_RDONLY | O_CLOEXEC) : -1;

  // Teams, and each team's share of the chunks.
  std::vector<std::unique_ptr<worker_team>> teams;
  std::vector<std::vector<std::size_t>> orders(nodes.size());
  std::vector<team_job> jobs(nodes.size());
  std::vector<node_mask> masks;
  for (const int node : nodes) masks.emplace_back(std::vector<int>{node});
  for (std::size_t k = 0; k < cuts.size(); ++k) {
    const std::size_t t = static_cast<std::size_t>(std::find(nodes.begin(), nodes.end(), runs[cuts[k].run].node) - nodes.begin());
    orders[t].push_back(k);
  }
  unsigned worker_base = 0;
  for (std::size_t t = 0; t < nodes.size(); ++t) {
    const capabilities::node_access* access = here.find(nodes[t]);
    const std::vector<int> cpus = access != nullptr && access->pinnable ? access->cpus : std::vector<int>{};
    try {
      teams.push_back(std::make_unique<worker_team>(team_size[t], cpus));
    } catch (const std::system_error&) {
      teams.push_back(nullptr);
    }
    if (teams[t] != nullptr)
      teams[t]->for_each_mapping([&](std::uintptr_t begin, std::uintptr_t end) { own[own_count++] = {begin, end}; });
    team_job& job = jobs[t];
    job.pages = e.pages.data();
    job.maps = &e.maps;
    job.runs = runs.data();
    job.chunks = chunks;
    job.moved = moved;
    job.verdict = verdict;
    job.now = &now;
    job.own = own;
    job.order = orders[t].data();
    job.count = orders[t].size();
    job.next = &next[2 * t];
    job.entries = entries + worker_base * huge_pages;
    job.scratch = scratch + worker_base * huge_pages;
    job.per_worker = huge_pages;
    job.pagemap_fd = pagemap_fd;
    job.mem_fd = mem_fd;
    job.run_thp = run_thp.get();
    job.refault_lock = &refault_lock;
    worker_base += team_size[t];
    const bool pinned = teams[t] != nullptr && teams[t]->pinned();
    if (!pinned && here.set_mempolicy) job.prefer = &masks[t];
    // A team that can place nothing: no thread, or neither pinned nor helped by mbind.
    for (const std::size_t k : orders[t]) {
      const run& r = runs[chunks[k].run];
      const bool placeable = teams[t] != nullptr &&
                             (pinned || (r.kind == treatment::copy ? r.placed_by_mbind : job.prefer != nullptr));
      if (!placeable && chunks[k].error == 0) chunks[k].error = -ENOMEM;
    }
  }
  // Phase A: fresh pages, placed.
  for (std::size_t t = 0; t < nodes.size(); ++t)
    if (teams[t] != nullptr) teams[t]->start(&populate_chunks, &jobs[t]);
  for (std::size_t t = 0; t < nodes.size(); ++t)
    if (teams[t] != nullptr) teams[t]->wait();

  // Where did they land? Pages not on the target mean the node had no room (or a policy of the
  // process sent them elsewhere): their chunk (per page from the query; their whole run from
  // numa_maps, which counts per mapping) stays where it is, -ENOMEM.
  for (std::size_t k = 0; k < cuts.size(); ++k)
    if (runs[chunks[k].run].kind == treatment::copy && chunks[k].error == 0 && runs[chunks[k].run].error == 0 &&
        injected(failure_point::place) != 0)
      chunks[k].error = -ENOMEM;
  const bool elsewhere_possible = here.nodes.size() > 1;  // on one node there is nowhere else
  if (elsewhere_possible && here.move_pages_query) {
    std::vector<void*> fresh;
    std::vector<std::size_t> owner;
    for (std::size_t k = 0; k < cuts.size(); ++k) {
      const chunk& c = chunks[k];
      if (runs[c.run].kind != treatment::copy || runs[c.run].error != 0 || c.error != 0) continue;
      for (std::size_t j = 0; j < c.pages; ++j)
        if (e.pages[c.first + j].what == treatment::copy) {
          fresh.push_back(reinterpret_cast<void*>(c.fresh + j * page));
          owner.push_back(k);
        }
    }
    std::vector<int> where(fresh.size(), -1);
    if (!fresh.empty() && sys_move_pages(0, fresh.size(), fresh.data(), nullptr, where.data(), 0) == 0)
      for (std::size_t f = 0; f < fresh.size(); ++f)
        if (where[f] != runs[chunks[owner[f]].run].node) chunks[owner[f]].error = -ENOMEM;
  } else if (elsewhere_possible && here.numa_maps) {
    const auto counts = read_numa_maps(0);
    for (run& r : runs) {
      if (r.kind != treatment::copy || r.error != 0) continue;
      const auto found = counts.find(r.fresh);
      if (found == counts.end()) continue;
      for (const auto& [node, pages] : found->second)
        if (node != r.node && pages > 0) r.error = -ENOMEM;
    }
  }
  for (run& r : runs) {
    if (!r.placed_by_mbind) continue;
    sys_mbind(reinterpret_cast<void*>(r.fresh), r.pages * page, r.policy_mode, r.policy_mode == mpol_default ? nullptr : r.policy_mask,
              r.policy_mode == mpol_default ? 0 : 16 * 64 + 1, 0);
  }

  // Phase B: batch by batch, the program's threads stopped, look again, copy, commit.
  const auto fence_extent = fence_state_extent();
  if (fence_extent.first != 0) own[own_count++] = {fence_extent.first, fence_extent.second};
  for (team_job& job : jobs) job.own_count = own_count;
  std::vector<unsigned char> started(nodes.size());
  int stop_error = 0;
  for (std::size_t batch_begin = 0; batch_begin < cuts.size();) {
    std::size_t batch_end = batch_begin;
    for (std::size_t bytes = 0; batch_end < cuts.size() && bytes < batch_bytes; ++batch_end) bytes += cuts[batch_end].pages * page;
    thread_fence fence(tids, thread_room);
    if (options.protect_writes && stop_error == 0) stop_error = injected(failure_point::stop);
    if (options.protect_writes && stop_error == 0) stop_error = fence.stop();
    if (stop_error != 0) {
      // Another thread could change the address space meanwhile: nothing more is committed.
      for (std::size_t k = batch_begin; k < cuts.size(); ++k)
        if (chunks[k].error == 0) chunks[k].error = -EBUSY;
      break;
    }
    now.read();
    for (std::size_t t = 0; t < nodes.size(); ++t) {
      const std::vector<std::size_t>& order = orders[t];
      const auto from = std::lower_bound(order.begin(), order.end(), batch_begin) - order.begin();
      const auto to = std::lower_bound(order.begin(), order.end(), batch_end) - order.begin();
      jobs[t].next = &next[2 * t + 1];
      jobs[t].next->store(static_cast<std::size_t>(from));
      jobs[t].count = static_cast<std::size_t>(to);
      started[t] = teams[t] != nullptr && to > from;
      if (started[t]) teams[t]->start(&move_chunks, &jobs[t]);
    }
    for (std::size_t t = 0; t < nodes.size(); ++t)
      if (started[t]) teams[t]->wait();
    fence.resume();
    batch_begin = batch_end;
  }
  teams.clear();

  // Outcomes. Refaulted pages are where the kernel says, where it can say.
  std::vector<int> refaulted_node(e.pages.size(), -1);
  if (here.move_pages_query) {
    std::vector<void*> asked;
    std::vector<std::size_t> index;
    for (std::size_t k = 0; k < cuts.size(); ++k) {
      if (runs[chunks[k].run].kind != treatment::refault) continue;
      for (std::size_t j = 0; j < chunks[k].pages; ++j)
        if (moved[chunks[k].first + j]) {
          asked.push_back(reinterpret_cast<void*>(e.pages[chunks[k].first + j].address));
          index.push_back(chunks[k].first + j);
        }
    }
    std::vector<int> where(asked.size(), -1);
    if (!asked.empty() && sys_move_pages(0, asked.size(), asked.data(), nullptr, where.data(), 0) == 0)
      for (std::size_t a = 0; a < asked.size(); ++a) refaulted_node[index[a]] = where[a];
  }
  for (std::size_t k = 0; k < cuts.size(); ++k) {
    const chunk& c = chunks[k];
    const run& r = runs[c.run];
    const int failure = r.error != 0 ? r.error : c.error;
    for (std::size_t j = 0; j < c.pages; ++j) {
      page_facts& p = e.pages[c.first + j];
      if (moved[c.first + j]) {  // committed (a failure resets its pages)
        p.moved = true;
        p.status = refaulted_node[c.first + j] >= 0 ? refaulted_node[c.first + j] : r.node;
        p.node = p.status;
      } else if (failure == 0 && verdict[c.first + j] != 0) {
        p.status = verdict[c.first + j];  // the program unmapped (-EFAULT) or changed (-EBUSY) it meanwhile
      } else if (p.what == treatment::copy) {
        // Not moved: a failure, or a page the program dropped meanwhile.
        p.status = failure != 0 ? failure : -ENOENT;
      } else if (p.what == treatment::refault) {
        p.status = failure != 0 ? failure : -EBUSY;  // someone kept it in the page cache
      }
    }
  }
}

}  // namespace numamove::detail::userspace
