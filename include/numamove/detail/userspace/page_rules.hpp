// The seed's per-page rules for the userspace migrator, decided from what /proc tells without
// NUMA system calls: smaps (the mapping and its VmFlags), pagemap (present, swapped, exclusively
// mapped, page cache), numa_maps (pages per node per mapping). docs/semantics.md has the table.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/userspace/page_rules.hpp is internal: include a public numamove header"
#endif

#include <fcntl.h>
#include <linux/magic.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "../../capabilities.hpp"
#include "../../flags.hpp"
#include "../../migration_result.hpp"
#include "../../topology.hpp"
#include "../errors.hpp"
#include "../linux/fd.hpp"
#include "../page_batches.hpp"
#include "../linux/fault_handler.hpp"
#include "fence.hpp"
#include "../linux/huge_pages.hpp"
#include "../linux/maps.hpp"
#include "../linux/pagemap.hpp"
#include "../linux/proc.hpp"
#include "../linux/syscalls.hpp"

namespace numamove::detail::userspace {

/// Asks the kernel which node each page of `batch` is on (move_pages(2) with no nodes, for
/// process `pid`, 0: this one); the answers land in batch.status. Returns 0, or the call's
/// errno (EPERM, ENOSYS where the query is refused).
inline int query_nodes(int pid, page_batch& batch) {
  return errno_of(
      batch.call([pid](unsigned long count, void** pages, const int* nodes, int* status) {
        return sys_move_pages(pid, count, pages, nodes, status, 0);
      }));
}

/// What the migrator does with a page.
enum class treatment : unsigned char {
  settled,  ///< nothing: `status` is final (an error, or the node it is already on)
  hole,     ///< nothing, but it may lie inside a run of copied pages: never touched (-ENOENT) or
            ///< the zero page (-EFAULT) in private anonymous memory; the fresh pages leave it so
  copy,     ///< private anonymous page: copied into fresh pages that replace it
  refault,  ///< page-cache page: written back, dropped, faulted in again on the target
};

/// One page of a request, as examined.
struct page_facts {
  std::uintptr_t address = 0;  ///< page-aligned
  int target = -1;             ///< the node asked for; -1 in a query
  int status = -EFAULT;        ///< the outcome when nothing (more) happens to the page
  int node = -1;               ///< the node it verifiably is on now; -1 unknown or none
  treatment what = treatment::settled;
  std::size_t vma =
      0;  ///< index in examination::maps (valid unless status is -EFAULT for no mapping)
  std::uint64_t entry = 0;    ///< its pagemap entry
  bool moved = false;         ///< the migrator moved it (status is then its new node)
  bool known_before = false;  ///< its node before the call was verified
};

/// A request examined: the mappings read and one entry per distinct page, ascending.
struct examination {
  std::vector<mapping> maps;
  std::vector<page_facts> pages;
  int error = 0;  ///< call-level errno when the process's /proc files could not be read
};

/// Private memory that no file backs: the only kind where a hole may ride in a copied run
/// (in a file mapping an untouched page reads the file; fresh anonymous pages would read zeros).
inline bool anonymous_private(const mapping& m) {
  return !m.shared() && (m.path.empty() || m.path[0] == '[');
}

/// Memory that only shmem (tmpfs, memfd, SysV, MAP_SHARED anonymous) or ramfs holds: dirty by
/// nature and, without swap, with nowhere to be written back to.
inline bool memory_backed_file(const mapping& m) {
  const std::string& p = m.path;
  if (p.rfind("/dev/zero", 0) == 0 || p.rfind("/memfd:", 0) == 0 || p.rfind("/SYSV", 0) == 0)
    return true;
  std::string file = p;
  const std::string deleted = " (deleted)";
  if (file.size() > deleted.size() &&
      file.compare(file.size() - deleted.size(), deleted.size(), deleted) == 0)
    file.resize(file.size() - deleted.size());
  struct statfs fs {};
  if (::statfs(file.c_str(), &fs) != 0) {
    const std::size_t slash = file.rfind('/');
    if (slash == std::string::npos ||
        ::statfs(file.substr(0, slash == 0 ? 1 : slash).c_str(), &fs) != 0)
      return false;
  }
  const auto type = static_cast<unsigned long>(fs.f_type);
  return type == TMPFS_MAGIC || type == RAMFS_MAGIC;
}

/// [begin, end) of the calling thread's stack, which it writes while the migrator runs.
inline std::pair<std::uintptr_t, std::uintptr_t> own_stack() noexcept {
  pthread_attr_t attr;
  if (::pthread_getattr_np(::pthread_self(), &attr) != 0) return {0, 0};
  void* base = nullptr;
  std::size_t size = 0;
  const bool known = ::pthread_attr_getstack(&attr, &base, &size) == 0;
  ::pthread_attr_destroy(&attr);
  const auto at = reinterpret_cast<std::uintptr_t>(base);
  return known ? std::make_pair(at, at + size)
               : std::make_pair(std::uintptr_t{0}, std::uintptr_t{0});
}

/// True when every byte of the page at `address` of process `pid` is zero (read through
/// /proc/<pid>/mem, which needs no read permission on the mapping and cannot fault).
inline bool page_reads_zero(int mem_fd, std::uintptr_t address) {
  std::vector<unsigned char> bytes(page_size());
  if (::pread(mem_fd, bytes.data(), bytes.size(), static_cast<off_t>(address)) !=
      static_cast<ssize_t>(bytes.size()))
    return false;
  return std::all_of(bytes.begin(), bytes.end(), [](unsigned char b) { return b == 0; });
}
/// Marks which present pages map the shared zero page (or the huge zero page), by the best
/// means this process has: a move_pages query says -EFAULT for them (done by the caller of this
/// function, which has the statuses), PFNs, PAGEMAP_SCAN, and as the last resort the contents
/// (a page shared copy-on-write that holds only zeros then counts as the zero page; moving
/// nothing and reporting -EFAULT for it loses no data). `candidates` are indexes into `pages`,
/// ascending.
inline void find_zero_pages(int pid, const pagemap_file& pagemap, const capabilities& here,
                            const examination& e, const std::vector<std::size_t>& candidates,
                            std::vector<bool>& zero) {
  if (candidates.empty()) return;
  if (here.pagemap_pfns) {
    for (const std::size_t i : candidates)
      zero[i] = (e.pages[i].entry & pagemap_bit::pfn_mask) == here.zero_page_pfn;
    return;
  }
  if (here.pagemap_scan) {
    // One scan per run of consecutive candidate pages.
    std::vector<bool> found;
    bool scanned = true;
    const auto consecutive = [&](std::size_t before, std::size_t at) {
      return e.pages[candidates[at]].address == e.pages[candidates[before]].address + page_size();
    };
    for_each_run(candidates.size(), consecutive, [&](std::size_t first, std::size_t end) {
      if (!scanned) return;
      scanned =
          pagemap.mark_zero_pages(e.pages[candidates[first]].address, end - first, found) == 0;
      for (std::size_t j = first; j < end && scanned; ++j) zero[candidates[j]] = found[j - first];
    });
    if (scanned) return;
  }
  const unique_fd mem = open_proc(pid, "mem");
  if (!mem) return;
  for (const std::size_t i : candidates) zero[i] = page_reads_zero(mem.get(), e.pages[i].address);
}

/// Reads the pagemap entries of pages[which[k]] (`which` ascending) into entries[k], one read
/// per run of consecutive pages; a run whose read fails keeps its entries.
inline void read_pagemap_of(const pagemap_file& pagemap, const std::vector<page_facts>& pages,
                            const std::vector<std::size_t>& which,
                            std::vector<std::uint64_t>& entries) {
  std::vector<std::uint64_t> run;
  const auto consecutive = [&](std::size_t before, std::size_t at) {
    return pages[which[at]].address == pages[which[before]].address + page_size();
  };
  for_each_run(which.size(), consecutive, [&](std::size_t first, std::size_t end) {
    run.assign(end - first, 0);
    if (pagemap.read_entries(pages[which[first]].address, end - first, run.data()) == 0)
      std::copy(run.begin(), run.end(), entries.begin() + static_cast<std::ptrdiff_t>(first));
  });
}

/// Facts of a mapping that hold for all its pages, worked out once.
struct mapping_facts {
  bool unmovable_io = false;  ///< no page of the process to move_pages: I/O, PFN map, [vsyscall]
  bool anonymous = false;     ///< anonymous_private()
  bool hugetlb = false;       ///< huge TLB pages (larger than `page`)
  bool busy = false;          ///< a stack being written, or owned by another mechanism
  bool locked = false;        ///< mlocked, or kept from fork for a device
  signed char memory_backed = -1;  ///< memory_backed_file(): -1 not asked yet, 0 no, 1 yes
};

/// The facts of mapping `m` on a system of `page`-byte base pages.
inline mapping_facts facts_of(const mapping& m, std::size_t page) {
  mapping_facts f;
  // [vsyscall] is the kernel's gate area, listed in smaps but no mapping of the process:
  // move_pages finds no VMA there (-EFAULT), like I/O and PFN mappings.
  f.unmovable_io = m.has_flag("io") || m.has_flag("pf") || m.path == "[vsyscall]";
  f.anonymous = anonymous_private(m);
  f.hugetlb = m.kernel_page_size > page;
  f.busy = m.path == "[stack]" || m.has_flag("gd") || m.has_flag("um") || m.has_flag("uw") ||
           m.has_flag("ss");
  f.locked = m.has_flag("lo") || m.has_flag("lf") || m.has_flag("dc");
  return f;
}

/// The request's pages as the pagemap and the mappings show them, before the kernel is asked.
struct page_survey {
  std::vector<const mapping*> vma;           ///< per page: its mapping, nullptr for none
  std::vector<bool> zero;                    ///< per page: maps the zero page
  std::vector<int> node;                     ///< per page: the node it is on, -1 unknown
  std::vector<std::size_t> present;          ///< the present pages of movable mappings
  std::vector<std::size_t> zero_candidates;  ///< present anonymous pages not mapped exclusively
};

/// Sorts the examined pages of `e` (with their pagemap entries): which mapping each is in
/// (e.pages[i].vma set), which are present, which are the huge zero page (in private anonymous
/// memory a page-cache page can only be that), and which may be the zero page or shared
/// copy-on-write (not mapped exclusively). No system calls.
inline page_survey survey_pages(examination& e, const std::vector<mapping_facts>& facts) {
  const std::size_t n = e.pages.size();
  page_survey s;
  s.vma.assign(n, nullptr);
  s.zero.assign(n, false);
  s.node.assign(n, -1);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uintptr_t address = e.pages[i].address;
    // Addresses ascend: the mapping of the page before is the first guess.
    const mapping* before = i > 0 ? s.vma[i - 1] : nullptr;
    s.vma[i] = before != nullptr && address < before->end && address >= before->start
                   ? before
                   : find_mapping(e.maps, address);
    if (s.vma[i] == nullptr) continue;
    e.pages[i].vma = static_cast<std::size_t>(s.vma[i] - e.maps.data());
    const mapping_facts& f = facts[e.pages[i].vma];
    const std::uint64_t entry = e.pages[i].entry;
    if (f.unmovable_io || (entry & pagemap_bit::present) == 0) continue;
    s.present.push_back(i);
    if (!f.anonymous) continue;
    if ((entry & pagemap_bit::file_or_shared) != 0)
      s.zero[i] = true;
    else if ((entry & pagemap_bit::exclusive) == 0)
      s.zero_candidates.push_back(i);
  }
  return s;
}

