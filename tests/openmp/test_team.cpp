// place_for_schedule, follow_threads, locality_for_schedule and team_bindings on this machine:
// what they report, that they keep addresses and contents, and that the kernel agrees.
#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

#include <numamove/numamove.hpp>
#include <numamove/openmp.hpp>

#include "omp_support.hpp"
#include "support/catch.hpp"
#include "support/pages.hpp"
#include "support/patterns.hpp"

using numamove::openmp::movers;
using numamove::openmp::static_schedule;
using numamove_test::home;
using numamove_test::mapping;
using numamove_test::page;

namespace {
const int team = 2;
}  // namespace

TEST_CASE("team_bindings reports each thread's place, mask and node", "[team]") {
  const auto bindings = numamove::openmp::team_bindings(team);
  REQUIRE(bindings.size() == team);
  for (int t = 0; t < team; ++t) {
    const auto& b = bindings[static_cast<std::size_t>(t)];
    CHECK(b.thread == t);
    CHECK(b.node == home);
    CHECK(b.pinned);
    CHECK(std::find(b.cpus.begin(), b.cpus.end(), b.cpu) != b.cpus.end());
  }
  if (omp_get_proc_bind() == omp_proc_bind_false || omp_get_num_places() < team) {
    WARN(
        "place checks skipped: the threads are bound to no places (ctest sets OMP_PLACES=threads "
        "OMP_PROC_BIND=close; run with those to check them)");
    return;
  }
  for (int t = 0; t < team; ++t) {
    const auto& b = bindings[static_cast<std::size_t>(t)];
    CHECK(b.place == t);
    std::vector<int> place(static_cast<std::size_t>(omp_get_place_num_procs(t)));
    omp_get_place_proc_ids(t, place.data());
    std::sort(place.begin(), place.end());
    CHECK(b.cpus == place);
  }
  // proc_bind(primary) puts every thread on the primary thread's place.
  for (const auto& b : numamove::openmp::team_bindings(team, numamove::openmp::proc_bind::primary))
    CHECK(b.place == bindings[0].place);
  const auto spread = numamove::openmp::team_bindings(team, numamove::openmp::proc_bind::spread);
  CHECK(spread[0].place != spread[1].place);
}

TEST_CASE("place_for_schedule gives fresh memory pages on each thread's node", "[team]") {
  mapping m(64);
  auto* words = reinterpret_cast<std::uint64_t*>(m.data);
  const std::size_t count = m.bytes / sizeof(std::uint64_t);
  const static_schedule rows{64, team, 0};
  const auto r = numamove::openmp::place_for_schedule(words, count, rows);
  CHECK(r);
  CHECK(r.used == numamove::backend::kernel);
  CHECK(r.granule == page());
  REQUIRE(r.threads.size() == team);
  for (const auto& t : r.threads) {
    CHECK(t.pages == 32);
    CHECK(t.binding.node == home);
    CHECK(t.already_local == 32);  // first touch by the thread itself placed them
    CHECK(t.moved == 0);
    CHECK(t.not_present == 0);
    CHECK_FALSE(t.error);
  }
  CHECK(numamove_test::kernel_query(m.data, 64) == std::vector<int>(64, home));
  CHECK(std::all_of(words, words + count, [](std::uint64_t w) { return w == 0; }));
}

TEST_CASE("place_for_schedule keeps addresses and contents", "[team]") {
  numamove::vector<double> grid(8 * 1024);  // 16 pages, 16 iterations of one page each
  for (std::size_t i = 0; i < grid.size(); ++i) grid[i] = static_cast<double>(i) * 0.5;
  const double* before = grid.data();
  const auto r = numamove::openmp::place_for_schedule(grid.data(), grid.size(), {16, team, 1});
  CHECK(r);
  CHECK(grid.data() == before);
  for (std::size_t i = 0; i < grid.size(); ++i) REQUIRE(grid[i] == static_cast<double>(i) * 0.5);
  // schedule(static, 1): thread t has the even or the odd pages.
  CHECK(r.threads[0].pages == 8);
  CHECK(r.threads[1].pages == 8);
}

