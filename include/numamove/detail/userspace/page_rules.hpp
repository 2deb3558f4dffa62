// The seed's per-page rules for the userspace migrator, decided from what /proc tells without
// NUMA system calls: smaps (the mapping and its VmFlags), pagemap (present, swapped, exclusively
// mapped, page cache), numa_maps (pages per node per mapping). docs/semantics.md has the table.
#pragma once

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
#include "../linux/fault_handler.hpp"
#include "fence.hpp"
#include "../linux/huge_pages.hpp"
#include "../linux/maps.hpp"
#include "../linux/pagemap.hpp"
#include "../linux/proc.hpp"
#include "../linux/syscalls.hpp"

namespace numamove::detail::userspace {

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
  std::size_t vma = 0;         ///< index in examination::maps (valid unless status is -EFAULT for no mapping)
  std::uint64_t entry = 0;     ///< its pagemap entry
  bool moved = false;          ///< the migrator moved it (status is then its new node)
  bool known_before = false;   ///< its node before the call was verified
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
  if (p.rfind("/dev/zero", 0) == 0 || p.rfind("/memfd:", 0) == 0 || p.rfind("/SYSV", 0) == 0) return true;
  std::string file = p;
  const std::string deleted = " (deleted)";
  if (file.size() > deleted.size() && file.compare(file.size() - deleted.size(), deleted.size(), deleted) == 0)
    file.resize(file.size() - deleted.size());
  struct statfs fs{};
  if (::statfs(file.c_str(), &fs) != 0) {
    const std::size_t slash = file.rfind('/');
    if (slash == std::string::npos || ::statfs(file.substr(0, slash == 0 ? 1 : slash).c_str(), &fs) != 0) return false;
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
  return known ? std::make_pair(at, at + size) : std::make_pair(std::uintptr_t{0}, std::uintptr_t{0});
}

/// True when every byte of the page at `address` of process `pid` is zero (read through
/// /proc/<pid>/mem, which needs no read permission on the mapping and cannot fault).
inline bool page_reads_zero(int mem_fd, std::uintptr_t address) {
  std::vector<unsigned char> bytes(page_size());
  if (::pread(mem_fd, bytes.data(), bytes.size(), static_cast<off_t>(address)) != static_cast<ssize_t>(bytes.size()))
    return false;
  return std::all_of(bytes.begin(), bytes.end(), [](unsigned char b) { return b == 0; });
}

/// Marks which present pages map the shared zero page (or the huge zero page), by the best
/// means this process has: a move_pages query says -EFAULT for them (done by the caller of this
/// function, which has the statuses), PFNs, PAGEMAP_SCAN, and as the last resort the contents
/// (a page shared copy-on-write that holds only zeros then counts as the zero page; moving
/// nothing and reporting -EFAULT for it loses no data). `candidates` are indexes into `pages`.
inline void find_zero_pages(int pid, int pagemap_fd, const capabilities& here, const examination& e,
                            const std::vector<std::size_t>& candidates, std::vector<bool>& zero) {
  if (candidates.empty()) return;
  if (here.pagemap_pfns) {
    for (const std::size_t i : candidates)
      zero[i] = (e.pages[i].entry & pagemap_bit::pfn_mask) == here.zero_page_pfn;
    return;
  }
  if (here.pagemap_scan) {
    std::vector<bool> found;
    bool scanned = true;
    for (std::size_t k = 0; k < candidates.size() && scanned;) {
      // One scan per run of consecutive candidate pages.
      std::size_t end = k + 1;
      while (end < candidates.size() &&
             e.pages[candidates[end]].address == e.pages[candidates[end - 1]].address + page_size())
        ++end;
      scanned = pagemap_scan::find_zero_pages(pagemap_fd, e.pages[candidates[k]].address, end - k, found);
      for (std::size_t j = k; j < end && scanned; ++j) zero[candidates[j]] = found[j - k];
      k = end;
    }
    if (scanned) return;
  }
  const int mem = ::open((proc_dir(pid) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  if (mem < 0) return;
  for (const std::size_t i : candidates) zero[i] = page_reads_zero(mem, e.pages[i].address);
  ::close(mem);
}

/// Reads the pagemap entries of the pages addresses[which[k]] (`which` ascending) into
/// entries[k], one read per run of consecutive pages; a run whose read fails keeps its entries.
inline void read_pagemap_of(int pagemap_fd, const std::vector<std::uintptr_t>& addresses,
                            const std::vector<std::size_t>& which, std::vector<std::uint64_t>& entries) {
  std::vector<std::uint64_t> run;
  for (std::size_t k = 0; k < which.size();) {
    std::size_t end = k + 1;
    while (end < which.size() && addresses[which[end]] == addresses[which[end - 1]] + page_size()) ++end;
    run.assign(end - k, 0);
    if (read_pagemap_entries(pagemap_fd, addresses[which[k]], end - k, run.data()))
      std::copy(run.begin(), run.end(), entries.begin() + static_cast<std::ptrdiff_t>(k));
    k = end;
  }
}

/// Examines the distinct, ascending, page-aligned `addresses` of process `pid` (0: this one).
/// `targets` gives each page's target node, or is empty for a query. `flags` as move_pages'.
/// `force` treats pages already on their target as pages to move.
inline examination examine(int pid, const std::vector<std::uintptr_t>& addresses, const std::vector<int>& targets,
                           int flags, bool force) {
  const capabilities& here = capabilities::of_this_process();
  examination e;
  e.maps = read_mappings(pid);
  const int pagemap_fd = ::open((proc_dir(pid) + "/pagemap").c_str(), O_RDONLY | O_CLOEXEC);
  if (pagemap_fd < 0 || e.maps.empty()) {
    // The process went away (ESRCH), or its files are not ours to read (EPERM, as the kernel).
    e.error = pagemap_fd < 0 && (errno == EACCES || errno == EPERM) ? EPERM : ESRCH;
    if (pagemap_fd >= 0) ::close(pagemap_fd);
    return e;
  }
  const bool query = targets.empty();
  const bool move_all = (flags & MPOL_MF_MOVE_ALL) != 0;
  const std::size_t n = addresses.size();
  e.pages.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    e.pages[i].address = addresses[i];
    e.pages[i].target = query ? -1 : targets[i];
  }

  {
    std::vector<std::size_t> every(n);
    for (std::size_t i = 0; i < n; ++i) every[i] = i;
    std::vector<std::uint64_t> entries(n, 0);
    read_pagemap_of(pagemap_fd, addresses, every, entries);
    for (std::size_t i = 0; i < n; ++i) e.pages[i].entry = entries[i];
  }

  // Facts of each mapping, worked out once for all its pages.
  struct mapping_facts {
    bool unmovable_io = false, anonymous = false, hugetlb = false, busy = false, locked = false;
    signed char memory_backed = -1;  // -1: not asked yet
  };
  std::vector<mapping_facts> facts(e.maps.size());
  for (std::size_t v = 0; v < e.maps.size(); ++v) {
    const mapping& m = e.maps[v];
    // [vsyscall] is the kernel's gate area, listed in smaps but no mapping of the process:
    // move_pages finds no VMA there (-EFAULT), like I/O and PFN mappings.
    facts[v].unmovable_io = m.has_flag("io") || m.has_flag("pf") || m.path == "[vsyscall]";
    facts[v].anonymous = anonymous_private(m);
    facts[v].hugetlb = m.kernel_page_size > page_size();
    facts[v].busy = m.path == "[stack]" || m.has_flag("gd") || m.has_flag("um") || m.has_flag("uw") || m.has_flag("ss");
    facts[v].locked = m.has_flag("lo") || m.has_flag("lf") || m.has_flag("dc");
  }

  std::vector<const mapping*> vma(n, nullptr);
  std::vector<bool> zero(n, false);
  std::vector<std::size_t> present;
  std::vector<std::size_t> zero_candidates;
  for (std::size_t i = 0; i < n; ++i) {
    // Addresses ascend: the mapping of the page before is the first guess.
    if (i > 0 && vma[i - 1] != nullptr && addresses[i] < vma[i - 1]->end && addresses[i] >= vma[i - 1]->start)
      vma[i] = vma[i - 1];
    else
      vma[i] = find_mapping(e.maps, addresses[i]);
    if (vma[i] == nullptr) continue;
    e.pages[i].vma = static_cast<std::size_t>(vma[i] - e.maps.data());
    if (facts[e.pages[i].vma].unmovable_io) continue;
    const std::uint64_t entry = e.pages[i].entry;
    if ((entry & pagemap_bit::present) == 0) continue;
    present.push_back(i);
    if (!facts[e.pages[i].vma].anonymous) continue;
    // In private anonymous memory a page-cache page can only be the huge zero page; a page not
    // mapped exclusively is the zero page or shared copy-on-write.
    if ((entry & pagemap_bit::file_or_shared) != 0) zero[i] = true;
    else if ((entry & pagemap_bit::exclusive) == 0) zero_candidates.push_back(i);
  }

  // Where present pages are: the kernel's query where it answers, else the one node with
  // memory, else numa_maps where a mapping's pages all sit on one node.
  // On one node every present page is there: ask the kernel only where it tells more (which
  // node), or where nothing else tells the zero page apart (no PFNs, no PAGEMAP_SCAN).
  std::vector<int> node(n, -1);
  std::vector<std::size_t> unanswered = present;  // present pages the kernel did not place
  const bool one_node = topology::system().nodes().size() == 1;
  if (here.move_pages_query && !present.empty() && (!one_node || (!here.pagemap_pfns && !here.pagemap_scan))) {
    std::vector<void*> asked(present.size());
    std::vector<int> answer(present.size(), -1);
    for (std::size_t k = 0; k < present.size(); ++k) asked[k] = reinterpret_cast<void*>(addresses[present[k]]);
    if (sys_move_pages(pid, asked.size(), asked.data(), nullptr, answer.data(), 0) == 0) {
      unanswered.clear();
      // Another thread may have dropped a page since the pagemap was read, and the kernel says
      // -EFAULT for a page that is not there (up to 6.11) as for the zero page: look again.
      std::vector<std::size_t> doubtful;
      for (std::size_t k = 0; k < present.size(); ++k) {
        if (answer[k] >= 0) node[present[k]] = answer[k];
        else doubtful.push_back(k);
      }
      std::vector<std::size_t> doubtful_pages(doubtful.size());
      std::vector<std::uint64_t> now(doubtful.size());
      for (std::size_t d = 0; d < doubtful.size(); ++d) {
        doubtful_pages[d] = present[doubtful[d]];
        now[d] = e.pages[doubtful_pages[d]].entry;
      }
      read_pagemap_of(pagemap_fd, addresses, doubtful_pages, now);
      for (std::size_t d = 0; d < doubtful.size(); ++d) {
        const std::size_t i = doubtful_pages[d];
        if ((now[d] & pagemap_bit::present) == 0) e.pages[i].entry = now[d];
        else if (answer[doubtful[d]] == -EFAULT) zero[i] = true;
        else unanswered.push_back(i);  // kernels before 6.5 cannot see PROT_NONE pages
      }
    } else {
      find_zero_pages(pid, pagemap_fd, here, e, zero_candidates, zero);
    }
  } else {
    find_zero_pages(pid, pagemap_fd, here, e, zero_candidates, zero);
  }
  if (!unanswered.empty()) {
    if (one_node) {
      for (const std::size_t i : unanswered) node[i] = topology::system().nodes().front();
    } else {
      const auto counts = read_numa_maps(pid);
      for (const std::size_t i : unanswered) {
        const auto found = counts.find(vma[i]->start);
        if (found == counts.end()) continue;
        int only = -1;
        int seen = 0;
        for (const auto& [id, pages] : found->second)
          if (pages > 0) only = id, ++seen;
        if (seen == 1) node[i] = only;
      }
    }
  }
  ::close(pagemap_fd);

  const auto stack = pid == 0 || pid == ::getpid() ? own_stack() : std::pair<std::uintptr_t, std::uintptr_t>{0, 0};
  const auto routing = fault_routing::routing_table_extent();
  const auto fence = fence_state_extent();
  for (std::size_t i = 0; i < n; ++i) {
    page_facts& p = e.pages[i];
    if (vma[i] == nullptr || facts[p.vma].unmovable_io) {
      p.status = -EFAULT;
      continue;
    }
    const mapping& m = *vma[i];
    mapping_facts& f = facts[p.vma];
    const bool anonymous = f.anonymous;
    const bool hugetlb = f.hugetlb;
    if ((p.entry & pagemap_bit::present) == 0) {
      // Swapped-out pages are "not present" to move_pages too; they stay in the swap.
      p.status = -ENOENT;
      p.what = anonymous && !hugetlb && (p.entry & pagemap_bit::swapped) == 0 ? treatment::hole : treatment::settled;
      continue;
    }
    if (zero[i]) {
      p.status = -EFAULT;
      p.what = anonymous && !hugetlb ? treatment::hole : treatment::settled;
      continue;
    }
    p.node = node[i];
    p.known_before = p.node >= 0;
    if (query) {
      p.status = p.node >= 0 ? p.node : node_unknown;
      continue;
    }
    if (p.node == p.target && !force) {
      p.status = p.node;
      continue;
    }
    const bool page_cache = !anonymous && (p.entry & pagemap_bit::file_or_shared) != 0;
    const bool exclusive = (p.entry & pagemap_bit::exclusive) != 0;
    // Shared mappings: never without MOVE_ALL (another process may map the object at any
    // time). Private pages: only when another process maps them too.
    if (!move_all && (m.shared() || !exclusive)) {
      p.status = -EACCES;
      continue;
    }
    // Pages numamove cannot isolate: huge TLB pages, stacks that are being written, the fault
    // routing table and the fence's state, ranges another mechanism (userfaultfd, shadow
    // stacks) owns.
    const bool on_own_stack = p.address >= stack.first && p.address < stack.second;
    const bool internal = (p.address >= routing.first && p.address < routing.second) ||
                          (p.address >= fence.first && p.address < fence.second);
    if (hugetlb || on_own_stack || internal || f.busy) {
      p.status = -EBUSY;
      continue;
    }
    // mlocked, or kept from fork for a device (RDMA registration): the seed's -EPERM.
    if (f.locked) {
      p.status = -EPERM;
      continue;
    }
    if (page_cache || m.shared()) {
      if (f.memory_backed < 0) f.memory_backed = memory_backed_file(m) ? 1 : 0;
      if (f.memory_backed == 1) p.status = -EINVAL;  // dirty, and nowhere to write it back
      else if (!exclusive || (m.protection() & PROT_READ) == 0) p.status = -EBUSY;  // mapped elsewhere
      else {
        p.status = p.target;
        p.what = treatment::refault;
      }
      continue;
    }
    p.status = p.target;
    p.what = treatment::copy;
  }
  return e;
}

}  // namespace numamove::detail::userspace
