// The Fortran bindings' hooks of numamove/mpi/hooks.hpp: each calls the next definition of its
// symbol (the MPI library's, which calls PMPI directly in Open MPI), or the C PMPI function where
// there is none, then acts as the C hook does.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/mpi/fortran_hooks.hpp is internal: include a public numamove header"
#endif

#include <dlfcn.h>
#include <mpi.h>

#include <atomic>

#include "hook_actions.hpp"

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
using fortran_win_allocate_shared = void (*)(MPI_Aint*, MPI_Fint*, MPI_Fint*, MPI_Fint*, void*,
                                             MPI_Fint*, MPI_Fint*);

inline void fortran_init_hook(const char* symbol, MPI_Fint* ierr) {
  static std::atomic<fortran_init> next{nullptr};
  if (next.load() == nullptr) next = next_definition<fortran_init>(symbol);
  if (const fortran_init f = next.load())
    f(ierr);
  else if (const int rc = PMPI_Init(nullptr, nullptr); ierr != nullptr)
    *ierr = static_cast<MPI_Fint>(rc);
  if (succeeded(ierr)) after_init();
}

inline void fortran_init_thread_hook(const char* symbol, MPI_Fint* required, MPI_Fint* provided,
                                     MPI_Fint* ierr) {
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
  if (const fortran_finalize f = next.load())
    f(ierr);
  else if (const int rc = PMPI_Finalize(); ierr != nullptr)
    *ierr = static_cast<MPI_Fint>(rc);
}

inline void fortran_win_allocate_shared_hook(const char* symbol, MPI_Aint* size,
                                             MPI_Fint* disp_unit, MPI_Fint* info, MPI_Fint* comm,
                                             void* baseptr, MPI_Fint* win, MPI_Fint* ierr) {
  static std::atomic<fortran_win_allocate_shared> next{nullptr};
  if (next.load() == nullptr) next = next_definition<fortran_win_allocate_shared>(symbol);
  if (const fortran_win_allocate_shared f = next.load()) {
    f(size, disp_unit, info, comm, baseptr, win, ierr);
  } else {
    MPI_Win c_win = MPI_WIN_NULL;
    const int rc =
        PMPI_Win_allocate_shared(*size, static_cast<int>(*disp_unit), MPI_Info_f2c(*info),
                                 MPI_Comm_f2c(*comm), baseptr, &c_win);
    *win = MPI_Win_c2f(c_win);
    if (ierr != nullptr) *ierr = static_cast<MPI_Fint>(rc);
    if (rc != MPI_SUCCESS) return;
  }
  if (ierr == nullptr || *ierr == MPI_SUCCESS) after_window(MPI_Win_f2c(*win), MPI_Info_f2c(*info));
}

}  // namespace numamove::detail::mpi::hooks
