// NumaSpace::for_range: pages placed for the threads of the OpenMP RangePolicy that computes
// on the View (Kokkos 4 with the OpenMP backend).
#include "kokkos_support.hpp"

#ifdef NUMAMOVE_KOKKOS_THREAD_PLACEMENT
#include <omp.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <set>
#include <vector>

using namespace numamove_test;
using policy = Kokkos::RangePolicy<Kokkos::OpenMP>;

namespace {

/// The thread Kokkos runs each iteration of `p` on, iteration begin() first, in a loop of `kind`.
std::vector<int> threads_of_iterations(const policy& p, NumaSpace::loop kind) {
  Kokkos::View<int*, Kokkos::HostSpace> owner("owner",
                                              static_cast<std::size_t>(p.end() - p.begin()));
  const auto begin = p.begin();
  if (kind == NumaSpace::loop::parallel_for) {
    Kokkos::parallel_for(
        "who", p,
        KOKKOS_LAMBDA(const policy::member_type i) { owner(i - begin) = omp_get_thread_num(); });
  } else {
    int sum = 0;
    Kokkos::parallel_reduce(
        "who", p,
        KOKKOS_LAMBDA(const policy::member_type i, int& s) {
          owner(i - begin) = omp_get_thread_num();
          ++s;
        },
        sum);
  }
  Kokkos::fence();
  return std::vector<int>(owner.data(), owner.data() + owner.size());
}

const NumaSpace::loop loops[] = {NumaSpace::loop::parallel_for, NumaSpace::loop::parallel_reduce};

}  // namespace

TEST_CASE("for_range's schedule is the iteration-to-thread map Kokkos' OpenMP backend runs",
          "[kokkos][threads]") {
  const int threads = Kokkos::OpenMP().concurrency();
  INFO("threads " << threads);
  for (const policy& p : {policy(0, 1000), policy(5, 1005), policy(0, 1000, Kokkos::ChunkSize(7)),
                          policy(0, 300000), policy(0, 3)}) {
    for (const NumaSpace::loop kind : loops) {
      INFO("policy [" << p.begin() << ", " << p.end() << ") chunk " << p.chunk_size() << " loop "
                      << static_cast<int>(kind));
      const NumaSpace space = NumaSpace::for_range(p, kind);
      REQUIRE(space.schedule() != nullptr);
      const numamove::openmp::static_schedule& s = *space.schedule();
      CHECK(s.threads == threads);
      CHECK(s.iterations == static_cast<std::size_t>(p.end() - p.begin()));
      const std::vector<int> ran = threads_of_iterations(p, kind);
      std::size_t mismatches = 0;
      for (std::size_t i = 0; i < ran.size(); ++i) mismatches += ran[i] != s.thread_of(i) ? 1 : 0;
      CHECK(mismatches == 0);
    }
  }
  CHECK(NumaSpace::for_range(policy(4, 4)).schedule() == nullptr);  // no iterations: first touch
  CHECK(NumaSpace::for_range(policy(0, 10)) == NumaSpace::for_range(policy(0, 10)));
  CHECK(NumaSpace::for_range(policy(0, 10)) != NumaSpace::for_range(policy(0, 11)));
  CHECK(NumaSpace::for_range(policy(0, 10)).where() == numamove::placement::first_touch());
}

namespace {

/// The node of each thread of a team of Kokkos::OpenMP's concurrency (-1: a CPU-only node).
std::vector<int> thread_nodes() {
  std::vector<int> nodes;
  for (const numamove::openmp::thread_binding& b :
       numamove::openmp::team_bindings(Kokkos::OpenMP().concurrency()))
    nodes.push_back(b.node);
  return nodes;
}

/// What numamove::kokkos::locate() should say for each page of the View `v` of a for_range
/// space right after allocation: the node of the thread the plan gives the page to, -ENOENT
/// for a thread on a node without memory (it leaves its pages untouched).
template <class View>
std::vector<int> planned_statuses(const View& v, const NumaSpace& space,
                                  const std::vector<int>& nodes) {
  const numamove::openmp::static_schedule& s = *space.schedule();
  const std::size_t bytes = v.span() * sizeof(typename View::value_type);
  const std::size_t slice = (bytes + s.iterations - 1) / s.iterations;
  const numamove::openmp::schedule_plan plan =
      numamove::openmp::plan_for_schedule(v.data(), slice * s.iterations, s, nodes);
  const auto first = reinterpret_cast<std::uintptr_t>(first_page_of(v));
  std::vector<int> expected(pages_of(v), INT32_MIN);
  for (std::size_t t = 0; t < plan.runs.size(); ++t)
    for (const numamove::openmp::page_run& run : plan.runs[t])
      for (std::size_t i = 0; i < run.pages; ++i) {
        const std::size_t page =
            (reinterpret_cast<std::uintptr_t>(run.first) - first) / numamove_test::page() + i;
        if (page < expected.size()) expected[page] = nodes[t] >= 0 ? nodes[t] : -ENOENT;
      }
  return expected;
}

}  // namespace

