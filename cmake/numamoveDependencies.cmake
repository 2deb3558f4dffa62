# What the numamove target needs, found the same way in the build tree and by an installed
# numamoveConfig.cmake: hwloc, through pkg-config, and threads (the userspace migrator's
# workers).
include(GNUInstallDirs)
find_package(PkgConfig REQUIRED)
if(NOT TARGET PkgConfig::numamove_hwloc)
  pkg_check_modules(numamove_hwloc REQUIRED IMPORTED_TARGET GLOBAL hwloc)
endif()
if(NOT TARGET Threads::Threads)
  set(THREADS_PREFER_PTHREAD_FLAG ON)
  find_package(Threads REQUIRED)
  # Global, like hwloc's target, so that a project adding numamove as a subdirectory links it.
  set_target_properties(Threads::Threads PROPERTIES IMPORTED_GLOBAL TRUE)
endif()
