// numamove/migrate.hpp: move typed data to a node, and find where it is.
#pragma once
#include "detail/public_header_begin.hpp"

#include <cerrno>
#include <cstddef>
#include <iterator>
#include <map>
#include <system_error>
#include <type_traits>
#include <vector>

#include "detail/engine/migration.hpp"
#include "migration_result.hpp"
#include "move_pages.hpp"
#include "detail/linux/syscalls.hpp"

namespace numamove {

/// Moves the pages holding data[0 .. count) to `node`, keeping their virtual addresses and
/// contents. Every page the bytes touch moves whole: a neighbouring object that shares the first
/// or the last page moves with them. Pages already on `node` are skipped; pages never touched
/// stay untouched (-ENOENT) and are not allocated.
///
/// Never throws for a failed move: call-level errors go to result.error with the errno that
/// move_pages(2) gives (EINVAL bad flags, EPERM MPOL_MF_MOVE_ALL without CAP_SYS_NICE, ENODEV a
/// node without memory, EACCES a node outside the cpuset, EFAULT, also for a range that does not
/// fit in the address space, ENOMEM), EINVAL for
/// options.force with backend::kernel, EHOSTUNREACH on the userspace path for a node it cannot
/// place pages on; after which no page has moved unless result.status says so. Per-page outcomes
/// go to result.status. Where the kernel path is absent the userspace path runs (options.path,
/// result.used; docs/semantics.md). Throws std::bad_alloc only when the call's own bookkeeping
/// cannot be allocated.
template <class T>
migration_result migrate(T* data, std::size_t count, int node,
                         const migrate_options& options = {}) {
  if (detail::range_wraps(data, count, sizeof(T))) {
    migration_result wrapped;
    wrapped.used = detail::path_for(options);
    wrapped.error = std::make_error_code(std::errc::bad_address);
    return wrapped;
  }
  const detail::page_span span = detail::pages_spanned(data, count * sizeof(T));
  return detail::migrate_pages(detail::page_addresses(span), std::vector<int>(span.count, node),
                               options);
}

/// migrate(std::data(contiguous), std::size(contiguous), node, options) for a contiguous range
/// (std::vector, std::array, numamove::vector, a C array, std::span).
template <class Range, class = decltype(std::data(std::declval<Range&>()))>
migration_result migrate(Range& contiguous, int node, const migrate_options& options = {}) {
  return migrate(std::data(contiguous), std::size(contiguous), node, options);
}

/// Where each page holding data[0 .. count) is: one entry per page, in address order, the node
/// or a negative errno as move_pages() reports it (-ENOENT never touched, -EFAULT no mapping or
/// the zero page). One batched query. Where the kernel's query is refused, backend::automatic
/// answers from /proc (the userspace path): a page whose node cannot be verified there (its
/// mapping spread over several nodes) is numamove::node_unknown (-ENODATA). Throws
/// std::system_error with the call's errno when the query itself fails (EFAULT).
template <class T>
std::vector<int> locate(const T* data, std::size_t count) {
  if (detail::range_wraps(data, count, sizeof(T)))
    throw std::system_error(EFAULT, std::generic_category(),
                            "numamove::locate: the range wraps the address space");
  const detail::page_span span = detail::pages_spanned(data, count * sizeof(T));
  std::vector<void*> pages = detail::page_addresses(span);
  std::vector<int> status(span.count);
  if (move_pages(0, span.count, pages.data(), nullptr, status.data(), 0) != 0)
    throw std::system_error(errno, std::generic_category(), "numamove::locate");
  return status;
}

/// Bytes of data[0 .. count) on each node, from one locate(): keys are nodes, or the negative
/// status of pages that are on none (-ENOENT for bytes never touched). Only the bytes of the
/// range count, not the rest of its first and last pages. Throws as locate() does.
template <class T>
std::map<int, std::size_t> bytes_per_node(const T* data, std::size_t count) {
  std::map<int, std::size_t> bytes;
  const std::vector<int> status = locate(data, count);
  if (status.empty()) return bytes;
  const auto begin = reinterpret_cast<std::uintptr_t>(data);
  const std::uintptr_t end = begin + count * sizeof(T);
  const std::uintptr_t first = begin / detail::page_size() * detail::page_size();
  for (std::size_t i = 0; i < status.size(); ++i) {
    const std::uintptr_t page = first + i * detail::page_size();
    const std::uintptr_t from = std::max(page, begin);
    const std::uintptr_t to = std::min(page + detail::page_size(), end);
    bytes[status[i]] += to - from;
  }
  return bytes;
}

}  // namespace numamove

#include "detail/public_header_end.hpp"
