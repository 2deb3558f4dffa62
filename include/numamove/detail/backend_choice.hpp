// Which path `backend::automatic` takes in this process.
#pragma once

#include "../flags.hpp"
#include "syscalls.hpp"

namespace numamove::detail {

/// True when move_pages(2) can be called here: an empty call reaches the kernel's checks and
/// returns 0, where a seccomp filter answers EPERM and a kernel without NUMA answers ENOSYS.
/// Probed once per process.
inline bool kernel_path_available() noexcept {
  static const bool available = sys_move_pages(0, 0, nullptr, nullptr, nullptr, 0) == 0;
  return available;
}

/// The backend that runs for a request: `automatic` resolved, the others as asked.
inline backend resolve(backend requested) noexcept {
  if (requested != backend::automatic) return requested;
  return kernel_path_available() ? backend::kernel : backend::userspace;
}

}  // namespace numamove::detail
