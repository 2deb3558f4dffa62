// The pure planning of numamove/openmp.hpp on synthetic topologies: which thread owns which
// pages for a schedule, where each thread's data should be, and how local it is.
#include <omp.h>

#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include <numamove/openmp.hpp>

#include "support/catch.hpp"
#include "support/pages.hpp"

using numamove::openmp::page_run;
using numamove::openmp::plan_for_schedule;
using numamove::openmp::static_schedule;
using numamove_test::page;

namespace {

// A page-aligned fake address: planning never touches memory.
const void* fake(std::size_t page_index) {
  return reinterpret_cast<const void*>((std::uintptr_t{1} << 32) + page_index * page());
}

std::vector<int> owners(const static_schedule& s) {
  std::vector<int> who(s.iterations);
  for (std::size_t i = 0; i < s.iterations; ++i) who[i] = s.thread_of(i);
  return who;
}

// The thread that runs each iteration, as the OpenMP runtime this test is built with assigns it.
std::vector<int> runtime_owners(std::size_t iterations, int threads, std::size_t chunk) {
  std::vector<int> who(iterations, -1);
  const auto n = static_cast<long>(iterations);
  if (chunk == 0) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (long i = 0; i < n; ++i) who[static_cast<std::size_t>(i)] = omp_get_thread_num();
  } else {
    const auto c = static_cast<int>(chunk);
#pragma omp parallel for schedule(static, c) num_threads(threads)
    for (long i = 0; i < n; ++i) who[static_cast<std::size_t>(i)] = omp_get_thread_num();
  }
  return who;
}

}  // namespace

TEST_CASE("static_schedule assigns iterations as the OpenMP runtime does", "[plan]") {
  for (const std::size_t iterations : {0, 1, 3, 7, 10, 13, 64, 1001}) {
    for (const int threads : {1, 2, 3, 4}) {
      for (const std::size_t chunk : {0, 1, 2, 5}) {
        const static_schedule s{iterations, threads, chunk};
        INFO("iterations " << iterations << " threads " << threads << " chunk " << chunk);
        CHECK(owners(s) == runtime_owners(iterations, threads, chunk));
        std::vector<int> visited(iterations, -1);
        std::size_t expected_first = 0;
        s.for_each_block([&](int t, std::size_t first, std::size_t end) {
          CHECK(first == expected_first);
          CHECK(end > first);
          for (std::size_t i = first; i < end; ++i) visited[i] = t;
          expected_first = end;
        });
        CHECK(expected_first == iterations);
        CHECK(visited == owners(s));
      }
    }
  }
}

TEST_CASE("node_of_cpus: a mask within one node, a mask spanning nodes, a memoryless CPU",
          "[plan]") {
  const auto machine = numamove::topology::synthetic("pack:2 numa:1 core:2 pu:1");
  REQUIRE(machine.nodes() == std::vector<int>{0, 1});
  REQUIRE(machine.cpus_of(1) == std::vector<int>{2, 3});
  using numamove::openmp::node_of_cpus;
  // Bound to a place: the mask decides, wherever the thread happens to run.
  CHECK(node_of_cpus(machine, {2}, 2) == 1);
  CHECK(node_of_cpus(machine, {2, 3}, 3) == 1);
  CHECK(node_of_cpus(machine, {0, 1}, 1) == 0);
  // Free to drift: the CPU it runs on now decides.
  CHECK(node_of_cpus(machine, {0, 1, 2, 3}, 0) == 0);
  CHECK(node_of_cpus(machine, {0, 1, 2, 3}, 3) == 1);
  CHECK(node_of_cpus(machine, {1, 2}, 2) == 1);
  // A CPU that no node with memory claims.
  CHECK(node_of_cpus(machine, {}, 9) == -1);
  CHECK(node_of_cpus(machine, {9}, 9) == -1);

  const auto sparse = numamove::topology::synthetic("pack:2 numa:1(indexes=0,16) core:2 pu:1");
  REQUIRE(sparse.nodes() == std::vector<int>{0, 16});
  CHECK(node_of_cpus(sparse, {2, 3}, 2) == 16);
}

