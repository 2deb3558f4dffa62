// Data follows threads across real nodes (the tests/vm guests): after placement and after each
// binding change and follow call, every thread's chunk is on its node as the kernel reports it.
#include <omp.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <numamove/capabilities.hpp>
#include <numamove/openmp.hpp>

#include "multinode/guest_support.hpp"
#include "omp_support.hpp"
#include "support/catch.hpp"
#include "support/pages.hpp"
#include "support/patterns.hpp"
#include "support/seccomp_child.hpp"

using numamove::openmp::static_schedule;
using numamove_test::fill;
using numamove_test::intact;
using numamove_test::kernel_locality;
using numamove_test::mapping;
using numamove_test::page;

namespace {

// One thread per node, at most 4 (the largest guest has 4 CPUs).
std::vector<int> one_thread_per_node() {
  std::vector<int> nodes;
  for (const int node : numamove::topology::system().nodes())
    if (!numamove::topology::system().cpus_of(node).empty() && nodes.size() < 4)
      nodes.push_back(node);
  return nodes;
}

// A mapping of `pages` pages out of automatic NUMA balancing's way, so that only the library
// moves its pages.
struct test_mapping : mapping {
  explicit test_mapping(std::size_t pages) : mapping(pages) {
    REQUIRE(numamove_test::keep_from_numa_balancing(data, bytes));
  }
};

// While it lives, the process gets no new THP and khugepaged leaves its memory alone
// (PR_SET_THP_DISABLE); THPs it has stay.
class thp_off {
 public:
  thp_off() : off_(::prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0) {}
  ~thp_off() {
    if (off_) ::prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0);
  }
  thp_off(const thp_off&) = delete;
  thp_off& operator=(const thp_off&) = delete;
  bool off() const { return off_; }

 private:
  bool off_;
};

// Every thread's chunk entirely on its node, by the kernel's query and by the library's report.
void check_all_local(const mapping& m, const static_schedule& s, const std::vector<int>& nodes,
                     numamove::openmp::proc_bind bind = numamove::openmp::proc_bind::inherit) {
  const auto kernel = kernel_locality(m.data, m.bytes, s, nodes);
  const auto report = numamove::openmp::locality_for_schedule(m.data, m.bytes, s, bind);
  CHECK(numamove_test::nodes_of(report.bindings) == nodes);
  for (std::size_t t = 0; t < nodes.size(); ++t) {
    INFO("thread " << t << " on node " << nodes[t]);
    CHECK(kernel[t].fraction() == 1.0);
    CHECK(kernel[t].bytes == m.bytes / nodes.size());
    CHECK(report.threads[t].fraction() == 1.0);
    CHECK(report.threads[t].bytes_on == kernel[t].bytes_on);
  }
}

}  // namespace

TEST_CASE("placement puts each pinned thread's chunk on its node", "[multinode]") {
  const std::vector<int> nodes = one_thread_per_node();
  NUMAMOVE_SKIP_UNLESS(nodes.size() >= 2, "cpu-memory-nodes",
                       "needs two nodes with memory and CPUs, a thread on each");
  const auto threads = static_cast<int>(nodes.size());
  test_mapping m(64 * nodes.size());
  fill(m.data, m.bytes);  // by this thread: every page starts on its node
  const int start = numamove_test::kernel_query(m.data, 1)[0];
  const char* before = m.data;
  const numamove_test::team_pin pin(nodes);
  REQUIRE(pin.pinned());
  const static_schedule s{64 * nodes.size(), threads, 0};
  numamove::openmp::team_options options;
  options.moved_by = GENERATE(numamove::openmp::movers::caller, numamove::openmp::movers::team);
  const auto r = numamove::openmp::place_for_schedule(m.data, m.bytes, s, options);
  CHECK(r);
  CHECK(r.moved_by == options.moved_by);
  CHECK(m.data == before);
  CHECK(intact(m.data, m.bytes));
  for (std::size_t t = 0; t < nodes.size(); ++t) {
    INFO("thread " << t);
    CHECK(r.threads[t].binding.node == nodes[t]);
    CHECK(r.threads[t].binding.pinned);
    CHECK(r.threads[t].pages == 64);
    CHECK(r.threads[t].moved + r.threads[t].already_local == 64);
    CHECK(r.threads[t].moved == (nodes[t] == start ? 0 : 64));
  }
  check_all_local(m, s, nodes);
}

