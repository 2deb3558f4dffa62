// The userspace migrator between real (emulated) nodes, in the tests/vm guests. Children run
// under the Docker-like seccomp filter (tests/support/seccomp_child.hpp); the parent checks every
// placement with its own move_pages(2) query of the child's pid. The equivalence run puts the
// same scenarios through backend::kernel and backend::userspace and compares the statuses: only
// the differences docs/semantics.md documents may differ.
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <numamove/numamove.hpp>

#include "guest_support.hpp"
#include "support/seccomp_child.hpp"
#include "unit/test_userspace_support.hpp"

using namespace numamove_test;

namespace {

// `pages` usable pages between two inaccessible ones, so that the usable ones are a mapping of
// their own (numa_maps counts per mapping).
struct fenced {
  explicit fenced(std::size_t pages) : m(pages + 2) {
    ::mprotect(m.data, page(), PROT_NONE);
    ::mprotect(m.at_page(pages + 1), page(), PROT_NONE);
    data = m.at_page(1);
    bytes = pages * page();
  }
  mapping m;
  char* data;
  std::size_t bytes;
};

}  // namespace

TEST_CASE("userspace: migrate between every pair of nodes under the Docker-like filter",
          "[multinode][userspace]") {
  const std::vector<int> nodes = memory_nodes();
  const bool drop = GENERATE(false, true);
  INFO((drop ? "without" : "with")
       << " CAP_SYS_NICE (mbind " << (drop ? "refused" : "allowed") << ")");
  child_options options;
  options.drop_cap_sys_nice = drop;
  constexpr std::size_t pages = 24;
  struct pair_result {
    int from, to;
  };
  std::vector<pair_result> pairs;
  const numamove::topology& t = numamove::topology::system();
  for (const int from : nodes)
    for (const int to : nodes)
      if (from != to && !t.cpus_of(from).empty()) pairs.push_back({from, to});
  seccomp_child child(
      [&](child_channel& ch) {
        for (const pair_result& p : pairs) {
          mapping* m = new mapping(pages);  // kept for the parent
          {
            pin_to_cpu pin(t.cpus_of(p.from).front());
            fill(m->data, 20 * page(), 7 + p.to);  // pages 20-23 never touched
          }
          const numamove::migration_result r = numamove::migrate(m->data, m->bytes, p.to);
          ch.send(reinterpret_cast<std::intptr_t>(m->data));
          ch.send(static_cast<int>(r.used));
          ch.send(r.error.value());
          ch.send(static_cast<std::int64_t>(r.moved));
          ch.send(static_cast<std::int64_t>(r.not_present));
          ch.send(first_mismatch(m->data, 20 * page(), 7 + p.to) == SIZE_MAX);
          ch.send(present(m->at_page(21)));
        }
        ch.wait_for_parent();
        return 0;
      },
      options);
  const child_report& r = child.receive(7 * pairs.size());
  INFO(r.describe());
  REQUIRE(r.values.size() == 7 * pairs.size());
  for (std::size_t k = 0; k < pairs.size(); ++k) {
    const std::int64_t* v = &r.values[7 * k];
    const int to = pairs[k].to;
    INFO("from node " << pairs[k].from << " to node " << to);
    const bool reachable = !drop || !t.cpus_of(to).empty();
    CHECK(v[1] == static_cast<int>(numamove::backend::userspace));
    CHECK(v[5] == 1);  // contents
    CHECK(v[6] == 0);  // untouched pages stay untouched
    const auto* first = reinterpret_cast<const char*>(static_cast<std::intptr_t>(v[0]));
    const std::vector<int> placed = kernel_query(first, 20, child.pid());
    if (reachable) {
      CHECK(v[2] == 0);
      CHECK(v[3] == 20);
      CHECK(v[4] == 4);
      CHECK(placed == std::vector<int>(20, to));
    } else {
      // A node without CPUs where mbind is refused: first touch cannot reach it.
      CHECK(v[2] == EHOSTUNREACH);
      CHECK(placed == std::vector<int>(20, pairs[k].from));
    }
  }
  child.proceed();
  CHECK(child.release() == 0);
}

