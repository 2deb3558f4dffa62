// NumaSpace on several nodes (the 2- and 4-node guests): every placement as the kernel reports
// it, Views and subviews moved with their contents, copies, mirrors and resizes that stay on
// their node.
#include <string>
#include <vector>

#include "kokkos_support.hpp"

using namespace numamove_test;
using numamove::placement;

TEST_CASE("on_node places every page of a View on that node", "[kokkos][multinode]") {
  for (const int node : memory_nodes()) {
    INFO("node " << node);
    grid a(Kokkos::view_alloc(NumaSpace(placement::on_node(node)), "a"), 32, row_length());
    CHECK(kernel_nodes_of(a) == std::vector<int>(pages_of(a), node));
    CHECK(numamove::kokkos::bytes_per_node(a) ==
          std::map<int, std::size_t>{{node, a.span() * sizeof(double)}});
  }
}

TEST_CASE("interleave deals a View's pages round-robin over its nodes", "[kokkos][multinode]") {
  const placement where = placement::interleave(memory_nodes());
  const std::vector<int>& ring = where.nodes;
  grid a(Kokkos::view_alloc(NumaSpace(where), "a"), 8 * ring.size() + 3, row_length());
  const std::vector<int> got = kernel_nodes_of(a);
  INFO("pages on " << to_text(got));
  const auto start = std::find(ring.begin(), ring.end(), got.front());
  REQUIRE(start != ring.end());
  std::vector<int> expected(got.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    expected[i] = ring[(static_cast<std::size_t>(start - ring.begin()) + i) % ring.size()];
  CHECK(got == expected);
}

TEST_CASE("migrate moves a View's pages with their contents; locate sees them",
          "[kokkos][multinode]") {
  const std::vector<int> nodes = memory_nodes();
  grid a(Kokkos::view_alloc(NumaSpace(placement::on_node(nodes.front())), "a"), 24, row_length());
  fill_pattern(a, 17);
  for (const int node : nodes) {
    INFO("to node " << node);
    const numamove::migration_result r = numamove::kokkos::migrate(a, node);
    CHECK(r);
    CHECK(r.moved + r.already_there == pages_of(a));
    CHECK(kernel_nodes_of(a) == std::vector<int>(pages_of(a), node));
    CHECK(numamove::kokkos::locate(a) == std::vector<int>(pages_of(a), node));
    CHECK(holds_pattern(a, 17));
  }
}

TEST_CASE("migrate of a subview moves the pages of its elements only", "[kokkos][multinode]") {
  const std::vector<int> nodes = memory_nodes();
  const int from = nodes.front();
  const int to = nodes.back();
  const std::size_t rows = 16;
  grid a(Kokkos::view_alloc(NumaSpace(placement::on_node(from)), "a"), rows, row_length());
  fill_pattern(a, 23);
  // Rows 4..7: the pages that hold them are pages 4..8 of the allocation (the data starts 128
  // bytes into page 0, so row r spans pages r and r + 1).
  auto middle = Kokkos::subview(a, Kokkos::make_pair(4, 8), Kokkos::ALL);
  const numamove::migration_result r = numamove::kokkos::migrate(middle, to);
  CHECK(r);
  CHECK(r.moved == 5);
  std::vector<int> expected(pages_of(a), from);
  for (std::size_t p = 4; p <= 8; ++p) expected[p] = to;
  CHECK(kernel_nodes_of(a) == expected);
  CHECK(holds_pattern(a, 23));

  // A column of a wider array: one element every two pages; the pages between stay.
  Kokkos::View<double**, Kokkos::LayoutRight, NumaSpace> wide(
      Kokkos::view_alloc(NumaSpace(placement::on_node(from)), "wide"), 8, 2 * row_length());
  fill_pattern(wide, 29);
  auto column = Kokkos::subview(wide, Kokkos::ALL, 0);
  const numamove::migration_result c = numamove::kokkos::migrate(column, to);
  CHECK(c);
  CHECK(c.moved == 8);
  const std::vector<int> wide_nodes = kernel_nodes_of(wide);
  for (std::size_t p = 0; p < wide_nodes.size(); ++p) {
    INFO("page " << p);
    CHECK(wide_nodes[p] == (p % 2 == 0 && p < 16 ? to : from));
  }
  CHECK(numamove::kokkos::bytes_per_node(column) ==
        std::map<int, std::size_t>{{to, 8 * sizeof(double)}});
  CHECK(holds_pattern(wide, 29));
}

TEST_CASE("deep_copy into a placed View keeps it on its node", "[kokkos][multinode]") {
  const int node = memory_nodes().back();
  const std::size_t n = 40 * row_length();
  Kokkos::View<double*, NumaSpace> a(Kokkos::view_alloc(NumaSpace(placement::on_node(node)), "a"),
                                     n);
  Kokkos::View<double*, Kokkos::HostSpace> h("h", n);
  fill_pattern(h, 31);
  Kokkos::deep_copy(a, h);
  Kokkos::deep_copy(NumaSpace::execution_space(), h, a);
  NumaSpace::execution_space().fence();
  CHECK(holds_pattern(a, 31));
  CHECK(holds_pattern(h, 31));
  CHECK(kernel_nodes_of(a) == std::vector<int>(pages_of(a), node));
}

TEST_CASE("create_mirror, resize and realloc keep a View on its node",
          "[kokkos][multinode][mirror][resize]") {
  const int node = memory_nodes().back();
  const NumaSpace space(placement::on_node(node));
  grid a(Kokkos::view_alloc(space, "a"), 12, row_length());
  fill_pattern(a, 37);
  auto mirror = numamove::kokkos::create_mirror(a);
  CHECK(kernel_nodes_of(mirror) == std::vector<int>(pages_of(mirror), node));
  Kokkos::deep_copy(mirror, a);
  CHECK(holds_pattern(mirror, 37));
  numamove::kokkos::resize(a, 30, row_length());
  CHECK(kernel_nodes_of(a) == std::vector<int>(pages_of(a), node));
  CHECK(a(11, 7) == mirror(11, 7));
  numamove::kokkos::realloc(a, 50, row_length());
  CHECK(kernel_nodes_of(a) == std::vector<int>(pages_of(a), node));
}