TEST_CASE("follow_threads after a re-pin moves only the chunks whose thread changed node",
          "[multinode]") {
  const std::vector<int> nodes = one_thread_per_node();
  NUMAMOVE_SKIP_UNLESS(nodes.size() >= 2, "cpu-memory-nodes",
                       "needs two nodes with memory and CPUs, a thread on each");
  const auto threads = static_cast<int>(nodes.size());
  test_mapping m(64 * nodes.size());
  fill(m.data, m.bytes);
  const numamove_test::team_pin pin(nodes);
  REQUIRE(pin.pinned());
  const static_schedule s{nodes.size(), threads, 0};
  REQUIRE(numamove::openmp::place_for_schedule(m.data, m.bytes, s));
  check_all_local(m, s, nodes);

  // Odd threads move one node over; even threads stay.
  std::vector<int> moved_to = nodes;
  for (std::size_t t = 1; t < nodes.size(); t += 2) moved_to[t] = nodes[(t + 1) % nodes.size()];
  REQUIRE(pin.repin(moved_to));
  numamove::openmp::team_options options;
  options.moved_by = GENERATE(numamove::openmp::movers::caller, numamove::openmp::movers::team);
  const auto r = numamove::openmp::follow_threads(m.data, m.bytes, s, options);
  CHECK(r);
  CHECK(r.moved_by == options.moved_by);
  for (std::size_t t = 0; t < nodes.size(); ++t) {
    INFO("thread " << t << " from node " << nodes[t] << " to " << moved_to[t]);
    CHECK(r.threads[t].binding.node == moved_to[t]);
    CHECK(r.threads[t].moved == (t % 2 == 1 ? 64 : 0));
    CHECK(r.threads[t].already_local == (t % 2 == 1 ? 0 : 64));
    CHECK(r.threads[t].bytes == r.threads[t].moved * page());
  }
  CHECK(intact(m.data, m.bytes));
  check_all_local(m, s, moved_to);

  // Everyone back: the chunks follow again.
  REQUIRE(pin.repin(nodes));
  CHECK(numamove::openmp::follow_threads(m.data, m.bytes, s, options).moved() ==
        64 * (nodes.size() / 2));
  CHECK(intact(m.data, m.bytes));
  check_all_local(m, s, nodes);
}

TEST_CASE("follow_threads after a proc_bind change follows the threads to their new places",
          "[multinode]") {
  NUMAMOVE_SKIP_UNLESS(one_thread_per_node().size() >= 2, "cpu-memory-nodes",
                       "needs two nodes with memory and CPUs, a place on each");
  const std::vector<std::string> env{"OMP_PLACES=threads", "OMP_PROC_BIND=close"};
  if (!numamove_test::environment_has(env)) {
    // OpenMP reads its binding variables at start-up: run this case again with them set.
    CHECK(numamove_test::rerun_with(env) == 0);
    return;
  }
  using numamove::openmp::proc_bind;
  const static_schedule s{2, 2, 0};
  test_mapping m(128);
  fill(m.data, m.bytes);
  numamove::openmp::team_options close;
  close.bind = proc_bind::close;
  REQUIRE(numamove::openmp::place_for_schedule(m.data, m.bytes, s, close));
  const auto close_nodes =
      numamove_test::nodes_of(numamove::openmp::team_bindings(2, proc_bind::close));
  check_all_local(m, s, close_nodes, proc_bind::close);

  // spread, then primary (every thread on the primary thread's place), then close again.
  for (const proc_bind bind : {proc_bind::spread, proc_bind::primary, proc_bind::close}) {
    const auto before = kernel_locality(m.data, m.bytes, s, {-1, -1});
    numamove::openmp::team_options options;
    options.bind = bind;
    const auto r = numamove::openmp::follow_threads(m.data, m.bytes, s, options);
    CHECK(r);
    const auto nodes = numamove_test::nodes_of(numamove::openmp::team_bindings(2, bind));
    for (std::size_t t = 0; t < 2; ++t) {
      INFO("proc_bind " << static_cast<int>(bind) << " thread " << t << " on node " << nodes[t]);
      CHECK(r.threads[t].binding.node == nodes[t]);
      const bool was_local =
          before[t].bytes_on.count(nodes[t]) != 0 && before[t].bytes_on.at(nodes[t]) == m.bytes / 2;
      CHECK(r.threads[t].moved == (was_local ? 0 : 64));
    }
    CHECK(intact(m.data, m.bytes));
    check_all_local(m, s, nodes, bind);
  }
  CHECK(numamove::openmp::team_bindings(2, proc_bind::primary)[1].node == close_nodes[0]);
  CHECK(close_nodes[0] != close_nodes[1]);
}

