// The MPI tests' runner. Two roles in one binary:
//   numamove_mpi_tests [catch2 args]           the driver: the [jobs] cases start real MPI jobs
//                                              with mpirun (this binary with --ranks, the test
//                                              apps, the hooks) and check what the ranks report
//   numamove_mpi_tests --ranks [catch2 args]   one rank of such a job: MPI_Init, the cases,
//                                              MPI_Finalize (mpirun fails the job when a rank
//                                              fails)
#include <mpi.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <numamove/mpi.hpp>

#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
#else
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#endif

int main(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  const bool rank_role = args.size() > 1 && std::strcmp(args[1], "--ranks") == 0;
  if (!rank_role) return Catch::Session().run(argc, argv);
  args.erase(args.begin() + 1);
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  const int failed = Catch::Session().run(static_cast<int>(args.size()), args.data());
  MPI_Finalize();
  // After MPI_Finalize every call refuses to run.
  try {
    numamove::mpi::rank_affinity();
    std::fprintf(
        stderr,
        "numamove-test: rank_affinity() after MPI_Finalize did not throw std::logic_error\n");
    return 1;
  } catch (const std::logic_error&) {
  }
  return failed;
}
