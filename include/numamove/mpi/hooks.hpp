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

#include <dlfcn.h>
#include <mpi.h>

#include "../detail/mpi/hook_actions.hpp"

namespace numamove::detail::mpi::hooks {

/// The next definition of a Fortran binding's symbol (the MPI library's), or nullptr.
template <class Function>
Function next_definition(const char* symbol) noexcept {
  return reinterpret_cast<Function>(::dlsym(RTLD_NEXT, symbol));
}

/// Whether a Fortran call succeeded: mpi_f08's ierror is optional, so `ierr` may be null.
inline bool succeeded(const MPI_Fint* ierr) noexcept {
  if (ierr != nullptr) return *ierr == MPI_SUCCESS;
  int initialized = 0;
  MPI_Initialized(&initialized);
  return initialized != 0;
}

using fortran_init = void (*)(MPI_Fint*);
using fortran_init_thread = void (*)(MPI_Fint*, MPI_Fint*, MPI_Fint*);
using fortran_finalize = void (*)(MPI_Fint*);
using fortran_win_allocate_shared = void (*)(MPI_Aint*, MPI_Fint*, MPI_Fint*, MPI_Fint*, void*, MPI_Fint*, MPI_Fint*);

inline void fortran_init_hook(const char* symbol, MPI_Fint* ierr) {
  static std::atomic<fortran_init> next{nullptr};
  if (next.load() == nullptr) next = next_definition<fortran_init>(symbol);
  if (const fortran_init f = next.load()) f(ierr);
  else if (const int rc = PMPI_Init(nullptr, nullptr); ierr != nullptr) *ierr = static_cast<MPI_Fint>(rc);
  if (succeeded(ierr)) after_init();
}

inline void fortran_init_thread_hook(const char* symbol, MPI_Fint* required, MPI_Fint* provided, MPI_Fint* ierr) {
  static std::atomic<fortran_init_thread> next{nullptr};
  if (next.load() == nullptr) next = next_definition<fortran_init_thread>(symbol);
  if (const fortran_init_thread f = next.load()) {
    f(required, provided, ierr);
  } else {
    int c_provided = 0;
    const int rc = PMPI_Init_thread(nullptr, nullptr, static_cast<int>(*required), &c_provided);
    *provided = static_cast<MPI_Fint>(c_provided);
    if (ierr != nullptr) *ierr = static_cast<MPI_Fint>(rc);
  }
  if (succeeded(ierr)) after_init();
}

inline void fortran_finalize_hook(const char* symbol, MPI_Fint* ierr) {
  static std::atomic<fortran_finalize> next{nullptr};
  if (next.load() == nullptr) next = next_definition<fortran_finalize>(symbol);
  before_finalize();
  if (const fortran_finalize f = next.load()) f(ierr);
  else if (const int rc = PMPI_Finalize(); ierr != nullptr) *ierr = static_cast<MPI_Fint>(rc);
}

inline void fortran_win_allocate_shared_hook(const char* symbol, MPI_Aint* size, MPI_Fint* disp_unit, MPI_Fint* info,
                                             MPI_Fint* comm, void* baseptr, MPI_Fint* win, MPI_Fint* ierr) {
  static std::atomic<fortran_win_allocate_shared> next{nullptr};
  if (next.load() == nullptr) next = next_definition<fortran_win_allocate_shared>(symbol);
  if (const fortran_win_allocate_shared f = next.load()) {
    f(size, disp_unit, info, comm, baseptr, win, ierr);
  } else {
    MPI_Win c_win = MPI_WIN_NULL;
    const int rc = PMPI_Win_allocate_shared(*size, static_cast<int>(*disp_unit), MPI_Info_f2c(*info),
                                            MPI_Comm_f2c(*comm), baseptr, &c_win);
    *win = MPI_Win_c2f(c_win);
    if (ierr != nullptr) *ierr = static_cast<MPI_Fint>(rc);
    if (rc != MPI_SUCCESS) return;
  }
  if (ierr == nullptr || *ierr == MPI_SUCCESS) after_window(MPI_Win_f2c(*win), MPI_Info_f2c(*info));
}

}  // namespace numamove::detail::mpi::hooks

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

int MPI_Win_allocate_shared(MPI_Aint size, int disp_unit, MPI_Info info, MPI_Comm comm, void* baseptr, MPI_Win* win) {
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
#define NUMAMOVE_MPI_FORTRAN_HOOKS(init, init_thread, finalize, win_allocate_shared)                      \
  void init(MPI_Fint* ierr) { numamove::detail::mpi::hooks::fortran_init_hook(#init, ierr); }            \
  void init_thread(MPI_Fint* required, MPI_Fint* provided, MPI_Fint* ierr) {                             \
    numamove::detail::mpi::hooks::fortran_init_thread_hook(#init_thread, required, provided, ierr);      \
  }                                                                                                      \
  void finalize(MPI_Fint* ierr) { numamove::detail::mpi::hooks::fortran_finalize_hook(#finalize, ierr); } \
  void win_allocate_shared(MPI_Aint* size, MPI_Fint* disp_unit, MPI_Fint* info, MPI_Fint* comm, void* baseptr, \
                           MPI_Fint* win, MPI_Fint* ierr) {                                              \
    numamove::detail::mpi::hooks::fortran_win_allocate_shared_hook(#win_allocate_shared, size, disp_unit, info, \
                                                                   comm, baseptr, win, ierr);            \
  }

NUMAMOVE_MPI_FORTRAN_HOOKS(mpi_init_, mpi_init_thread_, mpi_finalize_, mpi_win_allocate_shared_)
NUMAMOVE_MPI_FORTRAN_HOOKS(mpi_init__, mpi_init_thread__, mpi_finalize__, mpi_win_allocate_shared__)
NUMAMOVE_MPI_FORTRAN_HOOKS(mpi_init, mpi_init_thread, mpi_finalize, mpi_win_allocate_shared)
NUMAMOVE_MPI_FORTRAN_HOOKS(MPI_INIT, MPI_INIT_THREAD, MPI_FINALIZE, MPI_WIN_ALLOCATE_SHARED)
NUMAMOVE_MPI_FORTRAN_HOOKS(mpi_init_f08_, mpi_init_thread_f08_, mpi_finalize_f08_, mpi_win_allocate_shared_f08_)
#undef NUMAMOVE_MPI_FORTRAN_HOOKS

}  // extern "C"
