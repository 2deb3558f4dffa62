# Install rules: headers, the exported target, a Config and version file, numamove.pc.
include(CMakePackageConfigHelpers)

set(numamove_cmake_dir "${CMAKE_INSTALL_DATADIR}/cmake/numamove")

install(DIRECTORY include/numamove DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(TARGETS numamove EXPORT numamoveTargets)
install(EXPORT numamoveTargets NAMESPACE numamove:: DESTINATION "${numamove_cmake_dir}")
# numamove::openmp, where it was defined, in an export set of its own: the Config loads it only
# where the consumer has OpenMP too.
if(TARGET numamove_openmp)
  install(TARGETS numamove_openmp EXPORT numamoveOpenMPTargets)
  install(EXPORT numamoveOpenMPTargets NAMESPACE numamove:: DESTINATION "${numamove_cmake_dir}")
endif()
# numamove::mpi, numamove::mpi_hooks (with the source it compiles into a program) and
# numamove::mpi_preload, where MPI was found, in an export set of their own: the Config loads
# it only where the consumer finds MPI too.
if(TARGET numamove_mpi)
  install(TARGETS numamove_mpi numamove_mpi_hooks numamove_mpi_preload EXPORT numamoveMPITargets)
  install(FILES src/mpi_hooks/hooks.cpp DESTINATION "${CMAKE_INSTALL_DATADIR}/numamove" RENAME mpi_hooks.cpp)
  install(EXPORT numamoveMPITargets NAMESPACE numamove:: DESTINATION "${numamove_cmake_dir}")
endif()

# numamove::kokkos, where Kokkos was found, likewise; the Config finds Kokkos with the same
# numamoveKokkos.cmake when a consumer asks for the component.
if(TARGET numamove_kokkos)
  install(TARGETS numamove_kokkos EXPORT numamoveKokkosTargets)
  install(EXPORT numamoveKokkosTargets NAMESPACE numamove:: DESTINATION "${numamove_cmake_dir}")
  install(FILES cmake/numamoveKokkos.cmake DESTINATION "${numamove_cmake_dir}")
endif()

configure_package_config_file(cmake/numamoveConfig.cmake.in
  "${PROJECT_BINARY_DIR}/numamoveConfig.cmake" INSTALL_DESTINATION "${numamove_cmake_dir}")
# Header-only and architecture-independent: any 32/64-bit consumer may use it.
write_basic_package_version_file("${PROJECT_BINARY_DIR}/numamoveConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES
  "${PROJECT_BINARY_DIR}/numamoveConfig.cmake"
  "${PROJECT_BINARY_DIR}/numamoveConfigVersion.cmake"
  cmake/numamoveDependencies.cmake
  DESTINATION "${numamove_cmake_dir}")

configure_file(cmake/numamove.pc.in "${PROJECT_BINARY_DIR}/numamove.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/numamove.pc" DESTINATION "${CMAKE_INSTALL_DATADIR}/pkgconfig")
