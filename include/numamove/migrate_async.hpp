// numamove/migrate_async.hpp: migrate() that returns at once, so that a program moves the
// data of its next phase while it computes on other data.
#pragma once
#include "detail/public_header_begin.hpp"

#include <cstddef>
#include <future>
#include <iterator>
#include <type_traits>

#include "detail/engine/async_mover.hpp"
#include "migrate.hpp"
#include "migration_result.hpp"

namespace numamove {

/// migrate(data, count, node, options), done on numamove's mover thread: returns at once with
/// a future that becomes ready when the move is done. The future holds what migrate() would
/// have returned for the same call: the same per-page statuses, counts and call-level errors
/// (ENODEV, EINVAL, EFAULT also for a range that wraps the address space, EPERM, EACCES,
/// ENOMEM, EHOSTUNREACH, EINVAL for options.force with backend::kernel), or std::bad_alloc
/// where migrate() would throw it. The call itself throws only std::bad_alloc.
///
/// Requests run one at a time, in the order they were made, on one thread the first request
/// starts and every later one reuses; it inherits the CPU affinity of the thread that made the
/// first request (to overlap, make that one from a thread allowed on a core the computation
/// leaves free). Until the future is ready the data must stay allocated
/// and mapped (the move reads it then); the program's threads may go on reading and writing
/// it: on the userspace path a write to a page being copied waits until the page is in place
/// and none is lost (the path stops the process's threads, the caller's included, while each
/// batch is committed: docs/userspace.md); on the kernel path the kernel makes writers wait.
/// With options.protect_writes off, no thread, the caller included, may touch the range or the
/// address space until the future is ready. Data on the calling thread's stack may move on the
/// userspace path (the mover's own stack is the one it refuses).
///
/// Destroying the future does not wait for the move (a std::future from a promise never
/// blocks in its destructor): the move still runs. Where no thread can be started, the move
/// runs on the calling thread and the future is ready when the call returns. At exit the
/// request in flight completes and those still queued are dropped (their futures hold
/// std::future_error, broken_promise). A fork()ed child has a mover of its own; the requests
/// its parent had not finished at the fork are not done in the child, and their futures there
/// never become ready.
template <class T>
std::future<migration_result> migrate_async(T* data, std::size_t count, int node,
                                            const migrate_options& options = {}) {
  return detail::async_mover::shared().submit(
      [data, count, node, options] { return migrate(data, count, node, options); });
}

/// migrate_async(std::data(contiguous), std::size(contiguous), node, options) for a contiguous
/// range (std::vector, std::array, numamove::vector, a C array, std::span). The range's
/// elements must stay where they are until the future is ready (no resize of a vector).
template <class Range, class = decltype(std::data(std::declval<Range&>()))>
std::future<migration_result> migrate_async(Range& contiguous, int node,
                                            const migrate_options& options = {}) {
  return migrate_async(std::data(contiguous), std::size(contiguous), node, options);
}

}  // namespace numamove

#include "detail/public_header_end.hpp"
