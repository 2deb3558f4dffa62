// numamove: version of the library. This header is the one source of the version:
// CMake reads it to version the package.
#pragma once
#include "detail/public_header_begin.hpp"

#define NUMAMOVE_VERSION_MAJOR 0
#define NUMAMOVE_VERSION_MINOR 1
#define NUMAMOVE_VERSION_PATCH 0

/// The version as one integer, MAJOR * 10000 + MINOR * 100 + PATCH, for `#if` checks.
#define NUMAMOVE_VERSION \
  (NUMAMOVE_VERSION_MAJOR * 10000 + NUMAMOVE_VERSION_MINOR * 100 + NUMAMOVE_VERSION_PATCH)

#include "detail/public_header_end.hpp"