TEST_CASE(
    "userspace: where the query is refused, numa_maps tells nodes, and a spread mapping is unknown",
    "[multinode][userspace][locate]") {
  const numamove::topology& t = numamove::topology::system();
  const std::vector<int> with_cpus = nodes_with_cpus();
  NUMAMOVE_SKIP_UNLESS(with_cpus.size() >= 2, "cpu-memory-nodes",
                       "needs two nodes with memory and CPUs");
  const int a = with_cpus[0];
  const int b = with_cpus[1];
  seccomp_child child([&](child_channel& ch) {
    fenced one(4);
    fenced spread(4);
    {
      pin_to_cpu pin(t.cpus_of(a).front());
      std::memset(one.data, 1, one.bytes);
      std::memset(spread.data, 2, 2 * page());
    }
    {
      pin_to_cpu pin(t.cpus_of(b).front());
      std::memset(spread.data + 2 * page(), 3, 2 * page());
    }
    const std::vector<int> one_where = numamove::locate(one.data, one.bytes);
    const std::vector<int> spread_where = numamove::locate(spread.data, spread.bytes);
    ch.send(one_where == std::vector<int>(4, a));
    ch.send(spread_where == std::vector<int>(4, numamove::node_unknown));
    const numamove::migration_result r = numamove::migrate(spread.data, spread.bytes, a);
    ch.send(static_cast<std::int64_t>(r.moved));
    ch.send(static_cast<std::int64_t>(r.node_unknown));
    ch.send(static_cast<std::int64_t>(r.already_there));
    // Relocated, the run is a mapping of its own on one node: known again.
    ch.send(numamove::locate(spread.data, spread.bytes) == std::vector<int>(4, a));
    ch.send(reinterpret_cast<std::intptr_t>(spread.data));
    ch.wait_for_parent();
    return 0;
  });
  const child_report& r = child.receive(7);
  INFO(r.describe());
  REQUIRE(r.values.size() == 7);
  CHECK(r.values[0] == 1);
  CHECK(r.values[1] == 1);
  CHECK(r.values[2] == 4);  // moved anyway: where they were could not be learned
  CHECK(r.values[3] == 4);
  CHECK(r.values[4] == 0);
  CHECK(r.values[5] == 1);
  CHECK(kernel_query(reinterpret_cast<const void*>(static_cast<std::intptr_t>(r.values[6])), 4,
                     child.pid()) == std::vector<int>(4, a));
  child.proceed();
  CHECK(child.release() == 0);
}

TEST_CASE("userspace: the allocator places on every node where mbind is refused",
          "[multinode][userspace][allocator]") {
  const std::vector<int> nodes = memory_nodes();
  const numamove::topology& t = numamove::topology::system();
  child_options options;
  options.drop_cap_sys_nice = true;
  seccomp_child child(
      [&](child_channel& ch) {
        for (const int node : nodes) {
          try {
            auto* v = new numamove::vector<char>(
                8 * page(), 3, numamove::allocator<char>(numamove::placement::on_node(node)));
            ch.send(reinterpret_cast<std::intptr_t>(v->data()));
          } catch (const std::system_error& e) {
            ch.send(-e.code().value());
          }
        }
        ch.wait_for_parent();
        return 0;
      },
      options);
  const child_report& r = child.receive(nodes.size());
  INFO(r.describe());
  REQUIRE(r.values.size() == nodes.size());
  for (std::size_t k = 0; k < nodes.size(); ++k) {
    INFO("node " << nodes[k]);
    if (t.cpus_of(nodes[k]).empty()) {
      CHECK(r.values[k] == -EHOSTUNREACH);
      continue;
    }
    REQUIRE(r.values[k] > 0);
    CHECK(kernel_query(reinterpret_cast<const void*>(static_cast<std::intptr_t>(r.values[k])), 8,
                       child.pid()) == std::vector<int>(8, nodes[k]));
  }
  child.proceed();
  CHECK(child.release() == 0);
}

TEST_CASE("userspace: writers lose nothing while their range moves between nodes",
          "[multinode][userspace][concurrency]") {
  const std::vector<int> with_cpus = nodes_with_cpus();
  NUMAMOVE_SKIP_UNLESS(with_cpus.size() >= 2, "cpu-memory-nodes",
                       "needs two nodes with memory and CPUs");
  constexpr std::size_t pages = 64;
  seccomp_child child([&](child_channel& ch) {
    mapping m(pages);
    std::memset(m.data, 0, m.bytes);
    std::atomic<bool> stop{false};
    std::uint64_t written = 0;
    std::thread writer([&] {
      for (std::size_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        auto* counter = reinterpret_cast<std::uint64_t*>(m.at_page(i % pages));
        *counter = *counter + 1;
        ++written;
      }
    });
    bool all_moved = true;
    for (int round = 0; round < 12; ++round) {
      const numamove::migration_result r = numamove::migrate(m.data, m.bytes, with_cpus[round % 2]);
      all_moved = all_moved && r && r.moved + r.already_there == pages;
    }
    stop.store(true);
    writer.join();
    std::uint64_t sum = 0;
    for (std::size_t p = 0; p < pages; ++p) sum += *reinterpret_cast<std::uint64_t*>(m.at_page(p));
    ch.send(all_moved);
    ch.send(sum == written);
    ch.send(reinterpret_cast<std::intptr_t>(m.data));
    ch.wait_for_parent();
    return 0;
  });
  const child_report& r = child.receive(3);
  INFO(r.describe());
  REQUIRE(r.values.size() == 3);
  CHECK(r.values[0] == 1);
  CHECK(r.values[1] == 1);
  CHECK(kernel_query(reinterpret_cast<const void*>(static_cast<std::intptr_t>(r.values[2])), pages,
                     child.pid()) == std::vector<int>(pages, with_cpus[1]));
  child.proceed();
  CHECK(child.release() == 0);
}