TEST_CASE("a for_range View's pages are touched by the loop's threads before Kokkos sees them",
          "[kokkos][threads]") {
  const std::vector<int> nodes = thread_nodes();
  INFO("thread nodes " << numamove_test::to_text(nodes));
  const std::size_t rows = 40;
  const NumaSpace space = NumaSpace::for_range(policy(0, static_cast<std::int64_t>(rows)));
  grid a(Kokkos::view_alloc(space, "a", Kokkos::WithoutInitializing), rows, row_length());
  CHECK(numamove::kokkos::locate(a) == planned_statuses(a, space, nodes));
  CHECK(numamove::kokkos::space_of(a) == space);
  // A size that does not split evenly over the iterations: every page placed all the same.
  Kokkos::View<double*, NumaSpace> odd(
      Kokkos::view_alloc(space, "odd", Kokkos::WithoutInitializing), 3 * row_length() + 5);
  CHECK(numamove::kokkos::locate(odd) == planned_statuses(odd, space, nodes));
}

TEST_CASE("for_range leaves the pages of a thread on a CPU-only node to first touch",
          "[kokkos][threads][multinode]") {
  const std::vector<int> nodes = thread_nodes();
  INFO("thread nodes " << numamove_test::to_text(nodes));
  NUMAMOVE_SKIP_UNLESS(std::count(nodes.begin(), nodes.end(), -1) > 0, "cpu-only-node",
                       "no OpenMP thread runs on a node without memory");
  const std::size_t rows = 16 * nodes.size();
  const NumaSpace space = NumaSpace::for_range(policy(0, static_cast<std::int64_t>(rows)));
  grid a(Kokkos::view_alloc(space, "a"), rows,
         row_length());  // Kokkos' initialization touches the rest
  const std::vector<int> planned = planned_statuses(a, space, nodes);
  const std::vector<int> got = numamove::kokkos::locate(a);
  const std::vector<int> memory = numamove::topology::system().nodes();
  for (std::size_t page = 0; page < got.size(); ++page) {
    INFO("page " << page << " planned " << planned[page]);
    if (planned[page] >= 0)
      CHECK(got[page] == planned[page]);
    else
      CHECK(std::find(memory.begin(), memory.end(), got[page]) != memory.end());
  }
}

TEST_CASE("for_range puts each thread's rows on the thread's node, whatever initializes the View",
          "[kokkos][threads][multinode]") {
  const int threads = Kokkos::OpenMP().concurrency();
  const std::vector<int> nodes = thread_nodes();
  const std::set<int> distinct(nodes.begin(), nodes.end());
  INFO("thread nodes " << numamove_test::to_text(nodes));
  NUMAMOVE_SKIP_UNLESS(distinct.size() >= 2 && distinct.count(-1) == 0, "cpu-memory-nodes",
                       "the OpenMP threads are not bound to two or more nodes with memory "
                       "(OMP_PLACES, OMP_PROC_BIND)");
  const std::size_t rows = 24 * static_cast<std::size_t>(threads) + 5;
  for (const policy& p : {policy(0, static_cast<std::int64_t>(rows)),
                          policy(0, static_cast<std::int64_t>(rows), Kokkos::ChunkSize(4))}) {
    for (const NumaSpace::loop kind : loops) {
      INFO("chunk " << p.chunk_size() << " loop " << static_cast<int>(kind));
      const NumaSpace space = NumaSpace::for_range(p, kind);
      grid a(Kokkos::view_alloc(space, "a"), rows, row_length());  // Kokkos initializes it
      const std::vector<int> got = kernel_nodes_of(a);
      // Row r starts 128 bytes into page r; the plan gives page p to the thread of row p (the
      // last page, 128 bytes of the last row, to that row's thread).
      std::vector<int> expected(got.size());
      for (std::size_t page = 0; page < got.size(); ++page)
        expected[page] =
            nodes[static_cast<std::size_t>(space.schedule()->thread_of(std::min(page, rows - 1)))];
      CHECK(got == expected);
      // The loop itself finds every row it works on local.
      Kokkos::View<int*, Kokkos::HostSpace> remote("remote", rows);
      const auto row_is_local = KOKKOS_LAMBDA(const policy::member_type r) {
        int status = 0;
        void* row = &a(static_cast<std::size_t>(r), row_length() / 2);
        numamove::move_pages(0, 1, &row, nullptr, &status, 0);
        return status == nodes[static_cast<std::size_t>(omp_get_thread_num())];
      };
      int remote_rows = 0;
      if (kind == NumaSpace::loop::parallel_for) {
        Kokkos::parallel_for(
            "local rows", p,
            KOKKOS_LAMBDA(const policy::member_type r) { remote(r) = row_is_local(r) ? 0 : 1; });
        Kokkos::fence();
        for (std::size_t r = 0; r < rows; ++r) remote_rows += remote(r);
      } else {
        Kokkos::parallel_reduce(
            "local rows", p,
            KOKKOS_LAMBDA(const policy::member_type r, int& count) {
              count += row_is_local(r) ? 0 : 1;
            },
            remote_rows);
      }
      CHECK(remote_rows == 0);
    }
  }
}
#endif