TEST_CASE("follow_threads moves a THP spanning two threads' chunks whole, and splits base pages "
          "between them",
          "[multinode]") {
  const std::vector<int> all = one_thread_per_node();
  NUMAMOVE_SKIP_UNLESS(all.size() >= 2, "cpu-memory-nodes",
                       "needs two nodes with memory and CPUs, a thread on each");
  // The primary thread writes the data pinned to nodes[0]: off node 0, which holds the guest's
  // files (a THP there was not always found).
  const std::vector<int> nodes{all[1], all[0]};
  const std::size_t huge = numamove::detail::thp_size();
  const std::size_t half = huge / page() / 2;
  const numamove_test::aligned_mapping m(2 * huge, huge);
  REQUIRE(numamove_test::keep_from_numa_balancing(m.data, 2 * huge));
  const numamove_test::team_pin pin(nodes);
  REQUIRE(pin.pinned());
  // A mapping with the THP advice (all that Linux before 6.7 can tell): its first huge page's
  // worth a THP, its second base pages, written once THPs are off for the process, which also
  // keeps khugepaged from collapsing them (it did within a second in the 4-node guest).
  REQUIRE(::madvise(m.data, 2 * huge, MADV_HUGEPAGE) == 0);
  fill(m.data, huge);
  const thp_off no_more_thp;
  REQUIRE(no_more_thp.off());
  fill(m.data + huge, huge);
  const std::vector<numamove::detail::mapping> maps = numamove::detail::read_mappings(0);
  const numamove::detail::mapping* listed =
      numamove::detail::find_mapping(maps, reinterpret_cast<std::uintptr_t>(m.data));
  REQUIRE(listed != nullptr);
  NUMAMOVE_SKIP_UNLESS(listed->anon_huge_bytes == huge, "thp",
                       "the first huge page is not backed by one THP");
  const static_schedule s{2, 2, 0};

  // The THP holds both threads' halves: it goes whole to the thread holding its middle byte.
  const auto thp = numamove::openmp::follow_threads(m.data, huge, s);
  CHECK(thp);
  CHECK(thp.granule == huge);
  CHECK(thp.threads[0].pages == 0);
  CHECK(thp.threads[1].pages == 2 * half);
  const std::vector<int> thp_nodes = numamove_test::kernel_query(m.data, 2 * half);
  CHECK(std::count(thp_nodes.begin(), thp_nodes.end(), nodes[1]) == static_cast<long>(2 * half));

  // Base pages, each half on its own node: the pages beside the threads' boundary are on two
  // nodes, so no huge page spans it and each thread gets its half, on any kernel.
  char* const base = m.data + huge;
  REQUIRE(numamove::migrate(base, half * page(), nodes[0]));
  REQUIRE(numamove::migrate(base + half * page(), half * page(), nodes[1]));
  REQUIRE(pin.repin({nodes[1], nodes[0]}));
  const auto split = numamove::openmp::follow_threads(base, huge, s);
  CHECK(split);
  CHECK(split.granule == page());
  CHECK(split.threads[0].moved == half);
  CHECK(split.threads[1].moved == half);
  CHECK(numamove_test::kernel_query(base, 1)[0] == nodes[1]);
  CHECK(numamove_test::kernel_query(base + huge - page(), 1)[0] == nodes[0]);
  const auto kernel = kernel_locality(base, huge, s, {nodes[1], nodes[0]});
  CHECK(kernel[0].fraction() == 1.0);
  CHECK(kernel[1].fraction() == 1.0);
  CHECK(intact(m.data, huge));
  CHECK(intact(base, huge));
}

