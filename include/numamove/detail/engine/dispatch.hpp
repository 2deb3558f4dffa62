// numamove::move_pages on the path a request takes: the kernel backend or the userspace one.
// The engine calls this, never the public header, so dependencies point one way.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/engine/dispatch.hpp is internal: include a public numamove header"
#endif

#include "../../flags.hpp"
#include "../kernel/backend.hpp"
#include "../userspace/backend.hpp"
#include "backend_choice.hpp"

namespace numamove::detail {

/// move_pages(2) of process `pid` on `path` (automatic resolved as backend_choice.hpp says),
/// with the contract and return values of the public numamove::move_pages (move_pages.hpp):
/// 0, a positive count of pages not migrated, or -1 with errno set. The one place below the
/// public API that keeps that convention; internal callers convert at once (errors.hpp).
inline long move_pages_on(backend path, int pid, unsigned long count, void** pages,
                          const int* nodes, int* status, int flags) {
  if (resolve(path) == backend::kernel)
    return kernel_move_pages(pid, count, pages, nodes, status, flags);
  return userspace_move_pages(pid, count, pages, nodes, status, flags);
}

}  // namespace numamove::detail