TEST_CASE("plan: a block schedule on two packages gives each thread its block of pages", "[plan]") {
  const auto machine = numamove::topology::synthetic("pack:2 numa:1 core:2 pu:1");
  // Four threads bound one per CPU: threads 0 and 1 on node 0, threads 2 and 3 on node 1.
  std::vector<int> nodes;
  for (const int cpu : {0, 1, 2, 3})
    nodes.push_back(numamove::openmp::node_of_cpus(machine, {cpu}, cpu));
  REQUIRE(nodes == std::vector<int>{0, 0, 1, 1});
  // 16 pages, one iteration per page.
  const auto plan = plan_for_schedule(fake(0), 16 * page(), {16, 4, 0}, nodes);
  CHECK(plan.nodes == nodes);
  for (std::size_t t = 0; t < 4; ++t) {
    REQUIRE(plan.runs[t].size() == 1);
    CHECK(plan.runs[t][0].first == fake(4 * t));
    CHECK(plan.runs[t][0].pages == 4);
    CHECK(plan.pages_of(static_cast<int>(t)) == 4);
  }
}

TEST_CASE("plan: schedule(static, chunk) interleaves the threads' runs", "[plan]") {
  // 12 pages, 2 pages per iteration, chunks of 1 iteration over 3 threads.
  const auto plan = plan_for_schedule(fake(0), 12 * page(), {6, 3, 1}, {0, 1, 2});
  for (std::size_t t = 0; t < 3; ++t) {
    REQUIRE(plan.runs[t].size() == 2);
    CHECK(plan.runs[t][0].first == fake(2 * t));
    CHECK(plan.runs[t][1].first == fake(2 * t + 6));
    CHECK(plan.runs[t][0].pages == 2);
    CHECK(plan.runs[t][1].pages == 2);
  }
  // Consecutive chunks of one thread merge into one run.
  const auto single = plan_for_schedule(fake(0), 12 * page(), {12, 1, 2}, {5});
  REQUIRE(single.runs[0].size() == 1);
  CHECK(single.runs[0][0].pages == 12);
}

TEST_CASE("plan: a page shared by two chunks goes to the chunk holding its middle", "[plan]") {
  // 4 pages from a quarter page into the first one: thread 0 has [0.25, 2.25), thread 1
  // [2.25, 4.25) in pages. Page 2 is 1/4 thread 0's and 3/4 thread 1's.
  const auto* begin = static_cast<const char*>(fake(0)) + page() / 4;
  const auto plan = plan_for_schedule(begin, 4 * page(), {2, 2, 0}, {0, 1});
  REQUIRE(plan.runs[0].size() == 1);
  REQUIRE(plan.runs[1].size() == 1);
  CHECK(plan.runs[0][0].first == fake(0));
  CHECK(plan.runs[0][0].pages == 2);
  CHECK(plan.runs[1][0].first == fake(2));
  CHECK(plan.runs[1][0].pages == 3);  // pages 2, 3 and the tail page 4
}

TEST_CASE("plan: with a huge-page granule, whole huge pages go to one thread", "[plan]") {
  const std::size_t huge = 512 * page();
  // Two threads over 3 huge pages' worth of data: thread 0 has 1.5 huge pages; the middle
  // huge page's midpoint is exactly on the boundary and goes to the thread that starts there.
  const auto plan = plan_for_schedule(fake(0), 3 * huge, {2, 2, 0}, {0, 1}, huge);
  REQUIRE(plan.runs[0].size() == 1);
  REQUIRE(plan.runs[1].size() == 1);
  CHECK(plan.runs[0][0].pages == 512);
  CHECK(plan.runs[1][0].first == fake(512));
  CHECK(plan.runs[1][0].pages == 1024);
}

