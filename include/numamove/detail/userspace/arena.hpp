// Memory for what the userspace migrator's workers write while the program's other threads are
// stopped: one anonymous mapping, made before the stop and carved up once, since nothing may
// allocate during the stop (a stopped thread may hold the malloc lock).
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/userspace/arena.hpp is internal: include a public numamove header"
#endif

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>

#include "../linux/syscalls.hpp"
#include "live_maps.hpp"
#include "own_mappings.hpp"

namespace numamove::detail::userspace {

/// One anonymous mapping of its own (map_own()), carved into arrays of trivially destructible
/// objects.
class arena {
 public:
  /// Maps at least `bytes`. Throws std::bad_alloc when it cannot.
  explicit arena(std::size_t bytes) : size_((bytes + page_size() - 1) / page_size() * page_size()) {
    void* memory = map_own(size_, PROT_READ | PROT_WRITE);
    if (memory == MAP_FAILED) throw std::bad_alloc();
    base_ = static_cast<char*>(memory);
  }
  arena(const arena&) = delete;
  arena& operator=(const arena&) = delete;
  ~arena() { ::munmap(base_, size_); }

  /// `count` value-initialized objects of type T (trivially destructible ones only). Throws
  /// std::bad_alloc when the arena has no room left for them.
  template <class T>
  T* make(std::size_t count) {
    static_assert(std::is_trivially_destructible_v<T>, "the arena never runs destructors");
    used_ = (used_ + alignof(T) - 1) / alignof(T) * alignof(T);
    if (used_ + count * sizeof(T) > size_) throw std::bad_alloc();
    T* first = reinterpret_cast<T*>(base_ + used_);
    for (std::size_t i = 0; i < count; ++i) new (first + i) T();
    used_ += count * sizeof(T);
    return first;
  }

  /// The arena's own mapping.
  own_range extent() const noexcept {
    const auto at = reinterpret_cast<std::uintptr_t>(base_);
    return {at, at + size_};
  }

  /// What make() needs at most for `count` objects of type T.
  template <class T>
  static constexpr std::size_t room(std::size_t count) {
    return count * sizeof(T) + alignof(T);
  }

 private:
  std::size_t size_;
  std::size_t used_ = 0;
  char* base_ = nullptr;
};

}  // namespace numamove::detail::userspace
