// Helpers of the Kokkos tests: the kernel's own view of a View's pages, and contents that show
// whether a copy or a move kept them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <numamove/kokkos.hpp>

#include "multinode/guest_support.hpp"

namespace numamove_test {

using numamove::kokkos::NumaSpace;

template <class T, class... P>
using view = Kokkos::View<T, P...>;

/// A 2-D View in NumaSpace whose rows are one page each.
using grid = Kokkos::View<double**, Kokkos::LayoutRight, NumaSpace>;
inline std::size_t row_length() {
  return page() / sizeof(double);
}

/// The first page of the bytes a contiguous View spans, and how many pages they touch.
template <class View>
const char* first_page_of(const View& v) {
  const auto at = reinterpret_cast<std::uintptr_t>(v.data());
  return reinterpret_cast<const char*>(at / page() * page());
}
template <class View>
std::size_t pages_of(const View& v) {
  const auto at = reinterpret_cast<std::uintptr_t>(v.data());
  const std::uintptr_t end = at + v.span() * sizeof(typename View::value_type);
  return (end - 1) / page() - at / page() + 1;
}

/// Where the kernel says each page of the contiguous View `v` is (raw move_pages(2) query).
template <class View>
std::vector<int> kernel_nodes_of(const View& v) {
  return kernel_query(first_page_of(v), pages_of(v));
}

/// Writes a value that depends on the element's position and `seed` into every element.
template <class View>
void fill_pattern(const View& v, double seed) {
  double* data = v.data();
  for (std::size_t i = 0; i < v.span(); ++i) data[i] = seed + static_cast<double>(i);
}

/// True when every element still holds what fill_pattern(v, seed) wrote.
template <class View>
bool holds_pattern(const View& v, double seed) {
  const double* data = v.data();
  for (std::size_t i = 0; i < v.span(); ++i)
    if (data[i] != seed + static_cast<double>(i)) return false;
  return true;
}

}  // namespace numamove_test
