// The two shapes of every batched pass over pages: runs of consecutive entries (one pagemap
// read, one scan, one mapping per run instead of one per page), and a subset of pages gathered
// for one move_pages(2)-style call whose answers go back to where each page came from (with
// the entries to gather by their status).
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/page_batches.hpp is internal: include a public numamove header"
#endif

#include <cstddef>
#include <cstdint>
#include <vector>

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

inline std::uintptr_t address_value(std::uintptr_t address) noexcept {
  return address;
}
inline std::uintptr_t address_value(const void* address) noexcept {
  return reinterpret_cast<std::uintptr_t>(address);
}

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

/// The entries i of status[0 .. count) whose status is `value` (-EBUSY, -ENOENT, ...),
/// ascending: the pages a batch asks about again.
inline std::vector<std::size_t> entries_with_status(std::size_t count, const int* status,
                                                    int value) {
  std::vector<std::size_t> found;
  for (std::size_t i = 0; i < count; ++i)
    if (status[i] == value) found.push_back(i);
  return found;
}

/// Pages gathered for one move_pages(2)-style call (a query when no node is given), each with
/// the index it came from in the caller's arrays, so the answers can be put back.
struct page_batch {
  std::vector<void*> pages;
  std::vector<int> nodes;         ///< empty for a query
  std::vector<int> status;        ///< the call's answers, after call()
  std::vector<std::size_t> from;  ///< from[k]: the caller's index of pages[k]

  void add(std::size_t index, void* page) {
    from.push_back(index);
    pages.push_back(page);
  }
  void add(std::size_t index, void* page, int node) {
    add(index, page);
    nodes.push_back(node);
  }
  bool empty() const noexcept { return pages.empty(); }
  std::size_t size() const noexcept { return pages.size(); }

  /// Calls call(count, pages, nodes or nullptr for a query, status) with every status preset
  /// to -1, and returns what it returns (move_pages' convention).
  template <class Call>
  long call(Call move_pages_like) {
    status.assign(pages.size(), -1);
    return move_pages_like(static_cast<unsigned long>(pages.size()), pages.data(),
                           nodes.empty() ? nullptr : nodes.data(), status.data());
  }

  /// Puts each answer back where its page came from: answers[from[k]] = status[k].
  void scatter(int* answers) const {
    for (std::size_t k = 0; k < from.size(); ++k) answers[from[k]] = status[k];
  }
};

}  // namespace numamove::detail
