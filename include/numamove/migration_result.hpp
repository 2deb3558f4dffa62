// numamove/migration_result.hpp: what migrate() takes and what it reports.
#pragma once

#include <chrono>
#include <cstddef>
#include <system_error>
#include <vector>

#include "flags.hpp"

namespace numamove {

/// How migrate() moves pages.
struct migrate_options {
  int flags = MPOL_MF_MOVE;             ///< MPOL_MF_MOVE, or MPOL_MF_MOVE_ALL for shared pages
  backend path = backend::automatic;    ///< which implementation moves them
  int busy_retries = 4;                 ///< extra attempts for pages that stay -EBUSY
};

/// The outcome of one migrate() call.
struct migration_result {
  /// One entry per base page the data spans, in address order, starting at `first_page`: the
  /// node the page is on after the call, or a negative errno as in move_pages(). Empty when the
  /// call failed its call-level checks before looking at any page.
  std::vector<int> status;
  const void* first_page = nullptr;  ///< page-aligned address that status[0] describes
  std::size_t moved = 0;             ///< pages this call moved to the target
  std::size_t already_there = 0;     ///< pages that were on the target before the call
  std::size_t not_present = 0;       ///< pages never touched (-ENOENT): left unallocated
  std::size_t failed = 0;            ///< pages with any other negative status
  std::error_code error;             ///< call-level error (errno values, generic category)
  backend used = backend::kernel;    ///< the path that ran (never automatic)
  std::size_t bytes = 0;             ///< bytes moved: moved pages times the base page size
  std::chrono::nanoseconds elapsed{0};

  /// True when there was no call-level error and no page failed.
  explicit operator bool() const noexcept { return !error && failed == 0; }
};

}  // namespace numamove