TEST_CASE("next_touch pages land on the node of the thread that touches them", "[multinode]") {
  const std::vector<int> nodes = one_thread_per_node();
  NUMAMOVE_SKIP_UNLESS(nodes.size() >= 2, "cpu-memory-nodes",
                       "needs two nodes with memory and CPUs, a thread on each");
  const auto threads = static_cast<int>(nodes.size());
  const std::size_t per_thread = 16;
  test_mapping m(per_thread * nodes.size());
  fill(m.data, m.bytes);
  const int start = numamove_test::kernel_query(m.data, 1)[0];
  const numamove_test::team_pin pin(nodes);
  REQUIRE(pin.pinned());
  // volatile: the flip and flip back below would otherwise be optimized away, and with them
  // the touches.
  auto* words = reinterpret_cast<volatile std::uint64_t*>(m.data);
  const std::size_t per_page = page() / sizeof(std::uint64_t);
  {
    numamove::openmp::next_touch marked(m.data, m.bytes);
    // Thread t touches its block of pages, flipping and restoring one word of each (a read and
    // two writes, all after the first touch moved the page).
#pragma omp parallel num_threads(threads)
    {
      const auto t = static_cast<std::size_t>(omp_get_thread_num());
      for (std::size_t p = t * per_thread; p < (t + 1) * per_thread; ++p) {
        words[p * per_page + 1] = words[p * per_page + 1] ^ 1;
        words[p * per_page + 1] = words[p * per_page + 1] ^ 1;
      }
    }
    CHECK(marked.armed() == 0);
    CHECK(marked.failed() == 0);
    CHECK(marked.local() == per_thread);  // the block of the thread on the start node
    CHECK(marked.moved() == per_thread * (nodes.size() - 1));
  }
  CHECK(intact(m.data, m.bytes));
  const auto status = numamove_test::kernel_query(m.data, m.bytes / page());
  for (std::size_t p = 0; p < status.size(); ++p) {
    INFO("page " << p);
    CHECK(status[p] == nodes[p / per_thread]);
  }
  CHECK(std::count(nodes.begin(), nodes.end(), start) == 1);
}

TEST_CASE("next_touch: touches of one page from two nodes put it on one of them with every write",
          "[multinode]") {
  const std::vector<int> all = one_thread_per_node();
  NUMAMOVE_SKIP_UNLESS(all.size() >= 2, "cpu-memory-nodes",
                       "needs two nodes with memory and CPUs, a thread on each");
  const std::vector<int> nodes{all[0], all[1]};
  const numamove_test::team_pin pin(nodes);
  REQUIRE(pin.pinned());
  test_mapping m(8);
  constexpr std::uint32_t writes = 500;
  for (int round = 0; round < 5; ++round) {
    std::memset(m.data, 0, m.bytes);
    numamove::openmp::next_touch marked(m.data, m.bytes);
    std::atomic<int> ready{0};
#pragma omp parallel num_threads(2)
    {
      const auto t = static_cast<std::size_t>(omp_get_thread_num());
      ready.fetch_add(1);
      while (ready.load() < 2) {
      }
      auto* counters = reinterpret_cast<std::uint32_t*>(m.data);
      for (std::uint32_t k = 0; k < writes; ++k)
        for (std::size_t p = 0; p < 8; ++p) ++counters[p * page() / sizeof(std::uint32_t) + t];
    }
    CHECK(marked.armed() == 0);
    CHECK(marked.local() + marked.moved() == 8);
    const auto* counters = reinterpret_cast<const std::uint32_t*>(m.data);
    const auto status = numamove_test::kernel_query(m.data, 8);
    for (std::size_t p = 0; p < 8; ++p) {
      INFO("round " << round << " page " << p);
      CHECK((status[p] == nodes[0] || status[p] == nodes[1]));
      CHECK(counters[p * page() / sizeof(std::uint32_t)] == writes);
      CHECK(counters[p * page() / sizeof(std::uint32_t) + 1] == writes);
    }
  }
}