TEST_CASE("follow_threads after placement finds everything local and moves nothing", "[team]") {
  mapping m(32);
  m.touch(0, 32);
  const static_schedule s{32, team, 0};
  REQUIRE(numamove::openmp::place_for_schedule(m.data, m.bytes, s));
  numamove::openmp::team_options options;
  options.moved_by = GENERATE(movers::caller, movers::team);
  const auto r = numamove::openmp::follow_threads(m.data, m.bytes, s, options);
  CHECK(r);
  CHECK(r.moved_by == options.moved_by);
  CHECK(r.moved() == 0);
  CHECK(r.already_local() == 32);
  CHECK(r.bytes() == 0);
  const auto report = numamove::openmp::locality_for_schedule(m.data, m.bytes, s);
  REQUIRE(report.threads.size() == team);
  const auto kernel = numamove_test::kernel_locality(m.data, m.bytes, s, {home, home});
  for (std::size_t t = 0; t < team; ++t) {
    CHECK(report.threads[t].fraction() == 1.0);
    CHECK(report.threads[t].bytes == 16 * page());
    CHECK(report.threads[t].bytes_on == kernel[t].bytes_on);
  }
  CHECK(report.fraction() == 1.0);
}

TEST_CASE("follow_threads leaves pages never touched untouched", "[team]") {
  mapping m(16);
  m.touch(0, 8);
  numamove::openmp::team_options options;
  options.moved_by = GENERATE(movers::caller, movers::team);
  const auto r = numamove::openmp::follow_threads(m.data, m.bytes, {16, team, 0}, options);
  CHECK(r.threads[0].already_local == 8);
  CHECK(r.threads[1].not_present == 8);
  const auto status = numamove_test::kernel_query(m.at_page(8), 8);
  CHECK(std::none_of(status.begin(), status.end(), [](int s) { return s >= 0; }));
  const auto report = numamove::openmp::locality_for_schedule(m.data, m.bytes, {16, team, 0});
  CHECK(report.threads[1].fraction() == 0.0);
  CHECK(report.threads[1].bytes_on.at(-ENOENT) == 8 * page());
}

TEST_CASE("follow_threads moves every thread's pages, by the caller in one call or by the team",
          "[team]") {
  // force copies pages onto the node they are on (the userspace path), so one node moves them.
  mapping m(32);
  numamove_test::fill(m.data, m.bytes);
  const char* before = m.data;
  numamove::openmp::team_options options;
  options.migrate.force = true;
  options.moved_by = GENERATE(movers::caller, movers::team);
  const auto r = numamove::openmp::follow_threads(m.data, m.bytes, {32, team, 0}, options);
  CHECK(r);
  CHECK(r.moved_by == options.moved_by);
  CHECK(r.used == numamove::backend::userspace);
  for (const auto& thread : r.threads) {
    INFO("thread " << thread.binding.thread);
    CHECK(thread.pages == 16);
    CHECK(thread.moved == 16);
    CHECK(thread.already_local == 0);
    CHECK(thread.bytes == 16 * page());
    CHECK(thread.elapsed.count() > 0);
  }
  CHECK(m.data == before);
  CHECK(numamove_test::intact(m.data, m.bytes));
  const auto status = numamove_test::kernel_query(m.data, 32);
  CHECK(std::all_of(status.begin(), status.end(), [](int node) { return node == home; }));
}

TEST_CASE(
    "automatic movers: the caller for small data, every thread from parallel_move_min_bytes on",
    "[team]") {
  using numamove::detail::openmp::movers_for;
  const std::size_t step = numamove::parallel_move_min_bytes;
  CHECK(movers_for(movers::automatic, 4 * step - 1, 4) == movers::caller);
  CHECK(movers_for(movers::automatic, 4 * step, 4) == movers::team);
  CHECK(movers_for(movers::automatic, 8 * step, 1) == movers::caller);  // no team to share with
  CHECK(movers_for(movers::team, 0, 4) == movers::team);
  CHECK(movers_for(movers::caller, 8 * step, 4) == movers::caller);
}

TEST_CASE("place_for_schedule moves but does not write a read-only mapping", "[team]") {
  mapping m(8);
  m.touch(0, 4);
  REQUIRE(::mprotect(m.data, m.bytes, PROT_READ) == 0);
  const auto r = numamove::openmp::place_for_schedule(m.data, m.bytes, {8, team, 0});
  CHECK(r.threads[0].already_local == 4);
  CHECK(r.threads[1].not_present == 4);
  REQUIRE(::mprotect(m.data, m.bytes, PROT_READ | PROT_WRITE) == 0);
}

