// A user's MPI program: place each rank's memory on its node, then print where an array lives.
#include <cstdio>
#include <numamove/mpi.hpp>
#include <numamove/numamove.hpp>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  const numamove::mpi::rank_placement placed = numamove::mpi::place_rank();
  numamove::vector<double> field(1 << 16, 1.0);
  const numamove::mpi::locality_table table =
      numamove::mpi::gather_locality(field.data(), field.size());
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) std::printf("%s", table.to_string().c_str());
  const int failed = placed.error ? 1 : 0;
  MPI_Finalize();
  return failed;
}
