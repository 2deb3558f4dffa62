// The one translation unit that holds numamove's PMPI hooks: built into the preload library
// libnumamove_mpi_preload.so, and compiled into a program that links numamove::mpi_hooks.
#include <numamove/mpi/hooks.hpp>
