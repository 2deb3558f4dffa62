// numamove/flags.hpp: the move_pages(2) flags and the choice of path, without <numaif.h>.
#pragma once
#include "detail/public_header_begin.hpp"

// Same values and spelling as <numaif.h> and <linux/mempolicy.h>, so either may be included
// before or after numamove.
#ifndef MPOL_MF_MOVE
#define MPOL_MF_MOVE (1 << 1)  // move pages used by this process only
#endif
#ifndef MPOL_MF_MOVE_ALL
#define MPOL_MF_MOVE_ALL (1 << 2)  // also move shared pages; needs CAP_SYS_NICE
#endif

namespace numamove {

/// Which implementation moves the pages.
enum class backend {
  automatic,  ///< the kernel where its NUMA calls work in this process, else userspace
  kernel,     ///< move_pages(2) and mbind(2); fails with the kernel's error where refused
  userspace,  ///< numamove relocates pages itself (for containers and kernels without NUMA)
};

/// "automatic", "kernel" or "userspace".
constexpr const char* to_string(backend b) noexcept {
  return b == backend::kernel ? "kernel" : b == backend::userspace ? "userspace" : "automatic";
}

}  // namespace numamove

#include "detail/public_header_end.hpp"
