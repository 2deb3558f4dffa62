// What the kernel tells about the machine through /sys: the one place numamove names /sys
// files. Readable where the NUMA system calls are refused (containers).
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/linux/sys.hpp is internal: include a public numamove header"
#endif

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "proc.hpp"
#include "syscalls.hpp"

namespace numamove::detail {

/// The transparent huge page mode: "always", "madvise", "never", or "" where the kernel has
/// no THP.
inline std::string thp_mode() {
  const std::string text = read_text("/sys/kernel/mm/transparent_hugepage/enabled");
  const std::size_t open = text.find('[');
  const std::size_t close = text.find(']', open);
  return open == std::string::npos || close == std::string::npos
             ? std::string{}
             : text.substr(open + 1, close - open - 1);
}

/// Size of a PMD-mapped transparent huge page (2 MiB on x86-64).
inline std::size_t thp_size() {
  static const std::size_t size = [] {
    const std::string text = read_text("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size");
    const unsigned long long value = std::strtoull(text.c_str(), nullptr, 10);
    return value ? static_cast<std::size_t>(value) : std::size_t{2} << 20;
  }();
  return size;
}

/// Nodes with memory, as the kernel counts them (not limited by the cpuset), ascending.
inline std::vector<int> nodes_with_memory() {
  return parse_id_list(read_text("/sys/devices/system/node/has_memory"));
}

/// The node the kernel puts CPU `cpu` on, or -1 when /sys does not say.
inline int node_of_cpu(int cpu) {
  int node = -1;
  for (const std::string& name :
       directory_names("/sys/devices/system/cpu/cpu" + std::to_string(cpu)))
    if (name.compare(0, 4, "node") == 0 && name.size() > 4 && name[4] >= '0' && name[4] <= '9')
      node = std::atoi(name.c_str() + 4);
  return node;
}

/// The node whose memory holds page frame `frame`, from the memory blocks of each online
/// node; -1 when /sys does not say (no frame number, no memory block directory).
inline int node_of_frame(std::uint64_t frame) {
  const std::string blocks = read_text("/sys/devices/system/memory/block_size_bytes");
  const unsigned long long block_bytes = std::strtoull(blocks.c_str(), nullptr, 16);
  if (frame == 0 || block_bytes == 0) return -1;
  const std::string block =
      "/sys/devices/system/memory/memory" + std::to_string(frame * page_size() / block_bytes);
  for (const int node : parse_id_list(read_text("/sys/devices/system/node/online")))
    if (::access((block + "/node" + std::to_string(node)).c_str(), F_OK) == 0) return node;
  return -1;
}

}  // namespace numamove::detail
