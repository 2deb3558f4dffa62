// Where a rank runs, behind numamove::mpi::rank_binding: the calling thread's binding by the
// OpenMP layer's node rule (numamove::openmp::node_of_cpus), the bindings of the ranks of one
// host, and rebinding every thread of the process.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/mpi/affinity.hpp is internal: include a public numamove header"
#endif

#include <mpi.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <system_error>
#include <vector>

#include "../../mpi/binding.hpp"
#include "../../openmp/schedule.hpp"
#include "../../topology.hpp"
#include "../linux/proc.hpp"
#include "../linux/sys.hpp"
#include "../linux/syscalls.hpp"
#include "errors.hpp"

namespace numamove::detail::mpi {

/// The binding of the calling thread, by the OpenMP layer's node rule.
inline numamove::mpi::rank_binding current_binding(const topology& machine) {
  numamove::mpi::rank_binding b;
  b.cpus = affinity_of(0);
  b.cpu = ::sched_getcpu();
  b.node = numamove::openmp::node_of_cpus(machine, b.cpus, b.cpu);
  b.pinned = b.node >= 0 && !b.cpus.empty();
  for (const int c : b.cpus) b.pinned = b.pinned && machine.node_of_cpu(c) == b.node;
  return b;
}

/// The errno for a rank whose CPU `cpu` is on no node of the topology: EACCES when the kernel
/// puts the CPU on a node with memory that the process's cpuset leaves out (hwloc shows only
/// the allowed nodes), ENODEV when its node has no memory.
inline int unreachable_node_error(int cpu) {
  const int node = node_of_cpu(cpu);
  const std::vector<int> with_memory = nodes_with_memory();
  const bool has_memory =
      std::find(with_memory.begin(), with_memory.end(), node) != with_memory.end();
  return node >= 0 && has_memory ? EACCES : ENODEV;
}

/// Sets the affinity of every thread of the process to `cpus`. Returns 0 or the errno of the
/// first sched_setaffinity(2) that failed (EINVAL: no CPU of the set is allowed).
inline int set_process_affinity(const std::vector<int>& cpus) {
  int highest = 0;
  for (const int c : cpus) highest = c > highest ? c : highest;
  const auto size = static_cast<unsigned>(highest + 1);
  cpu_set_t* set = CPU_ALLOC(size);
  if (set == nullptr) return ENOMEM;
  const std::size_t bytes = CPU_ALLOC_SIZE(size);
  CPU_ZERO_S(bytes, set);
  for (const int c : cpus)
    if (c >= 0) CPU_SET_S(static_cast<unsigned>(c), bytes, set);
  int error = 0;
  for (const pid_t tid : thread_ids())
    if (::sched_setaffinity(tid, bytes, set) != 0 && errno != ESRCH && error == 0) error = errno;
  CPU_FREE(set);
  return error;
}

/// The ranks of `comm` that share this host (MPI_COMM_TYPE_SHARED), one binding each, by local
/// rank. Collective over `comm`. Throws std::system_error in the MPI category.
inline std::vector<numamove::mpi::rank_binding> gather_host_bindings(MPI_Comm comm,
                                                                     const topology& machine) {
  int rank = 0;
  check(MPI_Comm_rank(comm, &rank), "numamove::mpi: MPI_Comm_rank");
  MPI_Comm host = MPI_COMM_NULL;
  check(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &host),
        "numamove::mpi: MPI_Comm_split_type");
  struct release {
    MPI_Comm* c;
    ~release() { MPI_Comm_free(c); }
  } guard{&host};
  int size = 0;
  check(MPI_Comm_size(host, &size), "numamove::mpi: MPI_Comm_size");
  const numamove::mpi::rank_binding mine = current_binding(machine);
  const int fixed[4] = {rank, mine.cpu, mine.node, static_cast<int>(mine.cpus.size())};
  std::vector<int> all(static_cast<std::size_t>(size) * 4);
  check(MPI_Allgather(fixed, 4, MPI_INT, all.data(), 4, MPI_INT, host),
        "numamove::mpi: MPI_Allgather");
  std::vector<int> counts(static_cast<std::size_t>(size));
  std::vector<int> offsets(static_cast<std::size_t>(size));
  int total = 0;
  for (std::size_t r = 0; r < counts.size(); ++r) {
    counts[r] = all[r * 4 + 3];
    offsets[r] = total;
    total += counts[r];
  }
  std::vector<int> cpus(static_cast<std::size_t>(total));
  check(MPI_Allgatherv(mine.cpus.data(), fixed[3], MPI_INT, cpus.data(), counts.data(),
                       offsets.data(), MPI_INT, host),
        "numamove::mpi: MPI_Allgatherv");
  std::vector<numamove::mpi::rank_binding> bindings(static_cast<std::size_t>(size));
  for (std::size_t r = 0; r < bindings.size(); ++r) {
    numamove::mpi::rank_binding& b = bindings[r];
    b.rank = all[r * 4];
    b.local_rank = static_cast<int>(r);
    b.cpu = all[r * 4 + 1];
    b.node = all[r * 4 + 2];
    b.cpus.assign(cpus.begin() + offsets[r], cpus.begin() + offsets[r] + counts[r]);
    b.pinned = b.node >= 0 && !b.cpus.empty();
    for (const int c : b.cpus) b.pinned = b.pinned && machine.node_of_cpu(c) == b.node;
  }
  return bindings;
}

}  // namespace numamove::detail::mpi
