// Runs of consecutive entries: the shape of every batched pass over pages (one pagemap read,
// one scan, one mapping per run instead of one per page).
#pragma once

#include <cstddef>
#include <cstdint>

namespace numamove::detail {

/// Cuts [0, count) into maximal runs [first, end) in which joins(k - 1, k) holds for every
/// k in (first, end), and calls visit(first, end) for each run, in order.
template <class Joins, class Visit>
void for_each_run(std::size_t count, Joins joins, Visit visit) {
  for (std::size_t first = 0; first < count;) {
    std::size_t end = first + 1;
    while (end < count && joins(end - 1, end)) ++end;
    visit(first, end);
    first = end;
  }
}

inline std::uintptr_t address_value(std::uintptr_t address) noexcept { return address; }
inline std::uintptr_t address_value(const void* address) noexcept { return reinterpret_cast<std::uintptr_t>(address); }

/// for_each_run() over addresses, ascending: a run is pages `page` bytes apart.
template <class Address, class Visit>
void for_each_page_run(const Address* addresses, std::size_t count, std::size_t page, Visit visit) {
  for_each_run(
      count,
      [&](std::size_t before, std::size_t at) {
        return address_value(addresses[at]) == address_value(addresses[before]) + page;
      },
      visit);
}

}  // namespace numamove::detail
