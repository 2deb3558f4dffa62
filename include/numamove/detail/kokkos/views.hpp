// What create_mirror, resize and realloc in numamove/kokkos.hpp share: the space to allocate
// in, and the copy of the elements two Views have in common. Reached through
// numamove/kokkos.hpp only (after space_of).
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/kokkos/views.hpp is internal: include a public numamove header"
#endif

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>

namespace numamove::detail::kokkos {

using numamove::kokkos::NumaSpace;

/// The space of the View's allocation; a default NumaSpace (first touch) for an unmanaged View.
template <class View>
NumaSpace space_or_default(const View& view) {
  static_assert(std::is_same_v<typename View::memory_space, NumaSpace>,
                "numamove::kokkos: a View in NumaSpace");
  return numamove::kokkos::space_of(view).value_or(NumaSpace());
}

// Copies the elements both Views have (the common extents), as Kokkos::resize does.
template <class Dst, class Src, std::size_t... R>
void copy_common(const Dst& dst, const Src& src, std::index_sequence<R...>) {
  Kokkos::deep_copy(Kokkos::subview(dst, Kokkos::pair<std::size_t, std::size_t>(
                                             0, std::min(dst.extent(R), src.extent(R)))...),
                    Kokkos::subview(src, Kokkos::pair<std::size_t, std::size_t>(
                                             0, std::min(dst.extent(R), src.extent(R)))...));
}

/// numamove::kokkos::resize(): a new allocation in the old one's space, the common elements
/// copied, then the View replaced (unchanged when allocating throws).
template <class View, class... Init>
void resize(View& view, const std::array<std::size_t, 8>& n, Init... init) {
  static_assert(View::traits::is_managed, "numamove::kokkos::resize: a managed View");
  View resized(Kokkos::view_alloc(space_or_default(view), std::string(view.label()), init...), n[0],
               n[1], n[2], n[3], n[4], n[5], n[6], n[7]);
  copy_common(resized, view, std::make_index_sequence<static_cast<std::size_t>(View::rank)>());
  view = resized;
}

/// numamove::kokkos::realloc(): the old allocation freed, a new one made in its space.
template <class View, class... Init>
void realloc(View& view, const std::array<std::size_t, 8>& n, Init... init) {
  static_assert(View::traits::is_managed, "numamove::kokkos::realloc: a managed View");
  const NumaSpace space = space_or_default(view);
  const std::string label = view.label();
  view = View();  // free the old allocation before the new one is made, as Kokkos::realloc does
  view = View(Kokkos::view_alloc(space, label, init...), n[0], n[1], n[2], n[3], n[4], n[5], n[6],
              n[7]);
}

}  // namespace numamove::detail::kokkos
