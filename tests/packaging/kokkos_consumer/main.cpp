// A user's Kokkos program: a View placed on the first node, moved to the last, located.
#include <cstdio>
#include <numamove/kokkos.hpp>

int main(int argc, char** argv) {
  Kokkos::ScopeGuard kokkos(argc, argv);
  using numamove::kokkos::NumaSpace;
  const std::vector<int> nodes = numamove::topology::system().nodes();
  Kokkos::View<double*, NumaSpace> x(
      Kokkos::view_alloc(NumaSpace(numamove::placement::on_node(nodes.front())), "x"), 1 << 18);
  Kokkos::deep_copy(x, 1.0);
  const numamove::migration_result moved = numamove::kokkos::migrate(x, nodes.back());
  for (const auto& [node, bytes] : numamove::kokkos::bytes_per_node(x))
    std::printf("node %d: %zu bytes\n", node, bytes);
  return moved && numamove::kokkos::space_of(x).has_value() ? 0 : 1;
}
