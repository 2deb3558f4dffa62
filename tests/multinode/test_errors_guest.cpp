// The refusals that need several nodes to show: ENODEV for what is not a node with memory,
// EACCES for a node outside the caller's cpuset (cgroup v2), -EACCES for a page shared with
// another process unless MPOL_MF_MOVE_ALL, and EPERM for MPOL_MF_MOVE_ALL without CAP_SYS_NICE.
#include <cerrno>
#include <cstdint>
#include <system_error>
#include <vector>

#include "guest_support.hpp"
#include "support/seccomp_child.hpp"

using namespace numamove_test;

TEST_CASE("a node that does not exist, or has no memory, is ENODEV and moves nothing",
          "[multinode][enodev]") {
  const std::vector<int> nodes = memory_nodes();
  const std::vector<int> memoryless = memoryless_nodes();
  std::vector<int> bad = nonexistent_nodes();
  bad.insert(bad.end(), memoryless.begin(), memoryless.end());
  // Shapes with a node that has CPUs and no memory must show it here; the ids that name no
  // node are tried everywhere.
  if (vm_expects("cpu-only-node")) REQUIRE_FALSE(memoryless.empty());
  constexpr std::size_t pages = 4;
  for (const int node : bad) {
    INFO("target node " << node);
    mapping m(pages);
    fill(m.data, m.bytes, 41);
    std::vector<int> status;
    REQUIRE(kernel_move(m.data, pages, nodes.front(), status) == 0);

    // The kernel's own answer, for reference.
    errno = 0;
    CHECK(kernel_move(m.data, pages, node, status) == -1);
    CHECK(errno == ENODEV);

    // numamove::move_pages on the kernel path passes it on.
    errno = 0;
    CHECK(numamove_move(numamove::backend::kernel, m.data, std::vector<int>(pages, node), status) ==
          -1);
    CHECK(errno == ENODEV);

    // migrate() reports it as the call's error.
    const numamove::migration_result r = numamove::migrate(m.data, m.bytes, node);
    CHECK_FALSE(r);
    CHECK(r.error == std::error_code(ENODEV, std::generic_category()));
    CHECK(r.moved == 0);

    CHECK(kernel_query(m.data, pages) == std::vector<int>(pages, nodes.front()));
    CHECK(first_mismatch(m.data, m.bytes, 41) == SIZE_MAX);
  }
}

TEST_CASE("a node outside the caller's cpuset is EACCES", "[multinode][cpuset]") {
  const std::vector<int> nodes = memory_nodes();
  const std::string why = cpuset_unavailable();
  NUMAMOVE_SKIP_UNLESS(why.empty(), "cpuset", why);
  const int allowed = nodes.front();
  const int outside = nodes.back();
  cpuset_cgroup group(std::to_string(allowed));
  REQUIRE(group.error() == "");
  INFO("cgroup " << group.path() << " with cpuset.mems " << allowed << ", target " << outside);
  constexpr std::size_t pages = 8;

  seccomp_child child(
      [&](child_channel& ch) {
        ch.send(group.enter());  // 0
        const std::string status_text = read_file("/proc/self/status");
        const auto at = status_text.find("Mems_allowed_list:");
        const std::string mems =
            at == std::string::npos
                ? ""
                : status_text.substr(at + 18, status_text.find('\n', at) - at - 18);
        ch.note("Mems_allowed_list:" + mems);
        ch.send(parse_list(mems) == std::vector<int>{allowed});  // 1
        mapping m(pages);
        fill(m.data, m.bytes, 51);
        ch.send(reinterpret_cast<std::intptr_t>(m.data));  // 2
        std::vector<int> status;
        errno = 0;
        ch.send(numamove_move(numamove::backend::kernel, m.data, std::vector<int>(pages, outside),
                              status));  // 3
        ch.send(errno);                  // 4
        const numamove::migration_result away = numamove::migrate(m.data, m.bytes, outside);
        ch.send(away.error.value());                     // 5
        ch.send(static_cast<std::int64_t>(away.moved));  // 6
        const numamove::migration_result home = numamove::migrate(m.data, m.bytes, allowed);
        ch.send(static_cast<bool>(home));                        // 7
        ch.send(static_cast<std::int64_t>(home.already_there));  // 8
        int construct_error = 0;
        try {
          numamove::allocator<int> a(numamove::placement::on_node(outside));
        } catch (const std::system_error& e) {
          construct_error = e.code().value();
        }
        ch.send(construct_error);                                  // 9
        ch.send(first_mismatch(m.data, m.bytes, 51) == SIZE_MAX);  // 10
        ch.wait_for_parent();  // keep the mapping for the parent's queries
        return 0;
      },
      child_options{numa_filter::none});
  const child_report& r = child.receive(11);
  INFO(r.describe());
  REQUIRE(r.values.size() == 11);
  REQUIRE(r.values[0] == 0);
  CHECK(r.values[1] == 1);
  char* first = reinterpret_cast<char*>(static_cast<std::intptr_t>(r.values[2]));
  CHECK(r.values[3] == -1);
  CHECK(r.values[4] == EACCES);
  CHECK(r.values[5] == EACCES);
  CHECK(r.values[6] == 0);
  CHECK(r.values[7] == 1);
  CHECK(r.values[8] == static_cast<std::int64_t>(pages));
  CHECK(r.values[9] == EACCES);
  CHECK(r.values[10] == 1);
  // The parent's own query of the child: everything inside the cpuset.
  CHECK(kernel_query(first, pages, child.pid()) == std::vector<int>(pages, allowed));
  // The kernel holds the target's cpuset against whoever asks: the parent cannot move the
  // child's pages out of it either.
  std::vector<int> status;
  errno = 0;
  CHECK(kernel_move(first, pages, outside, status, 0, child.pid()) == -1);
  CHECK(errno == EACCES);
  CHECK(child.release() == 0);
}