TEST_CASE("next_touch without move_pages: the toucher re-backs each page on its own node",
          "[multinode][userspace]") {
  const std::vector<int> nodes = one_thread_per_node();
  NUMAMOVE_SKIP_UNLESS(nodes.size() >= 2, "cpu-memory-nodes",
                       "needs two nodes with memory and CPUs, a thread on each");
  const std::size_t per_thread = 16;
  const std::size_t pages = per_thread * nodes.size();
  const numamove::topology& machine = numamove::topology::system();
  // Under the Docker-like filter move_pages(2) is refused: next_touch takes the userspace path.
  numamove_test::seccomp_child child([&](numamove_test::child_channel& ch) {
    mapping m(pages);
    fill(m.data, m.bytes);
    {
      numamove::openmp::next_touch marked(m.data, m.bytes);
      std::vector<std::thread> touchers;
      for (std::size_t t = 0; t < nodes.size(); ++t)
        touchers.emplace_back([&, t] {
          cpu_set_t one;
          CPU_ZERO(&one);
          CPU_SET(static_cast<std::size_t>(machine.cpus_of(nodes[t]).front()), &one);
          if (::sched_setaffinity(0, sizeof one, &one) != 0) return;
          auto* words = reinterpret_cast<volatile std::uint64_t*>(m.data);
          const std::size_t per_page = page() / sizeof(std::uint64_t);
          for (std::size_t p = t * per_thread; p < (t + 1) * per_thread; ++p) {
            words[p * per_page + 1] = words[p * per_page + 1] ^ 1;
            words[p * per_page + 1] = words[p * per_page + 1] ^ 1;
          }
        });
      for (std::thread& t : touchers) t.join();
      ch.send(static_cast<int>(numamove::capabilities::of_this_process().automatic()));  // 0
      ch.send(static_cast<std::int64_t>(marked.armed()));                                // 1
      ch.send(static_cast<std::int64_t>(marked.moved()));                                // 2
      ch.send(static_cast<std::int64_t>(marked.failed()));                               // 3
    }
    ch.send(intact(m.data, m.bytes));                  // 4
    ch.send(reinterpret_cast<std::intptr_t>(m.data));  // 5
    ch.wait_for_parent();
    return 0;
  });
  const numamove_test::child_report& r = child.receive(6);
  INFO(r.describe());
  REQUIRE(r.values.size() == 6);
  CHECK(r.values[0] == static_cast<int>(numamove::backend::userspace));
  CHECK(r.values[1] == 0);
  CHECK(r.values[2] == static_cast<std::int64_t>(pages));  // all present: each one re-backed
  CHECK(r.values[3] == 0);
  CHECK(r.values[4] == 1);
  const auto status = numamove_test::kernel_query(
      reinterpret_cast<const void*>(static_cast<std::intptr_t>(r.values[5])), pages, child.pid());
  for (std::size_t p = 0; p < pages; ++p) {
    INFO("page " << p);
    CHECK(status[p] == nodes[p / per_thread]);
  }
  child.proceed();
  CHECK(child.release() == 0);
}

