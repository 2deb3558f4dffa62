# numamove::mpi (numamove/mpi.hpp) and the PMPI hooks, defined where CMake finds MPI with the
# CXX component (the project enables no C; only MPI's C API is used, so MPI_CXX_SKIP_MPICXX):
#   numamove::mpi          the header's target: numamove::numamove + MPI::MPI_CXX
#   numamove::mpi_hooks    compiles the hooks (numamove/mpi/hooks.hpp) into the program that links it
#   numamove::mpi_preload  the hooks as a shared library, libnumamove_mpi_preload.so, for
#                          mpirun -x LD_PRELOAD=... with an unmodified program
# Sets numamove_mpi_why when MPI is missing.
set(MPI_CXX_SKIP_MPICXX ON)
find_package(MPI COMPONENTS CXX)
if(NOT MPI_CXX_FOUND)
  set(numamove_mpi_why "no MPI found (Debian: libopenmpi-dev openmpi-bin)")
  return()
endif()
# Global, as OpenMP's target, so that a parent project adding numamove as a subdirectory links it.
get_target_property(numamove_mpi_dir MPI::MPI_CXX SOURCE_DIR)
if(numamove_mpi_dir STREQUAL CMAKE_CURRENT_SOURCE_DIR)
  set_target_properties(MPI::MPI_CXX PROPERTIES IMPORTED_GLOBAL TRUE)
endif()

add_library(numamove_mpi INTERFACE)
add_library(numamove::mpi ALIAS numamove_mpi)
set_target_properties(numamove_mpi PROPERTIES EXPORT_NAME mpi)
target_link_libraries(numamove_mpi INTERFACE numamove::numamove MPI::MPI_CXX)

set(numamove_mpi_hooks_source "${CMAKE_CURRENT_SOURCE_DIR}/src/mpi_hooks/hooks.cpp")
add_library(numamove_mpi_hooks INTERFACE)
add_library(numamove::mpi_hooks ALIAS numamove_mpi_hooks)
set_target_properties(numamove_mpi_hooks PROPERTIES EXPORT_NAME mpi_hooks)
target_sources(numamove_mpi_hooks INTERFACE
  $<BUILD_INTERFACE:${numamove_mpi_hooks_source}>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_DATADIR}/numamove/mpi_hooks.cpp>)
target_link_libraries(numamove_mpi_hooks INTERFACE numamove_mpi ${CMAKE_DL_LIBS})

add_library(numamove_mpi_preload SHARED "${numamove_mpi_hooks_source}")
add_library(numamove::mpi_preload ALIAS numamove_mpi_preload)
set_target_properties(numamove_mpi_preload PROPERTIES EXPORT_NAME mpi_preload)
target_link_libraries(numamove_mpi_preload PRIVATE numamove_mpi ${CMAKE_DL_LIBS})
if(numamove_is_top_level)
  target_compile_options(numamove_mpi_preload PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Werror)
endif()
