// The core in one page: the machine's nodes, a placed buffer, a migration with a status per
// page, and where the bytes are afterwards.
//   migrate_buffer [MiB]   (default 8)
#include <cstdio>
#include <cstdlib>
#include <string>

#include <numamove/numamove.hpp>

namespace {

void print_topology(const numamove::topology& machine) {
  std::printf("NUMA nodes with memory:\n");
  for (const int node : machine.nodes()) {
    std::string cpus;
    for (const int cpu : machine.cpus_of(node))
      cpus += (cpus.empty() ? "" : ",") + std::to_string(cpu);
    std::printf("  node %d: %6llu MiB, CPUs [%s], distances", node,
                static_cast<unsigned long long>(machine.memory_of(node) >> 20), cpus.c_str());
    for (const int other : machine.nodes()) std::printf(" %d", machine.distance(node, other));
    std::printf("\n");
  }
}

void print_bytes_per_node(const std::string& when, const numamove::vector<double>& data) {
  std::printf("%s:", when.c_str());
  for (const auto& [where, bytes] : numamove::bytes_per_node(data.data(), data.size())) {
    if (where >= 0)
      std::printf("  node %d %zu KiB", where, bytes >> 10);
    else
      std::printf("  status %d %zu KiB", where, bytes >> 10);
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 8;
  const numamove::topology& machine = numamove::topology::system();
  print_topology(machine);

  const int first = machine.nodes().front();
  const int last = machine.nodes().back();
  numamove::vector<double> data(mib << 20 >> 3, 1.0,
                                numamove::allocator<double>(numamove::placement::on_node(first)));
  std::printf("\n");
  print_bytes_per_node("after allocation on node " + std::to_string(first), data);

  const numamove::migration_result moved = numamove::migrate(data, last);
  std::printf(
      "\nmigrate to node %d via %s: %zu pages moved, %zu already there, %zu failed, %.1f MiB in "
      "%.2f ms\n",
      last, numamove::to_string(moved.used), moved.moved, moved.already_there, moved.failed,
      static_cast<double>(moved.bytes) / (1 << 20),
      static_cast<double>(moved.elapsed.count()) / 1e6);
  if (moved.error) std::printf("call-level error: %s\n", moved.error.message().c_str());
  std::printf("status of the first pages:");
  for (std::size_t i = 0; i < moved.status.size() && i < 8; ++i)
    std::printf(" %d", moved.status[i]);
  std::printf("%s\n", moved.status.size() > 8 ? " ..." : "");
  print_bytes_per_node("after migration", data);
  return moved ? 0 : 1;
}
