// Where numamove maps its own memory during a userspace move: away from the program's mappings.
//
// A program thread that munmaps a range and then maps it again with MAP_FIXED leaves a hole in
// between; mmap(NULL) puts a new mapping at the top of the highest gap that fits, which is often
// that hole (a freed mapping at the bottom of the mmap area merges with the free space below
// it). A worker stack placed there would then be replaced by the program's MAP_FIXED mapping,
// and the worker would crash. So each mapping is made at the bottom of a probe much larger than
// such a hole: the probe may start inside the hole, what is kept lies far below it.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/userspace/own_mappings.hpp is internal: include a public numamove header"
#endif

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>

#include "../linux/proc.hpp"
#include "../linux/syscalls.hpp"

namespace numamove::detail::userspace {

/// How far below the top of its probe an own mapping lies (address space only: the probe is
/// PROT_NONE and MAP_NORESERVE, and given back at once).
inline constexpr std::size_t own_mapping_distance = std::size_t{16} << 30;

/// mmap(nullptr, bytes, prot, MAP_PRIVATE | MAP_ANONYMOUS | extra_flags), placed at least
/// own_mapping_distance below the highest free address that would fit it, or where mmap puts
/// it when the probe is refused (RLIMIT_AS, a full address space). Returns the mapping, or
/// MAP_FAILED with errno set as mmap(2) sets it. Allocates nothing.
inline void* map_own(std::size_t bytes, int prot, int extra_flags = 0) noexcept {
  const int flags = MAP_PRIVATE | MAP_ANONYMOUS | extra_flags;
  bytes =
      (bytes + page_size() - 1) / page_size() * page_size();  // the probe's rest starts on a page
  void* probe = ::mmap(nullptr, bytes + own_mapping_distance, PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (probe == MAP_FAILED) return ::mmap(nullptr, bytes, prot, flags, -1, 0);
  void* kept = ::mmap(probe, bytes, prot, flags | MAP_FIXED, -1, 0);
  if (kept == MAP_FAILED) {
    ::munmap(probe, bytes + own_mapping_distance);
    return MAP_FAILED;
  }
  ::munmap(static_cast<char*>(probe) + bytes, own_mapping_distance);
  return kept;
}

}  // namespace numamove::detail::userspace