TEST_CASE("place_for_schedule gives out huge pages whole where THPs may back the data", "[team]") {
  const std::size_t huge = numamove::detail::thp_size();
  const numamove_test::aligned_mapping m(huge, huge);
  char* aligned = m.data;
  const std::size_t bytes = huge;
  if (::madvise(aligned, bytes, MADV_HUGEPAGE) != 0) {
    WARN("skipped: madvise(MADV_HUGEPAGE) failed (errno " << errno << "): no THP here");
    return;
  }
  const auto r = numamove::openmp::place_for_schedule(aligned, bytes, {2, team, 0});
  if (numamove::detail::read_text("/sys/kernel/mm/transparent_hugepage/enabled").find("[never]") !=
      std::string::npos) {
    CHECK(r.granule == page());
    return;
  }
  CHECK(r.granule == huge);
  // One huge page, two threads: the thread whose half holds its middle gets all of it.
  CHECK(r.threads[0].pages + r.threads[1].pages == huge / page());
  CHECK((r.threads[0].pages == 0 || r.threads[1].pages == 0));
}

TEST_CASE("follow_threads asks for the granule only where a huge page may span two threads' nodes",
          "[team]") {
  using numamove::detail::openmp::may_split_huge_page;
  const numamove::backend path = numamove::detail::path_for({});
  const mapping m(8);
  const auto plan = [&](const std::vector<int>& nodes) {
    return numamove::openmp::plan_for_schedule(m.data, m.bytes, {8, 2, 0}, nodes);
  };
  // Both threads bound for one node: a huge page over their boundary moves to it whole.
  CHECK_FALSE(may_split_huge_page(plan({0, 0}), path));
  // Bound for two nodes (the plan is not checked against the machine's), the pages beside the
  // boundary (3 and 4) not present, then one of them: no huge page holds them.
  CHECK_FALSE(may_split_huge_page(plan({0, 1}), path));
  m.touch(4, 1);
  CHECK_FALSE(may_split_huge_page(plan({0, 1}), path));
  // Both present on one node: one huge page may hold them.
  m.touch(3, 1);
  CHECK(may_split_huge_page(plan({0, 1}), path));
}

TEST_CASE("follow_threads splits a THP between threads on one node: no huge page goes to two nodes",
          "[team]") {
  const std::size_t huge = numamove::detail::thp_size();
  const numamove_test::aligned_mapping m(2 * huge, huge);
  if (::madvise(m.data, 2 * huge, MADV_NOHUGEPAGE) != 0) {
    WARN("skipped: madvise(MADV_NOHUGEPAGE) failed (errno " << errno << "): no THP here");
    return;
  }
  // The second huge page's worth: base pages, written before the mapping asked for THPs.
  std::memset(m.data + huge, 1, huge);
  REQUIRE(::madvise(m.data, 2 * huge, MADV_HUGEPAGE) == 0);
  std::memset(m.data, 2, huge);  // the first: a THP, where the kernel finds one
  const std::vector<numamove::detail::mapping> maps = numamove::detail::read_mappings(0);
  const numamove::detail::mapping* listed =
      numamove::detail::find_mapping(maps, reinterpret_cast<std::uintptr_t>(m.data));
  REQUIRE(listed != nullptr);
  if (listed->anon_huge_bytes != huge) {
    WARN("skipped: the kernel backed the first huge page with " << listed->anon_huge_bytes
                                                                << " bytes of THP, not one THP");
    return;
  }
  const std::vector<int> nodes = numamove_test::nodes_of(numamove::openmp::team_bindings(team));
  if (std::count(nodes.begin(), nodes.end(), nodes.front()) != team) {
    WARN("skipped: needs a team on one node (tests/openmp/test_multinode.cpp covers two)");
    return;
  }
  // Each thread gets its half of the THP: it is already on their node, and stays whole there.
  const auto with_thp = numamove::openmp::follow_threads(m.data, huge, {2, team, 0});
  CHECK(with_thp.granule == page());
  CHECK(with_thp.threads[0].pages == huge / page() / 2);
  CHECK(with_thp.threads[0].already_local == huge / page() / 2);
  CHECK(with_thp.threads[1].already_local == huge / page() / 2);
  CHECK(with_thp.moved() == 0);
  // place_for_schedule() places pages not yet there, which THPs may back: the advice decides.
  const auto placed = numamove::openmp::place_for_schedule(m.data + huge, huge, {2, team, 0});
  CHECK(placed.granule == huge);
}

