// How numamove::kokkos::NumaSpace maps and places its memory: fresh pages bound to the space's
// placement before Kokkos writes its allocation header, or first touched by the threads of the
// OpenMP loop the space was made for. Reached through numamove/kokkos.hpp only.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/kokkos/allocation.hpp is internal: include a public numamove header"
#endif

#include <sys/mman.h>

#include <cerrno>
#include <cstddef>
#include <new>
#include <optional>
#include <string>
#include <system_error>

#include "../../kokkos/allocation_failure.hpp"
#include "../../placement.hpp"
#include "../call_checks.hpp"
#include "../engine/memory_policy.hpp"
#include "../linux/proc.hpp"

#ifdef NUMAMOVE_KOKKOS_THREAD_PLACEMENT
#include "../../openmp.hpp"
#include "../linux/syscalls.hpp"
#endif

namespace numamove::detail::kokkos {

/// What a NumaSpace instance places by: a placement, or (with OpenMP) the static schedule of
/// the loop whose threads first touch the pages.
struct space_state {
  placement where;
#ifdef NUMAMOVE_KOKKOS_THREAD_PLACEMENT
  std::optional<numamove::openmp::static_schedule> schedule;
#endif

  bool operator==(const space_state& other) const {
#ifdef NUMAMOVE_KOKKOS_THREAD_PLACEMENT
    const bool same_schedule = schedule.has_value() == other.schedule.has_value() &&
                               (!schedule || (schedule->iterations == other.schedule->iterations &&
                                              schedule->threads == other.schedule->threads &&
                                              schedule->chunk == other.schedule->chunk));
#else
    const bool same_schedule = true;
#endif
    return where == other.where && same_schedule;
  }
};

/// Throws std::system_error as numamove::allocator does for a placement no allocation can take.
inline void validate(const placement& where) {
  if (where.kind == placement::policy::interleave && where.nodes.empty())
    throw std::system_error(EINVAL, std::generic_category(),
                            "numamove::kokkos::NumaSpace: interleave over no nodes");
  for (const int node : where.nodes) {
    if (const int error = check_target_node(node))
      throw std::system_error(error, std::generic_category(),
                              "numamove::kokkos::NumaSpace: node " + std::to_string(node));
  }
}

/// Bytes before the View's data: Kokkos asks for its allocation header plus the data and says
/// how much of it is data (`logical`); a plain allocate() has no header.
inline std::size_t header_bytes(std::size_t bytes, std::size_t logical) noexcept {
  return logical != 0 && logical <= bytes ? bytes - logical : 0;
}

#ifdef NUMAMOVE_KOKKOS_THREAD_PLACEMENT
/// The data bytes split into schedule.iterations equal slices, the last ones short by less than
/// a byte per slice: place_for_schedule() wants slices of one size, so the mapping extends past
/// the data by those few bytes.
inline std::size_t scheduled_bytes(std::size_t data_bytes,
                                   const numamove::openmp::static_schedule& schedule) noexcept {
  const std::size_t slice = (data_bytes + schedule.iterations - 1) / schedule.iterations;
  return slice * schedule.iterations;
}
#endif

/// The length of the mapping behind an allocation of `bytes` (`logical` of them data): whole
/// pages, at least one.
inline std::size_t mapped_length(const space_state* state, std::size_t bytes,
                                 std::size_t logical) noexcept {
  std::size_t needed = bytes;
#ifdef NUMAMOVE_KOKKOS_THREAD_PLACEMENT
  if (state != nullptr && state->schedule) {
    const std::size_t header = header_bytes(bytes, logical);
    needed = std::max(needed, header + scheduled_bytes(bytes - header, *state->schedule));
  }
#else
  (void)state;
  (void)logical;
#endif
  const std::size_t page = page_size();
  return needed == 0 ? page : (needed + page - 1) / page * page;
}

/// Maps fresh pages for `bytes` (`logical` of them data) and places them as `state` says
/// (nullptr: first touch). Throws numamove::kokkos::allocation_failure, or what
/// numamove::openmp::place_for_schedule() throws for a team it cannot run.
inline void* allocate(const space_state* state, const char* label, std::size_t bytes,
                      std::size_t logical) {
  const std::size_t length = mapped_length(state, bytes, logical);
  void* memory =
      ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) throw numamove::kokkos::allocation_failure(errno, label, bytes);
  if (state == nullptr) return memory;
#ifdef NUMAMOVE_KOKKOS_THREAD_PLACEMENT
  if (state->schedule) {
    // Each thread of the loop's team first touches its slices: a move is reported per thread
    // and leaves the page usable where it is, so no failure of the placement fails the View.
    const std::size_t header = header_bytes(bytes, logical);
    try {
      numamove::openmp::place_for_schedule(static_cast<char*>(memory) + header,
                                           scheduled_bytes(bytes - header, *state->schedule),
                                           *state->schedule);
    } catch (...) {
      ::munmap(memory, length);
      throw;
    }
    return memory;
  }
#endif
  if (const int error = place_memory(memory, length, state->where)) {
    ::munmap(memory, length);
    throw numamove::kokkos::allocation_failure(error, label, bytes);
  }
  return memory;
}

inline void deallocate(const space_state* state, void* memory, std::size_t bytes,
                       std::size_t logical) noexcept {
  ::munmap(memory, mapped_length(state, bytes, logical));
}

}  // namespace numamove::detail::kokkos
