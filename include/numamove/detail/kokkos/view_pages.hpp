// Which bytes and pages a host-accessible View's elements occupy: the span of a contiguous
// View, or the runs of a strided one (a subview of a column, a block of a 3-D array). Reached
// through numamove/kokkos.hpp only.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/kokkos/view_pages.hpp is internal: include a public numamove header"
#endif

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../linux/proc.hpp"
#include "../linux/syscalls.hpp"

namespace numamove::detail::kokkos {

/// The runs of a strided View of rank > 0 (for_each_run()).
template <std::size_t rank, class value_type, class View, class Visit>
void strided_runs(const View& view, std::uintptr_t base, Visit& visit) {
  std::array<std::size_t, rank> extent{};
  std::array<std::size_t, rank> stride{};
  std::size_t inner = 0;
  for (std::size_t r = 0; r < rank; ++r) {
    extent[r] = view.extent(r);
    stride[r] = view.stride(r);
    if (extent[r] > 1 && (extent[inner] <= 1 || stride[r] < stride[inner])) inner = r;
  }
  const bool lines = stride[inner] == 1;
  const std::size_t run_bytes = (lines ? extent[inner] : 1) * sizeof(value_type);
  if (lines) extent[inner] = 1;  // one visit covers the whole line
  std::array<std::size_t, rank> index{};
  for (;;) {
    std::size_t offset = 0;
    for (std::size_t r = 0; r < rank; ++r) offset += index[r] * stride[r];
    visit(base + offset * sizeof(value_type), run_bytes);
    std::size_t r = 0;
    while (r < rank && ++index[r] == extent[r]) index[r++] = 0;
    if (r == rank) return;
  }
}

/// Calls visit(first_byte, bytes) for each run of consecutive bytes that holds elements of
/// `view`: its span when it is contiguous; else, along its dimension of smallest stride, one
/// run per line when that stride is 1, one per element otherwise.
template <class View, class Visit>
void for_each_run(const View& view, Visit visit) {
  using value_type = typename View::value_type;
  constexpr auto rank = static_cast<std::size_t>(View::rank);
  const auto base = reinterpret_cast<std::uintptr_t>(view.data());
  if (view.data() == nullptr || view.size() == 0) return;
  if (view.span_is_contiguous()) {
    visit(base, view.span() * sizeof(value_type));
    return;
  }
  if constexpr (rank > 0) strided_runs<rank, value_type>(view, base, visit);
}

/// The base pages that hold elements of `view`, ascending and distinct.
template <class View>
std::vector<void*> pages_of(const View& view) {
  const std::uintptr_t page = page_size();
  std::vector<void*> pages;
  for_each_run(view, [&](std::uintptr_t first, std::size_t bytes) {
    for (std::uintptr_t p = first / page * page; p < first + bytes; p += page) {
      if (pages.empty() || reinterpret_cast<std::uintptr_t>(pages.back()) != p)
        pages.push_back(reinterpret_cast<void*>(p));
    }
  });
  std::sort(pages.begin(), pages.end());
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
  return pages;
}

}  // namespace numamove::detail::kokkos
