// The kernel path: move_pages(2) itself, with statuses brought to the seed's meaning on every
// kernel version.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "../linux/maps.hpp"
#include "../linux/pagemap.hpp"
#include "../linux/proc.hpp"
#include "../linux/syscalls.hpp"

namespace numamove::detail {

/// Linux 4.3 to 6.11 report an anonymous page that was never touched as -EFAULT; the seed and
/// every other kernel say -ENOENT ("page is not present").
inline bool kernel_reports_untouched_as_efault() noexcept {
  const int release = kernel_release();
  return release >= 4003 && release < 6012;
}

/// Rewrites -EFAULT to -ENOENT for entries whose address lies in a mapping but has no page
/// (neither present nor swapped). Present pages that gave -EFAULT (the zero page, I/O mappings)
/// and addresses outside any mapping keep -EFAULT. Costs one smaps and one pagemap read, and
/// only on kernels that need it and only when some entry is -EFAULT.
inline void restore_enoent(int pid, unsigned long count, void* const* pages, int* status) {
  std::vector<unsigned long> suspects;
  for (unsigned long i = 0; i < count; ++i)
    if (status[i] == -EFAULT) suspects.push_back(i);
  if (suspects.empty()) return;
  const std::vector<mapping> maps = read_mappings(pid);
  std::vector<std::uint64_t> entry;
  for (const unsigned long i : suspects) {
    const auto address = reinterpret_cast<std::uintptr_t>(pages[i]) / page_size() * page_size();
    const mapping* m = find_mapping(maps, address);
    if (m == nullptr || m->has_flag("io") || m->has_flag("pf") || m->path == "[vsyscall]") continue;
    if (!read_pagemap(pid, address, 1, entry)) continue;
    if ((entry[0] & (pagemap_bit::present | pagemap_bit::swapped)) == 0) status[i] = -ENOENT;
  }
}

/// Linux before 6.5 does not see a present page whose entry is PROT_NONE, which is how
/// automatic NUMA balancing leaves the pages it samples: move_pages says -ENOENT and leaves it.
inline bool kernel_hides_numa_hinted_pages() noexcept { return kernel_release() < 6005; }

/// The node of the present page whose pagemap entry is `entry`, in mapping `m`, without
/// move_pages: from its frame number (readable with CAP_SYS_ADMIN) and the memory blocks of each
/// node in sysfs, else from numa_maps when all pages of its mapping are on one node. -1 when
/// neither can tell.
inline int node_of_present_page(std::uint64_t entry, const mapping& m) {
  const std::uint64_t frame = entry & pagemap_bit::pfn_mask;
  const std::string blocks = read_text("/sys/devices/system/memory/block_size_bytes");
  const unsigned long long block_bytes = std::strtoull(blocks.c_str(), nullptr, 16);
  if (frame != 0 && block_bytes != 0) {
    const std::string block = "/sys/devices/system/memory/memory" + std::to_string(frame * page_size() / block_bytes);
    for (const int node : parse_id_list(read_text("/sys/devices/system/node/online")))
      if (::access((block + "/node" + std::to_string(node)).c_str(), F_OK) == 0) return node;
  }
  const auto counts = read_numa_maps(0);
  const auto found = counts.find(m.start);
  int only = -1;
  if (found != counts.end())
    for (const auto& [node, pages] : found->second)
      if (pages > 0) only = only == -1 ? node : -2;
  return only >= 0 ? only : -1;
}

/// Entries of the calling process reported -ENOENT although the page table holds a present
/// page: each such page of a readable mapping is read once (the access ends the NUMA-hinting
/// state), then those entries are asked for again. The balancer keeps sampling while this runs,
/// so a few rounds are allowed. A present page of a mapping the program made unreadable cannot
/// be read: a query gives its node as node_of_present_page() finds it (numamove::node_unknown
/// when it cannot), a move its node when it is on the target already, else -EBUSY (Linux 6.5+
/// would move it).
inline void reveal_numa_hinted(unsigned long count, void** pages, const int* nodes, int* status,
                               int flags) {
  std::vector<unsigned long> hidden;
  std::vector<mapping> maps;
  for (unsigned long i = 0; i < count; ++i)
    if (status[i] == -ENOENT) hidden.push_back(i);
  if (hidden.empty()) return;
  const int pagemap = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (pagemap < 0) return;
  for (int round = 0; round < 4 && !hidden.empty(); ++round) {
    std::vector<unsigned long> touched;
    for (const unsigned long i : hidden) {
      const auto address = reinterpret_cast<std::uintptr_t>(pages[i]) / page_size() * page_size();
      std::uint64_t entry = 0;
      if (!read_pagemap_entries(pagemap, address, 1, &entry) || (entry & pagemap_bit::present) == 0) continue;
      if (maps.empty()) maps = read_mappings(0);
      const mapping* m = find_mapping(maps, address);
      if (m == nullptr) continue;
      if ((m->protection() & PROT_READ) == 0) {
        const int node = node_of_present_page(entry, *m);
        if (nodes == nullptr) status[i] = node >= 0 ? node : -ENODATA;
        else status[i] = node >= 0 && node == nodes[i] ? node : -EBUSY;
        continue;
      }
      (void)*reinterpret_cast<const volatile char*>(address);
      touched.push_back(i);
    }
    if (touched.empty()) break;
    std::vector<void*> again_pages(touched.size());
    std::vector<int> again_nodes(touched.size());
    std::vector<int> again_status(touched.size());
    for (std::size_t k = 0; k < touched.size(); ++k) {
      again_pages[k] = pages[touched[k]];
      if (nodes != nullptr) again_nodes[k] = nodes[touched[k]];
    }
    if (sys_move_pages(0, touched.size(), again_pages.data(), nodes ? again_nodes.data() : nullptr,
                       again_status.data(), flags) != 0)
      break;
    hidden.clear();
    for (std::size_t k = 0; k < touched.size(); ++k) {
      status[touched[k]] = again_status[k];
      if (again_status[k] == -ENOENT) hidden.push_back(touched[k]);
    }
  }
  ::close(pagemap);
}

/// move_pages(2) with the kernel's contract, statuses corrected to the seed's meaning where the
/// kernel version needs it (reveal_numa_hinted, restore_enoent). Corrections run only on a
/// complete call (return 0), where every status was written.
inline long kernel_move_pages(int pid, unsigned long count, void** pages, const int* nodes,
                              int* status, int flags) {
  const long rc = sys_move_pages(pid, count, pages, nodes, status, flags);
  if (rc != 0 || count == 0) return rc;
  const int saved = errno;
  if (pid == 0 && kernel_hides_numa_hinted_pages()) reveal_numa_hinted(count, pages, nodes, status, flags);
  if (kernel_reports_untouched_as_efault()) restore_enoent(pid, count, pages, status);
  errno = saved;
  return rc;
}

}  // namespace numamove::detail