/// Asks the kernel where the present pages are. Another thread may have dropped a page since
/// the pagemap was read, and the kernel says -EFAULT for a page that is not there (up to 6.11)
/// as for the zero page: such pages are looked at again. Returns 0, with the present pages the
/// kernel did not place in `unanswered`; or the query's errno when it is refused.
inline int query_present_pages(int pid, const pagemap_file& pagemap, examination& e, page_survey& s,
                               std::vector<std::size_t>& unanswered) {
  page_batch asked;
  for (const std::size_t i : s.present) asked.add(i, reinterpret_cast<void*>(e.pages[i].address));
  if (const int error = query_nodes(pid, asked)) return error;
  std::vector<std::size_t> doubtful;  // indexes into asked
  for (std::size_t k = 0; k < asked.size(); ++k) {
    if (asked.status[k] >= 0)
      s.node[asked.from[k]] = asked.status[k];
    else
      doubtful.push_back(k);
  }
  std::vector<std::size_t> doubtful_pages(doubtful.size());
  std::vector<std::uint64_t> now(doubtful.size());
  for (std::size_t d = 0; d < doubtful.size(); ++d) {
    doubtful_pages[d] = asked.from[doubtful[d]];
    now[d] = e.pages[doubtful_pages[d]].entry;
  }
  read_pagemap_of(pagemap, e.pages, doubtful_pages, now);
  for (std::size_t d = 0; d < doubtful.size(); ++d) {
    const std::size_t i = doubtful_pages[d];
    if ((now[d] & pagemap_bit::present) == 0)
      e.pages[i].entry = now[d];
    else if (asked.status[doubtful[d]] == -EFAULT)
      s.zero[i] = true;
    else
      unanswered.push_back(i);  // kernels before 6.5 cannot see PROT_NONE pages
  }
  return 0;
}

