// numamove/capabilities.hpp: what this process may do here, as one cheap probe finds it.
// Containers refuse some NUMA system calls (Docker's default seccomp profile refuses
// move_pages and migrate_pages always, mbind and the mempolicy calls without CAP_SYS_NICE),
// kernels without CONFIG_NUMA have none; backend::automatic and the userspace migrator decide
// from this report.
#pragma once
#include "detail/public_header_begin.hpp"

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "flags.hpp"

namespace numamove {

/// The findings of one probe of the calling process. A plain value.
struct capabilities {
  /// One node with memory and how this process can reach it.
  struct node_access {
    int node = -1;          ///< OS id
    std::vector<int> cpus;  ///< CPUs of the node a thread of this process may be pinned to
    bool pinnable = false;  ///< sched_setaffinity to its CPUs works (first touch places there)
  };

  bool move_pages_query = false;  ///< move_pages(2) without nodes reports where a page is
  bool move_pages_move = false;   ///< move_pages(2) with nodes runs (moves pages)
  bool mbind = false;             ///< mbind(2) works (binding fresh memory to a node)
  bool get_mempolicy = false;     ///< get_mempolicy(2) works
  bool set_mempolicy = false;     ///< set_mempolicy(2) works
  bool cap_sys_nice = false;      ///< CAP_SYS_NICE is effective (needed for MPOL_MF_MOVE_ALL)
  bool pagemap = false;           ///< /proc/self/pagemap tells present, swapped, exclusive pages
  bool pagemap_pfns = false;      ///< ... and page frame numbers (needs CAP_SYS_ADMIN)
  bool pagemap_scan = false;      ///< the PAGEMAP_SCAN ioctl works (Linux 6.7+): finds zero pages
  bool numa_maps = false;         ///< /proc/self/numa_maps is readable (pages per node per mapping)
  bool process_vm = false;        ///< process_vm_readv/writev on this process work
  std::string thp;                ///< THP mode: "always", "madvise", "never", or "" (none)
  std::vector<node_access> nodes;   ///< every node with memory, ascending
  std::uint64_t zero_page_pfn = 0;  ///< PFN of the shared zero page when pagemap_pfns, else 0

  /// The path backend::automatic takes: the kernel where move_pages(2) works, else userspace.
  backend automatic() const noexcept {
    return move_pages_query && move_pages_move ? backend::kernel : backend::userspace;
  }

  /// The access record of `node`, or nullptr when it is not a node with memory.
  const node_access* find(int node) const noexcept {
    for (const node_access& n : nodes)
      if (n.node == node) return &n;
    return nullptr;
  }

  /// True when the userspace path can put fresh pages on `node`: mbind works, or a thread can be
  /// pinned to one of its CPUs.
  bool can_place_on(int node) const noexcept {
    const node_access* n = find(node);
    return n != nullptr && (mbind || n->pinnable);
  }

  /// A human-readable report, one finding per line.
  std::string report() const {
    std::ostringstream out;
    const auto yes = [](bool b) { return b ? "yes" : "no"; };
    out << "numamove capabilities of process " << ::getpid() << ":\n"
        << "  backend::automatic     -> " << to_string(automatic()) << "\n"
        << "  move_pages query       " << yes(move_pages_query) << "\n"
        << "  move_pages move        " << yes(move_pages_move) << "\n"
        << "  mbind                  " << yes(mbind) << "\n"
        << "  get_mempolicy          " << yes(get_mempolicy) << "\n"
        << "  set_mempolicy          " << yes(set_mempolicy) << "\n"
        << "  CAP_SYS_NICE           " << yes(cap_sys_nice) << " (MPOL_MF_MOVE_ALL)\n"
        << "  pagemap                " << yes(pagemap) << ", PFNs " << yes(pagemap_pfns)
        << ", PAGEMAP_SCAN " << yes(pagemap_scan) << "\n"
        << "  numa_maps              " << yes(numa_maps) << "\n"
        << "  process_vm_readv       " << yes(process_vm) << "\n"
        << "  transparent huge pages " << (thp.empty() ? "unavailable" : thp) << "\n";
    for (const node_access& n : nodes) {
      out << "  node " << n.node << ": cpus [";
      for (std::size_t i = 0; i < n.cpus.size(); ++i) out << (i ? "," : "") << n.cpus[i];
      out << "], first touch " << (n.pinnable ? "yes" : "no") << ", userspace placement "
          << (mbind || n.pinnable ? "yes" : "no") << "\n";
    }
    return out.str();
  }

  /// Probes now, without caching: a few system calls on a scratch page and a short-lived thread
  /// (which tries set_mempolicy and pinning, so that the caller's own settings stay as they are).
  /// Throws std::system_error only when hwloc cannot load the topology.
  static capabilities probe();

  /// The probe of this process, run on first use and again in a child after fork() (a child may
  /// install a seccomp filter that its parent did not have). Thread-safe. A process that installs
  /// a seccomp filter or drops capabilities itself later can call refresh().
  static const capabilities& of_this_process();

  /// Probes again and makes the result what of_this_process() returns. The previous result
  /// stays valid (it is never freed).
  static const capabilities& refresh();
};

inline std::ostream& operator<<(std::ostream& out, const capabilities& c) {
  return out << c.report();
}

}  // namespace numamove

// The probe itself is Linux probing and lives in the Linux layer; included here as header-only
// libraries do.
#include "detail/linux/capabilities_probe.hpp"

#include "detail/public_header_end.hpp"
