// No write is lost while pages move: each chunk of pages is write-protected while it is copied;
// a thread that writes there faults, and the fault handler (fault_handler.hpp) parks it until
// the chunk's fresh pages are in place, then lets its write run again, into them.
#pragma once

#include <sys/mman.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "../fault_handler.hpp"
#include "workers.hpp"

namespace numamove::detail::userspace {

/// How far a chunk has come. Only ever moves forward: idle -> guarded -> moved or restored.
enum guard_state : std::uint32_t {
  idle = 0,      ///< not touched yet: a fault here is the program's own
  guarded = 1,   ///< write-protected by us: writers wait
  moved = 2,     ///< fresh pages in place, with the original protection
  restored = 3,  ///< the original mapping stays (not moved, or its pages refaulted in place); its protection is back
};

/// One write-protectable range, in memory that the migrator does not move (the arena).
struct guarded_range {
  std::uintptr_t begin = 0;
  std::uintptr_t end = 0;
  int protection = 0;  ///< the mapping's own PROT_* bits
  std::atomic<std::uint32_t> state{idle};
};

/// The ranges of one call, sorted by address and disjoint: the fault callback's context.
struct guard_table {
  guarded_range* ranges = nullptr;
  std::size_t count = 0;
};

/// The fault callback: a write fault in a range we protected waits until that range has moved
/// (or been restored) and is then retried. Faults we did not cause (reads, ranges not yet
/// protected, pages the program itself made read-only) go back to the previous handler.
inline bool resume_after_move(void* address, bool is_write, void* context) noexcept {
  const guard_table& table = *static_cast<const guard_table*>(context);
  const auto at = reinterpret_cast<std::uintptr_t>(address);
  std::size_t low = 0;
  std::size_t high = table.count;
  while (low < high) {
    const std::size_t middle = low + (high - low) / 2;
    if (table.ranges[middle].end <= at) low = middle + 1;
    else high = middle;
  }
  if (low == table.count || at < table.ranges[low].begin) return false;
  guarded_range& range = table.ranges[low];
  if (!is_write || (range.protection & PROT_WRITE) == 0) return false;
  std::uint32_t state = range.state.load(std::memory_order_acquire);
  if (state == idle) return false;
  while (state == guarded) {
    futex_wait(range.state, guarded);
    state = range.state.load(std::memory_order_acquire);
  }
  return true;
}

/// Write-protects `range` (keeping its read and execute permission) when its mapping is
/// writable. Returns 0 or mprotect's errno; on failure the range is left as it was.
inline int protect(guarded_range& range) noexcept {
  if ((range.protection & PROT_WRITE) == 0) return 0;
  range.state.store(guarded, std::memory_order_release);
  if (::mprotect(reinterpret_cast<void*>(range.begin), range.end - range.begin, range.protection & ~PROT_WRITE) == 0)
    return 0;
  const int error = errno;
  range.state.store(restored, std::memory_order_release);
  return error;
}

/// Ends the range's protection: `outcome` is moved (fresh pages with the original protection are
/// in place) or restored (the old pages stay; their protection is put back here). Wakes the
/// writers waiting on it.
inline void unprotect(guarded_range& range, guard_state outcome) noexcept {
  if (outcome == restored && range.state.load(std::memory_order_relaxed) == guarded)
    ::mprotect(reinterpret_cast<void*>(range.begin), range.end - range.begin, range.protection);
  range.state.store(outcome, std::memory_order_release);
  futex_wake(range.state);
}

/// Routes faults in the table's span to resume_after_move for the lifetime of the object.
class write_guard {
 public:
  /// Registers the table when `enabled`; error() says whether that worked (an errno, or 0).
  write_guard(guard_table& table, bool enabled) noexcept {
    if (!enabled || table.count == 0) return;
    const std::uintptr_t begin = table.ranges[0].begin;
    const std::uintptr_t end = table.ranges[table.count - 1].end;
    id_ = register_fault_range(reinterpret_cast<void*>(begin), end - begin, &resume_after_move, &table);
    if (id_ < 0) error_ = errno;
  }
  write_guard(const write_guard&) = delete;
  write_guard& operator=(const write_guard&) = delete;
  /// Returns once no handler is running the callback; call only after every range has ended
  /// its protection.
  ~write_guard() { unregister_fault_range(id_); }

  int error() const noexcept { return error_; }
  bool active() const noexcept { return id_ >= 0; }

 private:
  int id_ = -1;
  int error_ = 0;
};

}  // namespace numamove::detail::userspace
