# What the numamove target needs, found the same way in the build tree and by an installed
# numamoveConfig.cmake: hwloc, through pkg-config.
include(GNUInstallDirs)
find_package(PkgConfig REQUIRED)
if(NOT TARGET PkgConfig::numamove_hwloc)
  pkg_check_modules(numamove_hwloc REQUIRED IMPORTED_TARGET GLOBAL hwloc)
endif()
