# Kokkos for numamove::kokkos, found the same way in the build tree and by an installed
# numamoveConfig.cmake: any Kokkos >= 3.4 that find_package(Kokkos) finds (Kokkos_ROOT or
# CMAKE_PREFIX_PATH choose one), quietly. Sets numamove_kokkos_usable and, when it is not,
# numamove_kokkos_why.
#
# Kokkos' version file accepts only its own major version, so no version is asked for here;
# the check is below. Debian 12's Kokkos 3.4.1 (libtrilinos-kokkos-dev) exports Kokkos::kokkos
# with the include folder /usr/lib/include, which does not exist (CMake then refuses to
# generate): the folder its config names in Kokkos_INCLUDE_DIRS replaces it.
set(numamove_kokkos_usable FALSE)
set(numamove_kokkos_why "")
if(NOT TARGET Kokkos::kokkos)
  # Kokkos 3's config warns, then turns CMAKE_CXX_EXTENSIONS off itself when it is unset.
  if(NOT DEFINED CMAKE_CXX_EXTENSIONS)
    set(CMAKE_CXX_EXTENSIONS OFF)
  endif()
  find_package(Kokkos QUIET)
endif()
if(NOT TARGET Kokkos::kokkos)
  set(numamove_kokkos_why "no Kokkos found (set Kokkos_ROOT or CMAKE_PREFIX_PATH; Debian: libtrilinos-kokkos-dev)")
elseif(DEFINED Kokkos_VERSION AND Kokkos_VERSION VERSION_LESS 3.4)
  set(numamove_kokkos_why "Kokkos ${Kokkos_VERSION} is older than 3.4")
else()
  set(numamove_kokkos_usable TRUE)
  get_target_property(numamove_kokkos_includes Kokkos::kokkos INTERFACE_INCLUDE_DIRECTORIES)
  set(numamove_kokkos_repaired "")
  foreach(dir IN LISTS numamove_kokkos_includes)
    if(dir MATCHES "^\\$<" OR EXISTS "${dir}")
      list(APPEND numamove_kokkos_repaired "${dir}")
    endif()
  endforeach()
  if(NOT numamove_kokkos_repaired STREQUAL numamove_kokkos_includes AND Kokkos_INCLUDE_DIRS)
    foreach(dir IN LISTS Kokkos_INCLUDE_DIRS)
      get_filename_component(dir "${dir}" REALPATH)
      list(APPEND numamove_kokkos_repaired "${dir}")
    endforeach()
    set_target_properties(Kokkos::kokkos PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${numamove_kokkos_repaired}")
  endif()
endif()
