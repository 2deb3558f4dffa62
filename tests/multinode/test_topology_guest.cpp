// topology::system() on a machine with several nodes, checked against the kernel's own
// description of it in /sys/devices/system/node.
#include <algorithm>
#include <vector>

#include "guest_support.hpp"

using namespace numamove_test;

TEST_CASE("topology lists exactly the kernel's nodes with memory", "[multinode][topology]") {
  const numamove::topology& t = numamove::topology::system();
  const std::vector<int> expected = kernel_nodes("has_memory");
  INFO("kernel: online " << to_text(kernel_nodes("online")) << " has_memory " << to_text(expected));
  CHECK(t.nodes() == expected);
  REQUIRE(t.nodes().size() >= 2);
  if (vm_expected_number("nodes") > 0)
    CHECK(t.nodes().size() == static_cast<std::size_t>(vm_expected_number("nodes")));
  for (const int n : memoryless_nodes()) {
    INFO("memoryless node " << n);
    CHECK_FALSE(t.has_node(n));
  }
}

TEST_CASE("topology gives each node the CPUs the kernel gives it", "[multinode][topology]") {
  const numamove::topology& t = numamove::topology::system();
  std::vector<int> without;
  for (const int n : t.nodes()) {
    INFO("node " << n);
    CHECK(t.cpus_of(n) == kernel_cpus_of(n));
    if (kernel_cpus_of(n).empty()) without.push_back(n);
  }
  CHECK(t.nodes_without_cpus() == without);
}

TEST_CASE("a node with memory and no CPUs is a node, and has no CPUs", "[multinode][topology]") {
  const numamove::topology& t = numamove::topology::system();
  const std::vector<int> memory_only = t.nodes_without_cpus();
  NUMAMOVE_SKIP_UNLESS(!memory_only.empty(), "memory-only-node", "every node with memory has CPUs");
  for (const int n : memory_only) {
    INFO("node " << n);
    CHECK(kernel_cpus_of(n).empty());
    CHECK(t.memory_of(n) > 0);
    std::vector<int> claimed;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
      if (t.node_of_cpu(cpu) == n) claimed.push_back(cpu);
    CHECK(claimed.empty());
  }
}

TEST_CASE("a node with CPUs and no memory is not a target, and its CPUs belong to no node",
          "[multinode][topology]") {
  const numamove::topology& t = numamove::topology::system();
  std::vector<int> cpu_only;
  for (const int n : memoryless_nodes())
    if (!kernel_cpus_of(n).empty()) cpu_only.push_back(n);
  NUMAMOVE_SKIP_UNLESS(!cpu_only.empty(), "cpu-only-node", "no online node has CPUs but no memory");
  for (const int n : cpu_only) {
    INFO("memoryless node " << n << " with CPUs " << to_text(kernel_cpus_of(n)));
    CHECK_FALSE(t.has_node(n));
    for (const int cpu : kernel_cpus_of(n)) CHECK(t.node_of_cpu(cpu) == -1);
  }
}

TEST_CASE("the ids of the nodes with memory may have gaps", "[multinode][topology]") {
  const std::vector<int> nodes = numamove::topology::system().nodes();
  REQUIRE(nodes.size() >= 2);
  const bool gap = nodes.back() - nodes.front() + 1 != static_cast<int>(nodes.size());
  NUMAMOVE_SKIP_UNLESS(gap, "sparse-memory-nodes",
                       "the nodes with memory are " + to_text(nodes) + ", no gap");
  // Every listed id is a real node with memory, and the ids in the gaps are not targets.
  for (int id = nodes.front(); id <= nodes.back(); ++id) {
    const bool listed = std::binary_search(nodes.begin(), nodes.end(), id);
    const std::string meminfo = read_file(sys_node + "/node" + std::to_string(id) + "/meminfo");
    INFO("node " << id);
    CHECK(listed == numamove::topology::system().has_node(id));
    if (listed) CHECK(!meminfo.empty());
  }
}

TEST_CASE("distance() is the kernel's SLIT, in the right direction", "[multinode][topology]") {
  const numamove::topology& t = numamove::topology::system();
  const std::vector<int> online = kernel_nodes("online");
  bool asymmetric = false;
  bool beyond_default = false;
  for (const int from : t.nodes()) {
    const std::vector<int> row = kernel_distances_from(from);
    REQUIRE(row.size() == online.size());
    for (std::size_t k = 0; k < online.size(); ++k) {
      const int to = online[k];
      if (!t.has_node(to)) continue;
      INFO("distance " << from << " -> " << to);
      CHECK(t.distance(from, to) == row[k]);
      if (from != to && row[k] != 20) beyond_default = true;
      const std::vector<int> back = kernel_distances_from(to);
      const auto from_k =
          static_cast<std::size_t>(std::find(online.begin(), online.end(), from) - online.begin());
      if (back[from_k] != row[k]) asymmetric = true;
    }
    CHECK(t.distance(from, from) == 10);
  }
  NUMAMOVE_SKIP_UNLESS(beyond_default, "slit", "the SLIT says 10 local, 20 remote everywhere");
  if (vm_expects("slit")) CHECK(asymmetric);  // the 4node shape's SLIT is asymmetric on purpose
}

TEST_CASE("current_node() follows the thread onto each node's CPUs", "[multinode][topology]") {
  const numamove::topology& t = numamove::topology::system();
  for (const int n : t.nodes()) {
    for (const int cpu : t.cpus_of(n)) {
      pin_to_cpu pin(cpu);
      REQUIRE(pin.ok());
      INFO("pinned to CPU " << cpu << " of node " << n);
      CHECK(::sched_getcpu() == cpu);
      CHECK(t.current_node() == n);
    }
  }
}