// Linux before 6.17 cannot mremap a range that spans two mappings, and it unmaps the
// destination before it finds out: a fresh block split in two loses the original pages.
TEST_CASE(
    "userspace: a huge-page block with a hole moves to another node, every byte and the hole "
    "kept",
    "[multinode][userspace][thp]") {
  const std::vector<int> nodes = memory_nodes();
  aligned_mapping m(huge_page_bytes, huge_page_bytes);
  REQUIRE(m.raw != MAP_FAILED);
  const std::size_t pages = m.bytes / page();
  constexpr std::size_t hole = 5;
  NUMAMOVE_SKIP_UNLESS(huge_block_with_hole(m, hole), "thp",
                       "MADV_HUGEPAGE failed, or khugepaged filled the hole of 5 blocks in a row");
  const int from = kernel_query(m.data, 1)[0];
  const int to = from == nodes.front() ? nodes.back() : nodes.front();
  std::vector<int> status;
  REQUIRE(move(m.data, pages, to, status) == 0);
  std::vector<int> expected(pages, to);
  expected[hole] = -ENOENT;
  CHECK(status == expected);
  REQUIRE(perms_of(m.data) == "rw-p");  // still mapped: reading it must not crash the test
  REQUIRE(perms_of(m.data + m.bytes - page()) == "rw-p");
  std::vector<int> placed = kernel_query(m.data, pages);
  placed[hole] = present(m.data + hole * page()) ? placed[hole] : -ENOENT;
  CHECK(placed == expected);
  std::size_t damaged = 0;
  for (std::size_t p = 0; p < pages; ++p) damaged += p != hole && !page_intact(m.data, p);
  CHECK(damaged == 0);
}

TEST_CASE(
    "userspace and kernel: the same scenarios, the same statuses but for the documented "
    "differences",
    "[multinode][userspace][equivalence]") {
  const move_across across;
  const int from = across.from;
  const int to = across.to;
  const auto run = [&](numamove::backend path, int flags) {
    pin_to_cpu pin(numamove::topology::system().cpus_of(from).front());
    scenario s;
    std::vector<int> targets(s.pages.size(), to);
    std::vector<int> status(s.pages.size(), 1000);
    const long rc = numamove::move_pages(0, s.pages.size(), s.pages.data(), targets.data(),
                                         status.data(), flags, path);
    // Whatever a backend says is on `to`, the kernel must agree.
    std::vector<int> placed(s.pages.size(), -1);
    for (std::size_t i = 0; i < s.pages.size(); ++i) {
      if (status[i] != to) continue;
      // Linux 6.1's query cannot see PROT_NONE pages: look while they are readable.
      if (s.kinds[i] == scenario::no_access) ::mprotect(s.pages[i], page(), PROT_READ);
      placed[i] = kernel_query(s.pages[i], 1)[0];
      if (s.kinds[i] == scenario::no_access) ::mprotect(s.pages[i], page(), PROT_NONE);
    }
    return std::make_tuple(rc, status, s.kinds, placed);
  };
  for (const int flags : {MPOL_MF_MOVE, MPOL_MF_MOVE_ALL}) {
    const auto [krc, kernel, kinds, kplaced] = run(numamove::backend::kernel, flags);
    const auto [urc, userspace, ukinds, uplaced] = run(numamove::backend::userspace, flags);
    REQUIRE(krc == 0);
    REQUIRE(urc == 0);
    REQUIRE(kinds == ukinds);
    for (std::size_t i = 0; i < kinds.size(); ++i) {
      INFO(scenario::name(kinds[i])
           << ", flags " << flags << ": kernel " << kernel[i] << ", userspace " << userspace[i]);
      if (userspace[i] == to) CHECK(uplaced[i] == to);
      if (kernel[i] == to) CHECK(kplaced[i] == to);
      switch (kinds[i]) {
        case scenario::locked:
        case scenario::dont_fork:
          // The seed's rule on the userspace path; the modern kernel moves them.
          CHECK(kernel[i] == to);
          CHECK(userspace[i] == -EPERM);
          break;
        case scenario::shared_anonymous:
          // Userspace never moves shared memory without MOVE_ALL, and cannot write shmem back.
          CHECK(kernel[i] == to);
          CHECK(userspace[i] == (flags == MPOL_MF_MOVE_ALL ? -EINVAL : -EACCES));
          break;
        case scenario::no_access:
          // Linux before 6.5 (6.1 here) cannot move pages of PROT_NONE mappings: numamove's
          // kernel path reports the present page -EBUSY; the userspace path moves them.
          CHECK((kernel[i] == to || kernel[i] == -EBUSY));
          CHECK(userspace[i] == to);
          break;
        case scenario::huge_tail:
          // The kernel answers -EBUSY for the address after a THP's head it just queued; the
          // userspace path moves the huge page whole and reports every address.
          CHECK((userspace[i] == kernel[i] || (kernel[i] == -EBUSY && userspace[i] == to)));
          break;
        default:
          CHECK(userspace[i] == kernel[i]);
      }
    }
  }
}