namespace {
/// follow_threads() with movers::caller, called again after ever longer pauses until it reuses
/// the bindings it learned: each call that runs a region restarts the team's spinning, and
/// only a sleeping team is left asleep. Gives up after about 6 s.
numamove::openmp::team_migration follow_once_asleep(const mapping& m,
                                                    const static_schedule& s,
                                                    const numamove::openmp::team_options& options) {
  auto r = numamove::openmp::follow_threads(m.data, m.bytes, s, options);
  for (int pause_ms = 50; !r.bindings_reused && pause_ms <= 3200; pause_ms *= 2) {
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
    r = numamove::openmp::follow_threads(m.data, m.bytes, s, options);
  }
  return r;
}

/// The kernel thread id of each thread of a team of `threads`, bound as the environment says.
std::vector<pid_t> team_thread_ids(int threads) {
  std::vector<pid_t> ids(static_cast<std::size_t>(threads));
#pragma omp parallel num_threads(threads)
  ids[static_cast<std::size_t>(omp_get_thread_num())] = numamove::detail::this_thread_id();
  return ids;
}
}  // namespace

TEST_CASE("follow_threads reuses the bindings it learned while the team sleeps", "[team]") {
  mapping m(32);
  m.touch(0, 32);
  const static_schedule s{32, team, 0};
  numamove::openmp::team_options options;
  options.moved_by = movers::caller;
  const auto learned = numamove::openmp::team_bindings(team);
  const auto r = follow_once_asleep(m, s, options);
  REQUIRE(r.bindings_reused);
  CHECK(r);
  CHECK(r.already_local() == 32);
  CHECK(r.moved() == 0);
  for (std::size_t t = 0; t < team; ++t) {
    const auto& b = r.threads[t].binding;
    INFO("thread " << t);
    CHECK(b.thread == learned[t].thread);
    CHECK(b.place == learned[t].place);
    CHECK(b.cpus == learned[t].cpus);
    CHECK(b.node == learned[t].node);
    CHECK((b.cpu == -1 || std::count(b.cpus.begin(), b.cpus.end(), b.cpu) == 1));
    if (b.cpus.size() == 1) CHECK(b.cpu == b.cpus[0]);
  }
}

TEST_CASE("follow_threads sees a sleeping thread re-pinned, and learns another proc_bind's "
          "bindings in a region",
          "[team]") {
  const auto bound = numamove::openmp::team_bindings(team);
  if (bound[1].cpus.size() != 1 || bound[0].cpus == bound[1].cpus) {
    WARN("skipped: needs 2 CPUs and OMP_PLACES=threads OMP_PROC_BIND=close (as ctest runs it)");
    return;
  }
  mapping m(32);
  m.touch(0, 32);
  const static_schedule s{32, team, 0};
  numamove::openmp::team_options options;
  options.moved_by = movers::caller;
  const std::vector<pid_t> ids = team_thread_ids(team);
  const int other = bound[0].cpus[0];  // thread 1 goes where the caller runs
  REQUIRE(follow_once_asleep(m, s, options).bindings_reused);

  SECTION("a thread re-pinned while it sleeps, from outside any region") {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(other, &set);
    REQUIRE(::sched_setaffinity(ids[1], sizeof set, &set) == 0);
    const auto r = numamove::openmp::follow_threads(m.data, m.bytes, s, options);
    CHECK(r.bindings_reused);  // still asleep: read from the kernel
    CHECK(r.threads[1].binding.cpus == std::vector<int>{other});
    CHECK(r.threads[1].binding.cpu == other);  // the one CPU of its mask
    CHECK(r.threads[1].binding.place == bound[1].place);  // the runtime's place, as a region says
    CPU_ZERO(&set);
    CPU_SET(bound[1].cpus[0], &set);
    REQUIRE(::sched_setaffinity(ids[1], sizeof set, &set) == 0);
  }
  SECTION("another proc_bind") {
    options.bind = numamove::openmp::proc_bind::primary;
    const auto r = numamove::openmp::follow_threads(m.data, m.bytes, s, options);
    CHECK_FALSE(r.bindings_reused);
    CHECK(r.threads[1].binding.cpus == r.threads[0].binding.cpus);
  }
}

TEST_CASE("place_for_schedule and follow_threads reject schedules that do not fit", "[team]") {
  mapping m(4);
  CHECK_THROWS_AS(numamove::openmp::place_for_schedule(m.data, m.bytes, {3, team, 0}),
                  std::invalid_argument);
  CHECK_THROWS_AS(numamove::openmp::follow_threads(m.data, m.bytes, {4, 0, 0}),
                  std::invalid_argument);
  CHECK_THROWS_AS(numamove::openmp::team_bindings(0), std::invalid_argument);
  // Inside a parallel region (nesting off) the runtime gives a team of one.
  bool threw = false;
#pragma omp parallel num_threads(2)
#pragma omp single
  {
    try {
      numamove::openmp::follow_threads(m.data, m.bytes, {4, team, 0});
    } catch (const std::runtime_error&) {
      threw = true;
    }
  }
  CHECK(threw);
}
