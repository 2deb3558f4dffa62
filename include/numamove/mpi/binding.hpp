// numamove/mpi/binding.hpp: where a rank runs (rank_binding), as numamove::mpi::rank_affinity()
// and the results of the placement calls report it. Reached through numamove/mpi.hpp.
#pragma once
#include "../detail/public_header_begin.hpp"

#include <vector>

namespace numamove::mpi {

/// Where one rank ran when numamove looked.
struct rank_binding {
  int rank = -1;  ///< rank in the communicator asked about
  /// rank among the ranks of its host (MPI_COMM_TYPE_SHARED); -1 when not asked
  int local_rank = -1;
  int cpu = -1;  ///< the CPU it ran on
  /// its affinity mask, ascending: what the launcher's binding (or a rebind) allows
  std::vector<int> cpus;
  int node = -1;        ///< the node for its data, as numamove::openmp::node_of_cpus() decides it
  bool pinned = false;  ///< true when the mask lies within `node` (the rank cannot drift off it)
};

}  // namespace numamove::mpi

#include "../detail/public_header_end.hpp"
