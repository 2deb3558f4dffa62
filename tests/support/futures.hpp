// Waiting for numamove's futures (migrate_async, follow_async) from a test thread.
#pragma once

#include <chrono>
#include <future>
#include <thread>

namespace numamove_test {

/// f.get(), reached by polling rather than by blocking in wait(). A userspace move stops every
/// thread of the process with a signal; under ThreadSanitizer a thread blocked in
/// std::future::wait runs no signal handler, so the move would give up after 2 s (-EBUSY).
template <class R>
R await(std::future<R> f) {
  while (f.wait_for(std::chrono::seconds(0)) != std::future_status::ready)
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  return f.get();
}

}  // namespace numamove_test
