// Runs a program under the Docker-like seccomp filter of tests/support/seccomp_filter.hpp
// (move_pages and migrate_pages refused; the mempolicy calls refused without CAP_SYS_NICE), as
// each rank of a job in a container would: mpirun ... mpi_seccomp_exec ./app
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "support/seccomp_filter.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s PROGRAM [ARGS...]\n", argv[0]);
    return 2;
  }
  if (const int error =
          numamove_test::install_numa_filter(numamove_test::numa_filter::docker_default)) {
    std::fprintf(stderr, "mpi_seccomp_exec: cannot install the filter: %s\n", std::strerror(error));
    return 126;
  }
  ::execvp(argv[1], argv + 1);
  std::fprintf(stderr, "mpi_seccomp_exec: exec %s: %s\n", argv[1], std::strerror(errno));
  return 127;
}