TEST_CASE("plan: every page the data touches is in exactly one run", "[plan]") {
  for (const std::size_t offset : {std::size_t{0}, std::size_t{8}, page() - 8}) {
    for (const std::size_t chunk : {0, 1, 3}) {
      const auto* begin = static_cast<const char*>(fake(0)) + offset;
      const std::size_t bytes = 40 * 1000;  // 1000 iterations of 40 bytes
      const auto plan = plan_for_schedule(begin, bytes, {1000, 3, chunk}, {0, 1, 2});
      const std::size_t spanned = (offset + bytes + page() - 1) / page();
      std::vector<int> owner(spanned, -1);
      for (std::size_t t = 0; t < 3; ++t)
        for (const page_run& run : plan.runs[t])
          for (std::size_t p = 0; p < run.pages; ++p) {
            const std::size_t index = (reinterpret_cast<std::uintptr_t>(run.first) -
                                       reinterpret_cast<std::uintptr_t>(fake(0))) /
                                          page() +
                                      p;
            REQUIRE(index < spanned);
            CHECK(owner[index] == -1);
            owner[index] = static_cast<int>(t);
          }
      CHECK(std::count(owner.begin(), owner.end(), -1) == 0);
    }
  }
}

TEST_CASE("plan and locality reject what does not fit", "[plan]") {
  CHECK_THROWS_AS(plan_for_schedule(fake(0), 10 * page(), {3, 1, 0}, {0}), std::invalid_argument);
  CHECK_THROWS_AS(plan_for_schedule(fake(0), 4 * page(), {4, 2, 0}, {0}), std::invalid_argument);
  CHECK_THROWS_AS(plan_for_schedule(fake(0), 4 * page(), {4, 0, 0}, {}), std::invalid_argument);
  CHECK_THROWS_AS(plan_for_schedule(fake(0), 4 * page(), {4, 1, 0}, {0}, page() / 2),
                  std::invalid_argument);
  CHECK_THROWS_AS(plan_for_schedule(fake(0), 4 * page(), {0, 1, 0}, {0}), std::invalid_argument);
  CHECK(plan_for_schedule(fake(0), 0, {0, 1, 0}, {0}).runs[0].empty());
  CHECK_THROWS_AS(numamove::openmp::locality_of(fake(0), 4 * page(), {4, 1, 0}, {0}, {0, 0, 0}),
                  std::invalid_argument);
}

TEST_CASE("locality_of counts each thread's bytes by the node of their page", "[plan]") {
  // 8 pages, 2 threads on nodes 0 and 1; thread 0's pages are on 0, 0, 1, 0 and thread 1's
  // on 1, 1, -ENOENT, 1.
  const std::vector<int> status{0, 0, 1, 0, 1, 1, -ENOENT, 1};
  const auto local = numamove::openmp::locality_of(fake(0), 8 * page(), {8, 2, 0}, {0, 1}, status);
  REQUIRE(local.size() == 2);
  CHECK(local[0].thread == 0);
  CHECK(local[0].node == 0);
  CHECK(local[0].bytes == 4 * page());
  CHECK(local[0].local_bytes == 3 * page());
  CHECK(local[0].fraction() == Approx(0.75));
  CHECK(local[0].bytes_on.at(1) == page());
  CHECK(local[1].local_bytes == 3 * page());
  CHECK(local[1].bytes_on.at(-ENOENT) == page());
  // Partial pages count by the bytes of the chunk in them, not whole pages.
  const auto* begin = static_cast<const char*>(fake(0)) + page() / 2;
  const auto half = numamove::openmp::locality_of(begin, 2 * page(), {2, 2, 0}, {0, 1}, {0, 1, 1});
  CHECK(half[0].bytes == page());
  CHECK(half[0].local_bytes == page() / 2);
  CHECK(half[1].local_bytes == page());
}
