// numamove/mpi/hooks.hpp: numamove's placement policy for an MPI program that does not call
// numamove, through the MPI profiling interface. Include it in exactly ONE translation unit of
// the program (or link numamove::mpi_hooks, which compiles one for you), or preload the library
// the project builds from it: mpirun -x LD_PRELOAD=.../libnumamove_mpi_preload.so ./app
//
// It defines MPI_Init, MPI_Init_thread, MPI_Win_allocate_shared and MPI_Finalize (calling
// PMPI_*), and the Fortran bindings' mpi_init_ and friends (which call PMPI directly in Open MPI,
// bypassing the C wrappers; these hooks call the next definition of the same symbol, the MPI
// library's). The policy comes from the environment (docs/mpi.md has the table):
//
//   NUMAMOVE_MPI_POLICY   local (default) | none | spread | interleave   at MPI_Init
//   NUMAMOVE_MPI_MODE     bind (default) | preferred
//   NUMAMOVE_MPI_PIN      no (default) | yes       spread: pin unbound ranks to their node
//   NUMAMOVE_MPI_WINDOWS  place (default) | none   each rank's segment of a shared window
//   NUMAMOVE_MPI_REPORT   none (default) | stderr | stdout | FILE   locality table at MPI_Finalize
//   NUMAMOVE_MPI_VERBOSE  0 (default) | 1           one line per rank at MPI_Init
//
// and, per window, the MPI_Info key "numamove_window" = place | none. A bad value prints one
// message (rank 0) and the hooks then do nothing. A hook never changes an MPI return code and
// never aborts: what it could not do is printed to stderr once and listed in the report.
#pragma once
#include "../detail/public_header_begin.hpp"

#include <mpi.h>

#include "../detail/mpi/fortran_hooks.hpp"
#include "../detail/mpi/hook_actions.hpp"

extern "C" {

int MPI_Init(int* argc, char*** argv) {
  const int rc = PMPI_Init(argc, argv);
  if (rc == MPI_SUCCESS) numamove::detail::mpi::hooks::after_init();
  return rc;
}

int MPI_Init_thread(int* argc, char*** argv, int required, int* provided) {
  const int rc = PMPI_Init_thread(argc, argv, required, provided);
  if (rc == MPI_SUCCESS) numamove::detail::mpi::hooks::after_init();
  return rc;
}

int MPI_Win_allocate_shared(MPI_Aint size, int disp_unit, MPI_Info info, MPI_Comm comm,
                            void* baseptr, MPI_Win* win) {
  const int rc = PMPI_Win_allocate_shared(size, disp_unit, info, comm, baseptr, win);
  if (rc == MPI_SUCCESS) numamove::detail::mpi::hooks::after_window(*win, info);
  return rc;
}

int MPI_Finalize(void) {
  numamove::detail::mpi::hooks::before_finalize();
  return PMPI_Finalize();
}

// The Fortran bindings, under the names gfortran and other compilers give them (lower case with
// one, two or no trailing underscore, upper case), and Open MPI's mpi_f08 module names.
#define NUMAMOVE_MPI_FORTRAN_HOOKS(init, init_thread, finalize, win_allocate_shared)            \
  void init(MPI_Fint* ierr) {                                                                   \
    numamove::detail::mpi::hooks::fortran_init_hook(#init, ierr);                               \
  }                                                                                             \
  void init_thread(MPI_Fint* required, MPI_Fint* provided, MPI_Fint* ierr) {                    \
    numamove::detail::mpi::hooks::fortran_init_thread_hook(#init_thread, required, provided,    \
                                                           ierr);                               \
  }                                                                                             \
  void finalize(MPI_Fint* ierr) {                                                               \
    numamove::detail::mpi::hooks::fortran_finalize_hook(#finalize, ierr);                       \
  }                                                                                             \
  void win_allocate_shared(MPI_Aint* size, MPI_Fint* disp_unit, MPI_Fint* info, MPI_Fint* comm, \
                           void* baseptr, MPI_Fint* win, MPI_Fint* ierr) {                      \
    numamove::detail::mpi::hooks::fortran_win_allocate_shared_hook(                             \
        #win_allocate_shared, size, disp_unit, info, comm, baseptr, win, ierr);                 \
  }

NUMAMOVE_MPI_FORTRAN_HOOKS(mpi_init_, mpi_init_thread_, mpi_finalize_, mpi_win_allocate_shared_)
NUMAMOVE_MPI_FORTRAN_HOOKS(mpi_init__, mpi_init_thread__, mpi_finalize__, mpi_win_allocate_shared__)
NUMAMOVE_MPI_FORTRAN_HOOKS(mpi_init, mpi_init_thread, mpi_finalize, mpi_win_allocate_shared)
NUMAMOVE_MPI_FORTRAN_HOOKS(MPI_INIT, MPI_INIT_THREAD, MPI_FINALIZE, MPI_WIN_ALLOCATE_SHARED)
NUMAMOVE_MPI_FORTRAN_HOOKS(mpi_init_f08_, mpi_init_thread_f08_, mpi_finalize_f08_,
                           mpi_win_allocate_shared_f08_)
#undef NUMAMOVE_MPI_FORTRAN_HOOKS

}  // extern "C"

#include "../detail/public_header_end.hpp"
