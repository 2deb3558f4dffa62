// Which path `backend::automatic` takes in this process.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/engine/backend_choice.hpp is internal: include a public numamove header"
#endif

#include "../../flags.hpp"
#include "../linux/capabilities_probe.hpp"

namespace numamove::detail {

/// True when move_pages(2) works here, queries and moves: where a seccomp filter answers EPERM
/// or a kernel without NUMA answers ENOSYS it does not. Probed once per process (see
/// capabilities::of_this_process()).
inline bool kernel_path_available() {
  return capabilities::of_this_process().automatic() == backend::kernel;
}

/// The backend that runs for a request: `automatic` resolved, the others as asked.
inline backend resolve(backend requested) {
  if (requested != backend::automatic) return requested;
  return kernel_path_available() ? backend::kernel : backend::userspace;
}

}  // namespace numamove::detail
