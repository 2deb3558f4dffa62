// numamove's internal error convention, in one place.
//
// - A function that can fail returns `int`: 0 on success, else a positive errno value
//   (EINVAL, ENOMEM, ...). Callers test `if (const int error = f(...))` and pass it up.
// - A page's outcome is a move_pages(2) status: a node id >= 0, or a negative errno
//   (-ENOENT, -EFAULT, -EBUSY, ...). Statuses live in status arrays, never in return values.
// - Only the raw system call wrappers (sys_* in linux/syscalls.hpp) and the move_pages(2)
//   contract keep the kernel's convention, -1 with errno set: the public numamove::move_pages
//   and the backends' entry points it dispatches to (engine/dispatch.hpp move_pages_on,
//   kernel_move_pages, userspace::move_pages). Internal callers turn it into a positive errno
//   at once, with errno_of().
// - `bool` answers questions that cannot fail ("is this page present?"), never "did it work?".
// - Exceptions (std::system_error, std::bad_alloc) leave the library only where the public
//   header says so; the migrator's protected phases do not throw.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/errors.hpp is internal: include a public numamove header"
#endif

#include <cerrno>

namespace numamove::detail {

/// The positive errno that a call which failed just now left: errno, or EIO where it left none.
inline int last_errno() noexcept {
  return errno != 0 ? errno : EIO;
}

/// The positive errno of a failed system call wrapper (`rc` < 0, errno set by the call),
/// or 0 when `rc` >= 0.
inline int errno_of(long rc) noexcept {
  return rc < 0 ? last_errno() : 0;
}

}  // namespace numamove::detail