/// The nodes of the `unanswered` present pages without the query: the one node with memory,
/// else numa_maps where all of a mapping's pages sit on one node.
inline void place_unanswered_pages(int pid, bool one_node,
                                   const std::vector<std::size_t>& unanswered, page_survey& s) {
  if (unanswered.empty()) return;
  if (one_node) {
    for (const std::size_t i : unanswered) s.node[i] = topology::system().nodes().front();
    return;
  }
  const auto counts = read_numa_maps(pid);
  for (const std::size_t i : unanswered) {
    const auto found = counts.find(s.vma[i]->start);
    if (found == counts.end()) continue;
    int only = -1;
    int seen = 0;
    for (const auto& [id, pages] : found->second)
      if (pages > 0) only = id, ++seen;
    if (seen == 1) s.node[i] = only;
  }
}

/// Where the present pages are (s.node) and which are the zero page (s.zero): the kernel's
/// query where it answers, else the one node with memory, else numa_maps. On one node every
/// present page is there: the kernel is asked only where it tells more (which node), or where
/// nothing else tells the zero page apart (no PFNs, no PAGEMAP_SCAN).
inline void locate_present_pages(int pid, const pagemap_file& pagemap, const capabilities& here,
                                 examination& e, page_survey& s) {
  const bool one_node = topology::system().nodes().size() == 1;
  std::vector<std::size_t> unanswered;
  const bool ask = here.move_pages_query && !s.present.empty() &&
                   (!one_node || (!here.pagemap_pfns && !here.pagemap_scan));
  if (!ask || query_present_pages(pid, pagemap, e, s, unanswered) != 0) {
    find_zero_pages(pid, pagemap, here, e, s.zero_candidates, s.zero);
    unanswered = s.present;
  }
  place_unanswered_pages(pid, one_node, unanswered, s);
}

