// numamove::allocator on real nodes: on_node and interleave placement as the kernel reports
// it, whichever CPU first touches the memory, reused memory back on its node after the user
// moved it, and ENODEV for what is not a node with memory.
#include <cerrno>
#include <cstdint>
#include <system_error>
#include <vector>

#include "guest_support.hpp"

using namespace numamove_test;

TEST_CASE("allocator on_node puts every page on that node, touched from anywhere",
          "[multinode][allocator]") {
  const std::vector<int> nodes = memory_nodes();
  for (const int node : nodes) {
    const int cpu = cpu_not_of(node);
    REQUIRE(cpu >= 0);
    pin_to_cpu pin(cpu);
    REQUIRE(pin.ok());
    INFO("node " << node << ", first touch from CPU " << cpu << " (not one of the node's)");
    numamove::allocator<std::uint64_t> alloc(numamove::placement::on_node(node));
    numamove::vector<std::uint64_t> v(8 * page() / sizeof(std::uint64_t), 0, alloc);
    fill(v.data(), v.size() * sizeof v[0], static_cast<std::uint64_t>(node));
    const std::size_t pages = v.size() * sizeof v[0] / page();
    CHECK(kernel_query(v.data(), pages) == std::vector<int>(pages, node));
    CHECK(first_mismatch(v.data(), v.size() * sizeof v[0], static_cast<std::uint64_t>(node)) ==
          SIZE_MAX);
  }
}

TEST_CASE("allocator on_node reaches a node without CPUs, which first touch cannot",
          "[multinode][allocator]") {
  const std::vector<int> memory_only = numamove::topology::system().nodes_without_cpus();
  NUMAMOVE_SKIP_UNLESS(!memory_only.empty(), "memory-only-node", "every node with memory has CPUs");
  for (const int node : memory_only) {
    INFO("node " << node);
    constexpr std::size_t pages = 8;
    // For contrast, first touch from a CPU of a node with memory stays on that node.
    const int cpu = cpu_of_other_memory_node(node);
    REQUIRE(cpu >= 0);
    pin_to_cpu pin(cpu);
    REQUIRE(pin.ok());
    mapping plain(pages);
    fill(plain.data, plain.bytes, 1);
    CHECK(kernel_query(plain.data, pages) ==
          std::vector<int>(pages, numamove::topology::system().node_of_cpu(cpu)));

    numamove::vector<char> v(pages * page(), 0,
                             numamove::allocator<char>(numamove::placement::on_node(node)));
    fill(v.data(), v.size(), 2);
    CHECK(kernel_query(v.data(), pages) == std::vector<int>(pages, node));
    CHECK(first_mismatch(v.data(), v.size(), 2) == SIZE_MAX);
  }
}

TEST_CASE("allocator interleave deals pages round-robin over its nodes", "[multinode][allocator]") {
  const std::vector<int> all = memory_nodes();
  std::vector<std::vector<int>> sets{all};
  if (all.size() > 2) sets.push_back({all.back(), all.front()});  // a subset, given out of order
  for (const std::vector<int>& set : sets) {
    const numamove::placement p = numamove::placement::interleave(set);
    const std::vector<int>& ring = p.nodes;  // ascending
    INFO("interleave over " << to_text(ring));
    const std::size_t pages = 8 * ring.size() + 3;
    numamove::vector<char> v(pages * page(), 0, numamove::allocator<char>(p));
    fill(v.data(), v.size(), 4);
    const std::vector<int> got = kernel_query(v.data(), pages);
    INFO("pages on " << to_text(got));
    // The first page on a node of the set, each next page on the next node of the set.
    const auto start = std::find(ring.begin(), ring.end(), got[0]);
    REQUIRE(start != ring.end());
    std::vector<int> expected(pages);
    for (std::size_t i = 0; i < pages; ++i)
      expected[i] = ring[(static_cast<std::size_t>(start - ring.begin()) + i) % ring.size()];
    CHECK(got == expected);
    for (const int n : ring) CHECK(std::count(got.begin(), got.end(), n) >= 8);
    CHECK(first_mismatch(v.data(), v.size(), 4) == SIZE_MAX);
  }
}

TEST_CASE("allocator: memory moved to another node and freed is back on its node when reused",
          "[multinode][allocator][cache]") {
  const std::vector<int> nodes = memory_nodes();
  // 8 pages are checked with one query, 100 are re-bound with mbind(MPOL_MF_MOVE).
  const std::size_t pages = GENERATE(std::size_t{8}, std::size_t{100});
  const numamove::backend path = GENERATE(numamove::backend::kernel, numamove::backend::userspace);
  for (const int node : nodes) {
    const int elsewhere = node == nodes.front() ? nodes.back() : nodes.front();
    INFO(pages << " pages on node " << node << ", moved to " << elsewhere << " by the "
               << (path == numamove::backend::kernel ? "kernel" : "userspace") << " path");
    // A length per case, so that the cache hands back the mapping this case freed.
    const std::size_t bytes = (pages + static_cast<std::size_t>(node)) * page();
    const numamove::allocator<char> alloc(numamove::placement::on_node(node));
    const char* freed = nullptr;
    {
      numamove::vector<char> v(bytes, 1, alloc);
      numamove::migrate_options options;
      options.path = path;
      REQUIRE(!numamove::migrate(v.data(), v.size(), elsewhere, options).error);
      REQUIRE(kernel_query(v.data(), bytes / page()) ==
              std::vector<int>(bytes / page(), elsewhere));
      freed = v.data();
    }
    numamove::vector<char> again(bytes, 2, alloc);
    CHECK(again.data() == freed);
    CHECK(kernel_query(again.data(), bytes / page()) == std::vector<int>(bytes / page(), node));
    CHECK(std::count(again.begin(), again.end(), 2) == static_cast<std::ptrdiff_t>(bytes));
  }
}

TEST_CASE("allocator refuses with ENODEV a node that does not exist or has no memory",
          "[multinode][allocator][enodev]") {
  std::vector<int> bad = nonexistent_nodes();
  const std::vector<int> memoryless = memoryless_nodes();
  bad.insert(bad.end(), memoryless.begin(), memoryless.end());
  const int good = memory_nodes().front();
  for (const int node : bad) {
    INFO("node " << node
                 << (std::find(memoryless.begin(), memoryless.end(), node) != memoryless.end()
                         ? " (online, no memory)"
                         : " (no such node)"));
    int on_node_error = 0;
    try {
      numamove::allocator<int> a(numamove::placement::on_node(node));
    } catch (const std::system_error& e) {
      on_node_error = e.code().value();
    }
    CHECK(on_node_error == ENODEV);
    int interleave_error = 0;
    try {
      numamove::allocator<int> a(numamove::placement::interleave({good, node}));
    } catch (const std::system_error& e) {
      interleave_error = e.code().value();
    }
    CHECK(interleave_error == ENODEV);
  }
}