TEST_CASE("a page shared with a forked child is -EACCES without MPOL_MF_MOVE_ALL, moved with it",
          "[multinode][shared]") {
  const std::vector<int> nodes = memory_nodes();
  const int from = nodes.front();
  const int to = nodes.back();
  REQUIRE(
      has_effective_capability(CAP_SYS_NICE));  // MPOL_MF_MOVE_ALL needs it; the guest runs as root
  constexpr std::size_t pages = 8;
  mapping m(pages);
  fill(m.data, m.bytes, 61);
  std::vector<int> status;
  REQUIRE(kernel_move(m.data, pages, from, status) == 0);
  // The child shares every page copy-on-write as long as neither side writes.
  seccomp_child child(
      [&](child_channel& ch) {
        ch.send(1);
        if (!ch.wait_for_parent()) return 3;
        ch.send(first_mismatch(m.data, m.bytes, 61) == SIZE_MAX);
        ch.wait_for_parent();
        return 0;
      },
      child_options{numa_filter::none});
  REQUIRE(child.receive(1).values.size() == 1);

  SECTION("migrate() without MPOL_MF_MOVE_ALL") {
    const numamove::migration_result r = numamove::migrate(m.data, m.bytes, to);
    CHECK_FALSE(r);
    CHECK_FALSE(r.error);  // a per-page outcome, not a call error
    CHECK(r.status == std::vector<int>(pages, -EACCES));
    CHECK(r.failed == pages);
    CHECK(r.moved == 0);
    CHECK(kernel_query(m.data, pages) == std::vector<int>(pages, from));
  }
  SECTION("move_pages() without MPOL_MF_MOVE_ALL") {
    std::vector<int> got;
    CHECK(numamove_move(numamove::backend::kernel, m.data, std::vector<int>(pages, to), got) == 0);
    CHECK(got == std::vector<int>(pages, -EACCES));
    CHECK(kernel_query(m.data, pages) == std::vector<int>(pages, from));
  }
  SECTION("migrate() with MPOL_MF_MOVE_ALL") {
    numamove::migrate_options all;
    all.flags = MPOL_MF_MOVE_ALL;
    const numamove::migration_result r = numamove::migrate(m.data, m.bytes, to, all);
    CHECK(r);
    CHECK(r.moved == pages);
    CHECK(r.status == std::vector<int>(pages, to));
    CHECK(kernel_query(m.data, pages) == std::vector<int>(pages, to));
    // The same physical pages: the child's view moved too.
    CHECK(kernel_query(m.data, pages, child.pid()) == std::vector<int>(pages, to));
  }
  CHECK(first_mismatch(m.data, m.bytes, 61) == SIZE_MAX);
  child.proceed();
  const child_report& r = child.receive(2);
  INFO(r.describe());
  REQUIRE(r.values.size() == 2);
  CHECK(r.values[1] == 1);  // the child's copy is intact
  CHECK(child.release() == 0);
}

TEST_CASE("MPOL_MF_MOVE_ALL without CAP_SYS_NICE is EPERM", "[multinode][shared]") {
  const std::vector<int> nodes = memory_nodes();
  constexpr std::size_t pages = 4;
  const child_report r = run_in_seccomp_child(
      [&](child_channel& ch) {
        mapping m(pages);
        fill(m.data, m.bytes, 71);
        std::vector<int> status;
        ch.send(kernel_move(m.data, pages, nodes.front(), status));  // 0
        ch.send(has_effective_capability(CAP_SYS_NICE));             // 1
        errno = 0;
        ch.send(kernel_move(m.data, pages, nodes.back(), status, MPOL_MF_MOVE_ALL));  // 2
        ch.send(errno);                                                               // 3
        numamove::migrate_options all;
        all.flags = MPOL_MF_MOVE_ALL;
        const numamove::migration_result moved =
            numamove::migrate(m.data, m.bytes, nodes.back(), all);
        ch.send(moved.error.value());                                                    // 4
        ch.send(kernel_query(m.data, pages) == std::vector<int>(pages, nodes.front()));  // 5
        return 0;
      },
      child_options{numa_filter::none, true});
  INFO(r.describe());
  REQUIRE(r.finished);
  REQUIRE(r.values.size() == 6);
  CHECK(r.values[0] == 0);
  CHECK(r.values[1] == 0);
  CHECK(r.values[2] == -1);
  CHECK(r.values[3] == EPERM);
  CHECK(r.values[4] == EPERM);
  CHECK(r.values[5] == 1);
}