/// Ranges of this process the migrator refuses to move (-EBUSY) since it writes them itself:
/// the calling thread's stack, the fault routing table, the fence's state.
struct refused_ranges {
  std::pair<std::uintptr_t, std::uintptr_t> stack{0, 0};
  std::pair<std::uintptr_t, std::uintptr_t> internal[2] = {};

  /// The ranges of process `pid` (0: this one; none for another process's stack).
  static refused_ranges of(int pid) noexcept {
    refused_ranges r;
    if (pid == 0 || pid == ::getpid()) r.stack = own_stack();
    r.internal[0] = fault_routing::routing_table_extent();
    r.internal[1] = fence_state_extent();
    return r;
  }
  bool on_stack(std::uintptr_t address) const noexcept {
    return address >= stack.first && address < stack.second;
  }
  bool internal_page(std::uintptr_t address) const noexcept {
    for (const auto& [begin, end] : internal)
      if (address >= begin && address < end) return true;
    return false;
  }
};

/// How the rules read the request: a query (no targets), MPOL_MF_MOVE_ALL, `force`.
struct rule_context {
  bool query = false;
  bool move_all = false;
  bool force = false;
  refused_ranges refused;
};

/// The rules of docs/semantics.md for a present page with data of its own, to be moved to
/// p.target from p.node: the status it keeps, or copy or refault. memory_backed() says whether
/// the mapping's file lives in memory only (asked for shared and page-cache pages alone).
template <class MemoryBacked>
void rule_for_move(page_facts& p, const mapping& m, const mapping_facts& f, const rule_context& c,
                   MemoryBacked memory_backed) {
  const bool page_cache = !f.anonymous && (p.entry & pagemap_bit::file_or_shared) != 0;
  const bool exclusive = (p.entry & pagemap_bit::exclusive) != 0;
  // Shared mappings: never without MOVE_ALL (another process may map the object at any
  // time). Private pages: only when another process maps them too.
  if (!c.move_all && (m.shared() || !exclusive)) {
    p.status = -EACCES;
    return;
  }
  // Pages numamove cannot isolate: huge TLB pages, stacks that are being written, the fault
  // routing table and the fence's state, ranges another mechanism (userfaultfd, shadow
  // stacks) owns.
  if (f.hugetlb || c.refused.on_stack(p.address) || c.refused.internal_page(p.address) || f.busy) {
    p.status = -EBUSY;
    return;
  }
  // mlocked, or kept from fork for a device (RDMA registration): the seed's -EPERM.
  if (f.locked) {
    p.status = -EPERM;
    return;
  }
  p.status = p.target;
  if (!page_cache && !m.shared())
    p.what = treatment::copy;
  else if (memory_backed())
    p.status = -EINVAL;  // dirty, and nowhere to write it back
  else if (!exclusive || (m.protection() & PROT_READ) == 0)
    p.status = -EBUSY;  // mapped elsewhere
  else
    p.what = treatment::refault;
}

