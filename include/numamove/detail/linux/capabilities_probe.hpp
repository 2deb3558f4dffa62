// The capabilities probe: what this process may do here, found with a few system calls on a
// scratch page and a short-lived thread. Linux probing only, below every backend: the struct it
// fills is the public vocabulary of capabilities.hpp, which includes this implementation.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/linux/capabilities_probe.hpp is internal: include a public numamove header"
#endif

#include <sched.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <system_error>
#include <thread>
#include <vector>

#include "../../capabilities.hpp"
#include "../../topology.hpp"
#include "pagemap.hpp"
#include "proc.hpp"
#include "sys.hpp"
#include "syscalls.hpp"

namespace numamove::detail {

/// One probe, linked to the probe made before it. Probes are never freed (a thread may still
/// read the one it was given); the link keeps every one reachable from current_capabilities,
/// so that a leak checker does not report those a refresh() or a fork()ed child's new probe
/// replaced.
struct probe_record {
  capabilities found;
  const probe_record* older;
};

/// The newest probe, the one of_this_process() returns, and the process that made it (a
/// forked child probes again).
struct published_capabilities {
  std::atomic<const probe_record*> newest{nullptr};
  std::atomic<pid_t> pid{0};
};
inline published_capabilities current_capabilities;

/// Fills c.move_pages_query, move_pages_move, mbind and get_mempolicy from calls on `written`,
/// a touched page of its own; a move targets the page's node, or the first of `machine` when
/// the query is refused.
inline void probe_numa_calls(capabilities& c, char* written, const topology& machine) {
  void* address = written;
  int status = -1;
  c.move_pages_query = sys_move_pages(0, 1, &address, nullptr, &status, 0) == 0 && status >= 0;
  const int here = status >= 0 ? status : machine.nodes().front();
  c.move_pages_move = sys_move_pages(0, 1, &address, &here, &status, MPOL_MF_MOVE) == 0;
  c.mbind = sys_mbind(written, page_size(), mpol_default, nullptr, 0, 0) == 0;
  int mode = 0;
  c.get_mempolicy = sys_get_mempolicy(&mode, nullptr, 0, nullptr, 0) == 0;
}

/// Fills c.pagemap, pagemap_pfns, zero_page_pfn and pagemap_scan from the pagemap entries of
/// `written` (a touched page) and the page after it (read only: the zero page).
inline void probe_pagemap(capabilities& c, const char* written) {
  const auto first = reinterpret_cast<std::uintptr_t>(written);
  const pagemap_file pagemap = pagemap_file::of(0);
  std::uint64_t entries[2] = {};
  if (pagemap.read_entries(first, 2, entries) == 0) {
    c.pagemap = (entries[0] & pagemap_bit::present) != 0;
    c.pagemap_pfns = (entries[0] & pagemap_bit::pfn_mask) != 0;
    if (c.pagemap_pfns) c.zero_page_pfn = entries[1] & pagemap_bit::pfn_mask;
  }
  std::vector<bool> zero;
  c.pagemap_scan = pagemap.mark_zero_pages(first, 2, zero) == 0 && !zero[0] && zero[1];
}

/// Fills the findings that need a scratch page of two: one written, one only read (the zero
/// page). Leaves them false when the page cannot be mapped.
inline void probe_scratch_page(capabilities& c, const topology& machine) {
  const std::size_t page = page_size();
  void* scratch =
      ::mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (scratch == MAP_FAILED) return;
  char* written = static_cast<char*>(scratch);
  *reinterpret_cast<volatile char*>(written) = 1;
  (void)*reinterpret_cast<volatile char*>(written + page);  // maps the zero page
  probe_numa_calls(c, written, machine);
  probe_pagemap(c, written);
  char copy = 0;
  iovec local{&copy, 1};
  iovec remote{written, 1};
  c.process_vm = ::process_vm_readv(::getpid(), &local, 1, &remote, 1, 0) == 1 && copy == 1;
  ::munmap(scratch, 2 * page);
}

/// The CPUs of `cpus` that the calling thread may be pinned to, found by pinning it there
/// (which changes its affinity); empty when it cannot be pinned.
inline std::vector<int> pinnable_cpus(const std::vector<int>& cpus) {
  std::vector<int> granted_cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (const int cpu : cpus)
    if (cpu >= 0 && cpu < CPU_SETSIZE) CPU_SET(static_cast<std::size_t>(cpu), &set);
  if (::sched_setaffinity(0, sizeof set, &set) != 0) return granted_cpus;
  cpu_set_t granted;
  CPU_ZERO(&granted);
  if (::sched_getaffinity(0, sizeof granted, &granted) != 0) return granted_cpus;
  for (const int cpu : cpus)
    if (cpu >= 0 && cpu < CPU_SETSIZE && CPU_ISSET(static_cast<std::size_t>(cpu), &granted))
      granted_cpus.push_back(cpu);
  return granted_cpus;
}

/// Fills c.set_mempolicy and each node's cpus and pinnable. set_mempolicy and
/// sched_setaffinity change the calling thread, so they are tried on a thread of our own; with
/// no thread to spare they are reported unavailable.
inline void probe_thread_settings(capabilities& c, const topology& machine) {
  const auto per_thread = [&c, &machine] {
    c.set_mempolicy = sys_set_mempolicy(mpol_default, nullptr, 0) == 0;
    for (capabilities::node_access& n : c.nodes) {
      const std::vector<int>& cpus = machine.cpus_of(n.node);
      if (cpus.empty()) continue;
      n.cpus = pinnable_cpus(cpus);
      n.pinnable = !n.cpus.empty();
    }
  };
  try {
    std::thread(per_thread).join();
  } catch (const std::system_error&) {
    // No thread to spare: set_mempolicy and pinning stay unavailable.
  }
}

}  // namespace numamove::detail

namespace numamove {

inline capabilities capabilities::probe() {
  capabilities c;
  const topology& machine = topology::system();
  detail::probe_scratch_page(c, machine);
  c.cap_sys_nice = detail::has_cap_sys_nice();
  c.numa_maps = !detail::read_proc(0, "numa_maps").empty();
  c.thp = detail::thp_mode();
  for (const int node : machine.nodes()) {
    node_access n;
    n.node = node;
    c.nodes.push_back(n);
  }
  detail::probe_thread_settings(c, machine);
  return c;
}

inline const capabilities& capabilities::refresh() {
  detail::published_capabilities& published = detail::current_capabilities;
  auto* record =
      new detail::probe_record{probe(), published.newest.load(std::memory_order_acquire)};
  while (!published.newest.compare_exchange_weak(record->older, record, std::memory_order_acq_rel,
                                                 std::memory_order_acquire)) {
  }
  published.pid.store(::getpid(), std::memory_order_release);
  return record->found;
}

inline const capabilities& capabilities::of_this_process() {
  const pid_t self = ::getpid();
  const detail::published_capabilities& published = detail::current_capabilities;
  const detail::probe_record* known = published.newest.load(std::memory_order_acquire);
  if (known != nullptr && published.pid.load(std::memory_order_acquire) == self)
    return known->found;
  return refresh();
}

}  // namespace numamove
