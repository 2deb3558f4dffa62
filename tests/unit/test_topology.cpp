// topology: this machine through hwloc, and synthetic machines for placement logic.
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include <numamove/numamove.hpp>

#include "support/catch.hpp"

using numamove::topology;

TEST_CASE("this machine's topology agrees with sysfs", "[topology]") {
  const topology& t = topology::system();
  REQUIRE_FALSE(t.nodes().empty());
  // Every node hwloc reports is one the kernel lists as having memory.
  std::ifstream has_memory("/sys/devices/system/node/has_memory");
  std::string list;
  has_memory >> list;
  CHECK(t.nodes() == numamove::detail::parse_id_list(list));
  std::size_t cpus = 0;
  for (const int node : t.nodes()) {
    cpus += t.cpus_of(node).size();
    CHECK(t.distance(node, node) == 10);
    CHECK(t.memory_of(node) > 0);
  }
  CHECK(cpus + 0 <= static_cast<std::size_t>(::sysconf(_SC_NPROCESSORS_CONF)));
}

TEST_CASE("system() is loaded once, safely from many threads", "[topology]") {
  std::vector<const topology*> seen(8);
  std::vector<std::thread> threads;
  for (auto& slot : seen) threads.emplace_back([&slot] { slot = &topology::system(); });
  for (auto& thread : threads) thread.join();
  CHECK(std::set<const topology*>(seen.begin(), seen.end()).size() == 1);
}

TEST_CASE("current_node is the node of the CPU the thread is bound to", "[topology]") {
  const topology& t = topology::system();
  const int node = t.nodes().front();
  REQUIRE_FALSE(t.cpus_of(node).empty());
  cpu_set_t old_mask;
  REQUIRE(sched_getaffinity(0, sizeof old_mask, &old_mask) == 0);
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(t.cpus_of(node).front(), &one);
  REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
  CHECK(t.current_node() == node);
  CHECK(t.node_of_cpu(sched_getcpu()) == node);
  sched_setaffinity(0, sizeof old_mask, &old_mask);
}

TEST_CASE("synthetic topologies", "[topology]") {
  SECTION("two packages, one node each") {
    const topology t = topology::synthetic("pack:2 numa:1 core:2 pu:1");
    CHECK(t.nodes() == std::vector<int>{0, 1});
    CHECK(t.cpus_of(0) == std::vector<int>{0, 1});
    CHECK(t.cpus_of(1) == std::vector<int>{2, 3});
    CHECK(t.node_of_cpu(3) == 1);
    CHECK(t.node_of_cpu(4) == -1);
    CHECK(t.distance(0, 1) == 20);
    CHECK(t.distance(1, 1) == 10);
    CHECK(t.nodes_without_cpus().empty());
  }
  SECTION("non-contiguous node and CPU ids") {
    const topology t =
        topology::synthetic("pack:2 numa:1(indexes=0,16) core:2 pu:1(indexes=0,1,8,9)");
    CHECK(t.nodes() == std::vector<int>{0, 16});
    CHECK(t.cpus_of(16) == std::vector<int>{8, 9});
    CHECK(t.node_of_cpu(9) == 16);
    CHECK(t.has_node(16));
    CHECK_FALSE(t.has_node(1));
  }
  SECTION("distances given as a matrix") {
    const topology t = topology::synthetic(
        "pack:4 numa:1 core:1 pu:1",
        {{10, 12, 20, 22}, {12, 10, 22, 20}, {20, 22, 10, 12}, {22, 20, 12, 10}});
    CHECK(t.nodes().size() == 4);
    CHECK(t.distance(0, 3) == 22);
    CHECK(t.distance(2, 3) == 12);
  }
  SECTION("bad input") {
    CHECK_THROWS_AS(topology::synthetic("not a topology"), std::invalid_argument);
    CHECK_THROWS_AS(topology::synthetic("pack:2 numa:1 pu:1", {{10}}), std::invalid_argument);
    const topology t = topology::synthetic("pack:2 numa:1 core:1 pu:1");
    CHECK_THROWS_AS(t.cpus_of(5), std::out_of_range);
    CHECK_THROWS_AS(t.distance(0, 5), std::out_of_range);
  }
}