/// The rules of docs/semantics.md for page `p` in mapping `m` (nullptr: none) with facts `f`,
/// that maps the zero page when `zero` and is on `node` (-1 unknown): its status, its
/// treatment, and the node it is verified on. No system calls but memory_backed()'s.
template <class MemoryBacked>
void decide_page(page_facts& p, const mapping* m, const mapping_facts* f, bool zero, int node,
                 const rule_context& c, MemoryBacked memory_backed) {
  if (m == nullptr || f->unmovable_io) {
    p.status = -EFAULT;
    return;
  }
  const bool may_ride = f->anonymous && !f->hugetlb;  // a hole the fresh pages leave as it is
  if ((p.entry & pagemap_bit::present) == 0) {
    // Swapped-out pages are "not present" to move_pages too; they stay in the swap.
    p.status = -ENOENT;
    p.what =
        may_ride && (p.entry & pagemap_bit::swapped) == 0 ? treatment::hole : treatment::settled;
    return;
  }
  if (zero) {
    p.status = -EFAULT;
    p.what = may_ride ? treatment::hole : treatment::settled;
    return;
  }
  p.node = node;
  p.known_before = node >= 0;
  if (c.query)
    p.status = node >= 0 ? node : node_unknown;
  else if (node == p.target && !c.force)
    p.status = node;
  else
    rule_for_move(p, *m, *f, c, memory_backed);
}

/// The examined pages of `e` for `addresses` and `targets` (empty for a query), with their
/// pagemap entries (0 where they cannot be read).
inline void list_pages(examination& e, const pagemap_file& pagemap,
                       const std::vector<std::uintptr_t>& addresses,
                       const std::vector<int>& targets) {
  const std::size_t n = addresses.size();
  e.pages.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    e.pages[i].address = addresses[i];
    e.pages[i].target = targets.empty() ? -1 : targets[i];
  }
  std::vector<std::size_t> every(n);
  for (std::size_t i = 0; i < n; ++i) every[i] = i;
  std::vector<std::uint64_t> entries(n, 0);
  read_pagemap_of(pagemap, e.pages, every, entries);
  for (std::size_t i = 0; i < n; ++i) e.pages[i].entry = entries[i];
}

/// Examines the distinct, ascending, page-aligned `addresses` of process `pid` (0: this one).
/// `targets` gives each page's target node, or is empty for a query. `flags` as move_pages'.
/// `force` treats pages already on their target as pages to move. A process whose files
/// cannot be read gives an examination with no pages and `error` set: ESRCH (it went away),
/// EPERM (its files are not ours to read, as the kernel says).
inline examination examine(int pid, const std::vector<std::uintptr_t>& addresses,
                           const std::vector<int>& targets, int flags, bool force) {
  const capabilities& here = capabilities::of_this_process();
  examination e;
  e.maps = read_mappings(pid);
  page_survey s;
  std::vector<mapping_facts> facts;
  {
    const pagemap_file pagemap = pagemap_file::of(pid);
    if (!pagemap.is_open() || e.maps.empty()) {
      e.error = !pagemap.is_open() && (errno == EACCES || errno == EPERM) ? EPERM : ESRCH;
      return e;
    }
    list_pages(e, pagemap, addresses, targets);
    for (const mapping& m : e.maps) facts.push_back(facts_of(m, page_size()));
    s = survey_pages(e, facts);
    locate_present_pages(pid, pagemap, here, e, s);
  }
  const rule_context context{targets.empty(), (flags & MPOL_MF_MOVE_ALL) != 0, force,
                             refused_ranges::of(pid)};
  for (std::size_t i = 0; i < e.pages.size(); ++i) {
    page_facts& p = e.pages[i];
    mapping_facts* f = s.vma[i] != nullptr ? &facts[p.vma] : nullptr;
    const auto memory_backed = [&] {
      if (f->memory_backed < 0) f->memory_backed = memory_backed_file(*s.vma[i]) ? 1 : 0;
      return f->memory_backed == 1;
    };
    decide_page(p, s.vma[i], f, s.zero[i], s.node[i], context, memory_backed);
  }
  return e;
}

}  // namespace numamove::detail::userspace
