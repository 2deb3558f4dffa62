// Test-only failure points of the userspace migrator. A test makes the n-th operation at a
// point fail with an errno, as if the system call had returned it, to prove that a failure
// halfway leaves every page not yet moved where and as it was and says so per page. Nothing
// fails unless a test asks; production code never calls inject_failure().
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/userspace/fault_injection.hpp is internal: include a public numamove header"
#endif

#include <atomic>

namespace numamove::detail::userspace {

/// Where a failure can be injected.
enum class failure_point : int {
  map_destination,  ///< mmap of a run's fresh pages (as when RLIMIT_AS or overcommit refuses)
  place,   ///< the placement check: the run's fresh pages are not on the target (node full)
  stop,    ///< the stop of the program's threads for a batch (as when a thread blocks the signal)
  commit,  ///< mremap that puts a chunk's fresh pages at the original addresses
  writeback,  ///< msync of a dirty file page (as when the disk fails)
};
inline constexpr int failure_point_count = 5;

struct injected_failure {
  std::atomic<int> countdown{-1};  // operations to let pass before failing; -1: none armed
  std::atomic<int> error{0};
};
inline injected_failure injected_failures[failure_point_count];

/// Makes operation number `nth` (0: the next one, counted across threads and calls) at `point`
/// fail with `error`; the operations before it run normally. One failure per point is armed
/// at a time; arming again replaces it.
inline void inject_failure(failure_point point, int nth, int error) noexcept {
  injected_failure& f = injected_failures[static_cast<int>(point)];
  f.error.store(error, std::memory_order_relaxed);
  f.countdown.store(nth, std::memory_order_release);
}

/// Disarms every injected failure.
inline void clear_injected_failures() noexcept {
  for (injected_failure& f : injected_failures) f.countdown.store(-1, std::memory_order_release);
}

/// Called by the migrator before each operation at `point`: the errno the operation must fail
/// with, or 0 to run it. Async-signal-safe and allocation-free.
inline int injected(failure_point point) noexcept {
  injected_failure& f = injected_failures[static_cast<int>(point)];
  int left = f.countdown.load(std::memory_order_acquire);
  while (left >= 0) {
    if (f.countdown.compare_exchange_weak(left, left - 1, std::memory_order_acq_rel))
      return left == 0 ? f.error.load(std::memory_order_relaxed) : 0;
  }
  return 0;
}

}  // namespace numamove::detail::userspace
