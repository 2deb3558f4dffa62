// numamove/capabilities.hpp: what this process may do here, as one cheap probe finds it.
// Containers refuse some NUMA system calls (Docker's default seccomp profile refuses
// move_pages and migrate_pages always, mbind and the mempolicy calls without CAP_SYS_NICE),
// kernels without CONFIG_NUMA have none; backend::automatic and the userspace migrator decide
// from this report.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <ostream>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "detail/linux/maps.hpp"
#include "detail/linux/pagemap.hpp"
#include "detail/linux/proc.hpp"
#include "detail/linux/syscalls.hpp"
#include "flags.hpp"
#include "topology.hpp"
#include "detail/linux/sys.hpp"

namespace numamove {

/// The findings of one probe of the calling process. A plain value.
struct capabilities {
  /// One node with memory and how this process can reach it.
  struct node_access {
    int node = -1;          ///< OS id
    std::vector<int> cpus;  ///< CPUs of the node a thread of this process may be pinned to
    bool pinnable = false;  ///< sched_setaffinity to the node's CPUs works (first touch can place there)
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
  std::string thp;                ///< transparent huge pages: "always", "madvise", "never" or "" (none)
  std::vector<node_access> nodes;  ///< every node with memory, ascending
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
        << "  pagemap                " << yes(pagemap) << ", PFNs " << yes(pagemap_pfns) << ", PAGEMAP_SCAN "
        << yes(pagemap_scan) << "\n"
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

inline std::ostream& operator<<(std::ostream& out, const capabilities& c) { return out << c.report(); }

namespace detail {

struct published_capabilities {
  std::atomic<const capabilities*> value{nullptr};
  std::atomic<pid_t> pid{0};
};
inline published_capabilities current_capabilities;

}  // namespace detail

inline capabilities capabilities::probe() {
  capabilities c;
  const topology& machine = topology::system();
  const std::size_t page = detail::page_size();
  void* scratch = ::mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (scratch != MAP_FAILED) {
    char* written = static_cast<char*>(scratch);
    char* read_only = written + page;
    *reinterpret_cast<volatile char*>(written) = 1;
    (void)*reinterpret_cast<volatile char*>(read_only);  // maps the zero page
    void* address = written;
    int status = -1;
    c.move_pages_query = detail::sys_move_pages(0, 1, &address, nullptr, &status, 0) == 0 && status >= 0;
    const int here = status >= 0 ? status : machine.nodes().front();
    c.move_pages_move = detail::sys_move_pages(0, 1, &address, &here, &status, MPOL_MF_MOVE) == 0;
    c.mbind = detail::sys_mbind(written, page, detail::mpol_default, nullptr, 0, 0) == 0;
    int mode = 0;
    c.get_mempolicy = detail::sys_get_mempolicy(&mode, nullptr, 0, nullptr, 0) == 0;

    std::vector<std::uint64_t> entries;
    if (detail::read_pagemap(0, reinterpret_cast<std::uintptr_t>(written), 2, entries)) {
      c.pagemap = (entries[0] & detail::pagemap_bit::present) != 0;
      c.pagemap_pfns = (entries[0] & detail::pagemap_bit::pfn_mask) != 0;
      if (c.pagemap_pfns) c.zero_page_pfn = entries[1] & detail::pagemap_bit::pfn_mask;
    }
    const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      std::vector<bool> zero;
      c.pagemap_scan = detail::pagemap_scan::find_zero_pages(fd, reinterpret_cast<std::uintptr_t>(written), 2, zero) &&
                       !zero[0] && zero[1];
      ::close(fd);
    }
    char copy = 0;
    iovec local{&copy, 1};
    iovec remote{written, 1};
    c.process_vm = ::process_vm_readv(::getpid(), &local, 1, &remote, 1, 0) == 1 && copy == 1;
    ::munmap(scratch, 2 * page);
  }
  c.cap_sys_nice = detail::has_cap_sys_nice();
  c.numa_maps = !detail::read_text("/proc/self/numa_maps").empty();
  c.thp = detail::thp_mode();

  for (const int node : machine.nodes()) {
    node_access n;
    n.node = node;
    c.nodes.push_back(n);
  }
  // set_mempolicy and sched_setaffinity change the calling thread: try them on a thread of our own.
  const auto per_thread = [&c, &machine] {
    c.set_mempolicy = detail::sys_set_mempolicy(detail::mpol_default, nullptr, 0) == 0;
    for (node_access& n : c.nodes) {
      const std::vector<int>& cpus = machine.cpus_of(n.node);
      if (cpus.empty()) continue;
      cpu_set_t set;
      CPU_ZERO(&set);
      for (const int cpu : cpus)
        if (cpu >= 0 && cpu < CPU_SETSIZE) CPU_SET(static_cast<std::size_t>(cpu), &set);
      if (::sched_setaffinity(0, sizeof set, &set) != 0) continue;
      cpu_set_t granted;
      CPU_ZERO(&granted);
      if (::sched_getaffinity(0, sizeof granted, &granted) != 0) continue;
      for (const int cpu : cpus)
        if (cpu >= 0 && cpu < CPU_SETSIZE && CPU_ISSET(static_cast<std::size_t>(cpu), &granted)) n.cpus.push_back(cpu);
      n.pinnable = !n.cpus.empty();
    }
  };
  try {
    std::thread(per_thread).join();
  } catch (const std::system_error&) {
    // No thread to spare: report set_mempolicy and pinning as unavailable.
  }
  return c;
}

inline const capabilities& capabilities::refresh() {
  const capabilities* fresh = new capabilities(probe());
  detail::current_capabilities.value.store(fresh, std::memory_order_release);
  detail::current_capabilities.pid.store(::getpid(), std::memory_order_release);
  return *fresh;
}

inline const capabilities& capabilities::of_this_process() {
  const pid_t self = ::getpid();
  const capabilities* known = detail::current_capabilities.value.load(std::memory_order_acquire);
  if (known != nullptr && detail::current_capabilities.pid.load(std::memory_order_acquire) == self) return *known;
  return refresh();
}

}  // namespace numamove
