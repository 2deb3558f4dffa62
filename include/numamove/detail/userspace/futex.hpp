// Sleeping on a 32-bit word until another thread changes it: what the workers, the fence and
// their callers wait with. Async-signal-safe, allocates nothing.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/userspace/futex.hpp is internal: include a public numamove header"
#endif

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdint>

namespace numamove::detail::userspace {

/// Sleeps while `word` holds `expected` (or returns at once). Callers re-check `word` in a loop:
/// wake-ups may be spurious.
inline void futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<const std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected,
            nullptr, nullptr, 0);
}

/// Wakes every thread sleeping in futex_wait on `word`.
inline void futex_wake(std::atomic<std::uint32_t>& word) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX,
            nullptr, nullptr, 0);
}

}  // namespace numamove::detail::userspace
