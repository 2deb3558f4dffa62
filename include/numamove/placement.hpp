// numamove/placement.hpp: where newly allocated memory goes, decided before first touch.
#pragma once
#include "detail/public_header_begin.hpp"

#include <algorithm>
#include <vector>

namespace numamove {

/// Where an allocation's pages are placed when first touched. A description only: allocator
/// checks the nodes when it is constructed.
struct placement {
  enum class policy {
    first_touch,  ///< the kernel's default: on the node of the thread that first writes a page
    on_node,      ///< every page on one node (MPOL_BIND: allocation fails rather than spill)
    interleave,   ///< pages round-robin over the nodes, in page order (MPOL_INTERLEAVE)
  };

  static placement first_touch() { return {policy::first_touch, {}}; }
  static placement on_node(int node) { return {policy::on_node, {node}}; }
  /// `nodes` in any order, duplicates ignored.
  static placement interleave(std::vector<int> nodes) {
    std::sort(nodes.begin(), nodes.end());
    nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
    return {policy::interleave, std::move(nodes)};
  }

  policy kind = policy::first_touch;
  std::vector<int> nodes;  ///< ascending; empty for first_touch

  friend bool operator==(const placement& a, const placement& b) {
    return a.kind == b.kind && a.nodes == b.nodes;
  }
  friend bool operator!=(const placement& a, const placement& b) { return !(a == b); }
};

}  // namespace numamove

#include "detail/public_header_end.hpp"
