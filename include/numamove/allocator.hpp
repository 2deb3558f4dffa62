// numamove/allocator.hpp: an std::allocator-compatible allocator that places memory on nodes.
#pragma once
#include "detail/public_header_begin.hpp"

#include <sys/mman.h>

#include <cstddef>
#include <limits>
#include <new>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "detail/call_checks.hpp"
#include "detail/engine/mapping_cache.hpp"
#include "detail/engine/memory_policy.hpp"
#include "detail/linux/proc.hpp"
#include "placement.hpp"
#include "detail/linux/syscalls.hpp"

namespace numamove {

/// Allocates whole pages with mmap, bound to a placement before anything touches them.
/// Every allocation takes at least one page of its own, so use it for arrays, not for many small
/// objects. Freed on_node mappings up to 32 MiB in all stay mapped and are reused by the next
/// allocation of the same length and node, bound again and with any page moved away since moved
/// back; freed memory must still be mapped read-write, as it was allocated. Allocators compare
/// equal when their placements are equal, and memory from one may be freed by any equal one.
template <class T>
class allocator {
 public:
  using value_type = T;

  /// First-touch placement: the kernel's default policy.
  allocator() noexcept = default;

  /// Allocates as `where` says. Throws std::system_error with ENODEV when a node of `where` does
  /// not exist or has no memory, EACCES when it is outside this thread's cpuset, and EINVAL for
  /// an interleave over no nodes.
  explicit allocator(placement where) : where_(std::move(where)) {
    if (where_.kind == placement::policy::interleave && where_.nodes.empty())
      throw std::system_error(EINVAL, std::generic_category(),
                              "numamove::allocator: interleave over no nodes");
    for (const int node : where_.nodes) {
      if (const int error = detail::check_target_node(node))
        throw std::system_error(error, std::generic_category(),
                                "numamove::allocator: node " + std::to_string(node));
    }
  }

  template <class U>
  allocator(const allocator<U>& other) noexcept(std::is_nothrow_copy_constructible_v<placement>)
      : where_(other.where()) {}

  /// `n` objects on fresh pages bound to the placement. Where mbind(2) is refused (seccomp
  /// without CAP_SYS_NICE, kernels without NUMA), the pages are placed by first touch from a
  /// thread pinned to each node's CPUs instead, and are then all resident. Throws
  /// std::bad_alloc when the memory cannot be mapped (std::bad_array_new_length when
  /// n * sizeof(T) overflows), and std::system_error when the placement cannot be applied:
  /// mbind's errno, or EHOSTUNREACH where mbind is refused and a node has no CPU this process
  /// may be pinned to.
  T* allocate(std::size_t n) {
    if (n > std::numeric_limits<std::size_t>::max() / sizeof(T)) throw std::bad_array_new_length();
    const std::size_t length = mapped_length(n);
    if (cached()) {
      if (void* reused = detail::mapping_cache::instance().take(length, where_))
        return static_cast<T*>(reused);
    }
    void* memory =
        ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) throw std::bad_alloc();
    if (const int error = detail::place_memory(memory, length, where_)) {
      ::munmap(memory, length);
      throw std::system_error(error, std::generic_category(), "numamove::allocator: placement");
    }
    return static_cast<T*>(memory);
  }

  void deallocate(T* p, std::size_t n) noexcept {
    if (cached())
      detail::mapping_cache::instance().give(p, mapped_length(n), where_.nodes[0]);
    else
      ::munmap(p, mapped_length(n));
  }

  const placement& where() const noexcept { return where_; }

 private:
  bool cached() const noexcept { return where_.kind == placement::policy::on_node; }

  static std::size_t mapped_length(std::size_t n) noexcept {
    const std::size_t page = detail::page_size();
    const std::size_t bytes = n * sizeof(T);
    return bytes == 0 ? page : (bytes + page - 1) / page * page;
  }

  placement where_;
};

template <class T, class U>
bool operator==(const allocator<T>& a, const allocator<U>& b) {
  return a.where() == b.where();
}
template <class T, class U>
bool operator!=(const allocator<T>& a, const allocator<U>& b) {
  return !(a == b);
}

/// A std::vector whose storage is placed by numamove::allocator.
template <class T>
using vector = std::vector<T, allocator<T>>;

}  // namespace numamove

#include "detail/public_header_end.hpp"
