// The locality report behind numamove::mpi::gather_locality(): each rank's binding and bytes
// per node, gathered at one rank.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/mpi/locality.hpp is internal: include a public numamove header"
#endif

#include <mpi.h>

#include <cstddef>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "../../mpi/binding.hpp"
#include "../../mpi/locality.hpp"
#include "../../topology.hpp"
#include "affinity.hpp"
#include "errors.hpp"

namespace numamove::detail::mpi {

/// Gathers at `root` each rank's binding and bytes per node. Collective over `comm`. Throws
/// std::system_error in the MPI category.
inline numamove::mpi::locality_table gather_locality_of(const std::map<int, std::size_t>& bytes_on,
                                                        MPI_Comm comm, int root,
                                                        const topology& machine) {
  int rank = 0;
  int size = 0;
  check(MPI_Comm_rank(comm, &rank), "numamove::mpi: MPI_Comm_rank");
  check(MPI_Comm_size(comm, &size), "numamove::mpi: MPI_Comm_size");
  const std::vector<numamove::mpi::rank_binding> host_ranks = gather_host_bindings(comm, machine);
  numamove::mpi::rank_binding mine;
  for (const numamove::mpi::rank_binding& b : host_ranks)
    if (b.rank == rank) mine = b;
  char name[MPI_MAX_PROCESSOR_NAME] = {};
  int name_length = 0;
  check(MPI_Get_processor_name(name, &name_length), "numamove::mpi: MPI_Get_processor_name");
  // One message of long longs per rank: local rank, cpu, node, pinned, #cpus, #nodes, the cpus,
  // (node, bytes) pairs, then the host name's characters.
  std::vector<long long> message = {mine.local_rank,
                                    mine.cpu,
                                    mine.node,
                                    mine.pinned ? 1 : 0,
                                    static_cast<long long>(mine.cpus.size()),
                                    static_cast<long long>(bytes_on.size())};
  for (const int c : mine.cpus) message.push_back(c);
  for (const auto& [node, bytes] : bytes_on) {
    message.push_back(node);
    message.push_back(static_cast<long long>(bytes));
  }
  for (int i = 0; i < name_length; ++i) message.push_back(name[i]);
  const int length = static_cast<int>(message.size());
  std::vector<int> lengths(static_cast<std::size_t>(size));
  check(MPI_Gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, root, comm),
        "numamove::mpi: MPI_Gather");
  std::vector<int> offsets(static_cast<std::size_t>(size));
  int total = 0;
  for (std::size_t r = 0; r < lengths.size(); ++r) {
    offsets[r] = total;
    total += lengths[r];
  }
  std::vector<long long> all(rank == root ? static_cast<std::size_t>(total) : 0);
  check(MPI_Gatherv(message.data(), length, MPI_LONG_LONG, all.data(), lengths.data(),
                    offsets.data(), MPI_LONG_LONG, root, comm),
        "numamove::mpi: MPI_Gatherv");
  numamove::mpi::locality_table table;
  if (rank != root) return table;
  for (int r = 0; r < size; ++r) {
    const long long* m = all.data() + offsets[static_cast<std::size_t>(r)];
    const long long* stop = m + lengths[static_cast<std::size_t>(r)];
    numamove::mpi::rank_locality line;
    line.binding.rank = r;
    line.binding.local_rank = static_cast<int>(m[0]);
    line.binding.cpu = static_cast<int>(m[1]);
    line.binding.node = static_cast<int>(m[2]);
    line.binding.pinned = m[3] != 0;
    const long long cpus = m[4];
    const long long nodes = m[5];
    m += 6;
    for (long long i = 0; i < cpus; ++i) line.binding.cpus.push_back(static_cast<int>(*m++));
    for (long long i = 0; i < nodes; ++i, m += 2) {
      const auto bytes = static_cast<std::size_t>(m[1]);
      line.bytes_on[static_cast<int>(m[0])] = bytes;
      line.bytes += bytes;
      if (m[0] == line.binding.node) line.local_bytes += bytes;
    }
    while (m < stop) line.host += static_cast<char>(*m++);
    table.ranks.push_back(std::move(line));
  }
  return table;
}

}  // namespace numamove::detail::mpi