TEST_CASE(
    "a thread on a CPU of a node without memory: ENODEV for its chunk, which stays where it is",
    "[multinode]") {
  const numamove::topology& machine = numamove::topology::system();
  int orphan = -1;  // a CPU that no node with memory claims
  for (int cpu = 0; cpu < static_cast<int>(::sysconf(_SC_NPROCESSORS_CONF)) && orphan < 0; ++cpu)
    if (machine.node_of_cpu(cpu) < 0) orphan = cpu;
  NUMAMOVE_SKIP_UNLESS(orphan >= 0, "cpu-only-node", "every CPU is on a node with memory");
  const std::vector<int> with_cpus = one_thread_per_node();
  REQUIRE(!with_cpus.empty());
  const int near = with_cpus.front();
  const std::vector<int> nodes = machine.nodes();
  const int away = nodes.back() != near ? nodes.back() : nodes.front();
  REQUIRE(away != near);
  test_mapping m(128);
  fill(m.data, m.bytes);
  REQUIRE(numamove::migrate(m.data, m.bytes, away));
  const numamove_test::team_pin pin(std::vector<std::vector<int>>{machine.cpus_of(near), {orphan}});
  REQUIRE(pin.pinned());
  const auto expected = [&](std::size_t p) { return p < 64 ? near : away; };

  const auto r = numamove::openmp::place_for_schedule(m.data, m.bytes, static_schedule{128, 2, 0});
  CHECK_FALSE(r);
  CHECK(r.threads[0].binding.node == near);
  CHECK_FALSE(r.threads[0].error);
  CHECK(r.threads[0].moved == 64);
  CHECK(r.threads[1].binding.node == -1);
  CHECK(r.threads[1].error.value() == ENODEV);
  CHECK(r.threads[1].moved == 0);
  CHECK(intact(m.data, m.bytes));
  auto status = numamove_test::kernel_query(m.data, 128);
  for (std::size_t p = 0; p < 128; ++p) {
    INFO("page " << p);
    CHECK(status[p] == expected(p));
  }

  // next_touch: the orphan's touches leave its pages where they are, and count as failed.
  {
    numamove::openmp::next_touch marked(m.data, m.bytes);
    auto* words = reinterpret_cast<volatile std::uint64_t*>(m.data);
    const std::size_t per_page = page() / sizeof(std::uint64_t);
#pragma omp parallel num_threads(2)
    {
      const auto t = static_cast<std::size_t>(omp_get_thread_num());
      for (std::size_t p = t * 64; p < (t + 1) * 64; ++p)
        words[p * per_page] = words[p * per_page] ^ 0;
    }
    CHECK(marked.armed() == 0);
    CHECK(marked.local() == 64);
    CHECK(marked.failed() == 64);
  }
  CHECK(intact(m.data, m.bytes));
  status = numamove_test::kernel_query(m.data, 128);
  for (std::size_t p = 0; p < 128; ++p) {
    INFO("page " << p);
    CHECK(status[p] == expected(p));
  }
}

TEST_CASE("follow_threads moves pages that automatic NUMA balancing hides from move_pages",
          "[multinode]") {
  // The guests start with balancing off; this case turns it on for itself.
  const numamove_test::numa_balancing_on balancing;
  REQUIRE(balancing.enabled());
  const std::vector<int> nodes = one_thread_per_node();
  NUMAMOVE_SKIP_UNLESS(nodes.size() >= 2, "cpu-memory-nodes",
                       "needs two nodes with memory and CPUs, a thread on each");
  mapping m(64 * nodes.size());  // left to the balancer
  fill(m.data, m.bytes);
  // Keep busy until the balancer samples pages: on Linux 6.1 a query then says -ENOENT for
  // pages the page table has.
  const auto hidden = [&] {
    const auto status = numamove_test::kernel_query(m.data, m.bytes / page());
    std::size_t count = 0;
    for (std::size_t i = 0; i < status.size(); ++i)
      if (status[i] == -ENOENT && numamove_test::present(m.at_page(i))) ++count;
    return count;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(6);
  std::size_t sampled = 0;
  while ((sampled = hidden()) == 0 && std::chrono::steady_clock::now() < deadline) {
    const auto busy = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
    while (std::chrono::steady_clock::now() < busy) {
    }
  }
  if (sampled == 0) {
    WARN(
        "skipped: no page was hidden within 6 s (a kernel where move_pages sees sampled pages, "
        "6.5+)");
    return;
  }
  const numamove_test::team_pin pin(nodes);
  REQUIRE(pin.pinned());
  const static_schedule s{nodes.size(), static_cast<int>(nodes.size()), 0};
  const auto r = numamove::openmp::follow_threads(m.data, m.bytes, s);
  CHECK(r);
  for (std::size_t t = 0; t < nodes.size(); ++t) {
    INFO("thread " << t << " with " << sampled << " pages hidden before the call");
    CHECK(r.threads[t].not_present == 0);
    CHECK(r.threads[t].moved + r.threads[t].already_local == 64);
  }
  CHECK(intact(m.data, m.bytes));
}
