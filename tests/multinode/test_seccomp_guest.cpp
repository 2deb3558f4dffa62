// numamove in a child whose NUMA calls are refused the way Docker's default seccomp profile
// refuses them, on a machine where moving would otherwise work. The parent checks, with its
// own move_pages(2) query of the child's pid, where the child's pages really are.
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <system_error>
#include <vector>

#include "guest_support.hpp"
#include "support/seccomp_child.hpp"

using namespace numamove_test;

TEST_CASE("under the Docker-like filter backend::kernel moves nothing and says EPERM",
          "[multinode][seccomp]") {
  const numamove::topology& t = numamove::topology::system();
  // The child places its pages by first touch (the filter is already in place): from a node
  // with CPUs, to another node.
  const move_across across;
  const int from = across.from;
  const int to = across.to;
  constexpr std::size_t pages = 16;
  seccomp_child child([&](child_channel& ch) {
    pin_to_cpu pin(t.cpus_of(from).front());
    mapping m(pages);
    fill(m.data, m.bytes, 101);
    ch.send(reinterpret_cast<std::intptr_t>(m.data));  // 0
    numamove::migrate_options options;
    options.path = numamove::backend::kernel;
    const numamove::migration_result r = numamove::migrate(m.data, m.bytes, to, options);
    ch.send(r.error.value());                     // 1
    ch.send(static_cast<bool>(r));                // 2
    ch.send(static_cast<std::int64_t>(r.moved));  // 3
    std::vector<int> status;
    errno = 0;
    ch.send(numamove_move(numamove::backend::kernel, m.data, std::vector<int>(pages, to),
                          status));                             // 4
    ch.send(errno);                                             // 5
    ch.send(status == std::vector<int>(pages, INT32_MIN));      // 6: nothing claimed
    ch.send(first_mismatch(m.data, m.bytes, 101) == SIZE_MAX);  // 7
    ch.wait_for_parent();
    return 0;
  });
  const child_report& r = child.receive(8);
  INFO(r.describe());
  REQUIRE(r.values.size() == 8);
  const char* first = reinterpret_cast<const char*>(static_cast<std::intptr_t>(r.values[0]));
  CHECK(r.values[1] == EPERM);
  CHECK(r.values[2] == 0);
  CHECK(r.values[3] == 0);
  CHECK(r.values[4] == -1);
  CHECK(r.values[5] == EPERM);
  CHECK(r.values[6] == 1);
  CHECK(r.values[7] == 1);
  CHECK(kernel_query(first, pages, child.pid()) == std::vector<int>(pages, from));
  CHECK(child.release() == 0);
}

TEST_CASE("under the Docker-like filter backend::automatic does not crash and tells the truth",
          "[multinode][seccomp]") {
  const numamove::topology& t = numamove::topology::system();
  const move_across across;
  const int from = across.from;
  const int to = across.to;
  constexpr std::size_t pages = 16;
  seccomp_child child([&](child_channel& ch) {
    pin_to_cpu pin(t.cpus_of(from).front());
    mapping m(pages);
    fill(m.data, m.bytes, 102);
    ch.send(reinterpret_cast<std::intptr_t>(m.data));  // 0
    const numamove::migration_result r = numamove::migrate(m.data, m.bytes, to);
    ch.send(static_cast<int>(r.used));                          // 1
    ch.send(r.error.value());                                   // 2
    ch.send(static_cast<bool>(r));                              // 3
    ch.send(static_cast<std::int64_t>(r.moved));                // 4
    ch.send(first_mismatch(m.data, m.bytes, 102) == SIZE_MAX);  // 5
    ch.send(static_cast<std::int64_t>(r.status.size()));        // 6
    for (const int st : r.status) ch.send(st);                  // 7 ...
    ch.wait_for_parent();
    return 0;
  });
  const child_report& head = child.receive(7);
  INFO(head.describe());
  REQUIRE(head.values.size() == 7);
  const std::size_t statuses = static_cast<std::size_t>(head.values[6]);
  const child_report& r = child.receive(7 + statuses);
  REQUIRE(r.values.size() == 7 + statuses);
  const char* first = reinterpret_cast<const char*>(static_cast<std::intptr_t>(r.values[0]));
  const auto used = static_cast<numamove::backend>(r.values[1]);
  const std::vector<int> status(r.values.begin() + 7, r.values.end());
  INFO("migrate() used backend::" << numamove::to_string(used) << ", error " << r.values[2]
                                  << ", moved " << r.values[4] << ", status " << to_text(status));
  CHECK(used != numamove::backend::automatic);
  CHECK(r.values[5] == 1);  // contents intact
  const std::vector<int> placed = kernel_query(first, pages, child.pid());
  if (status.empty()) {
    // Refused before any page: a clean refusal, and nothing moved behind its back.
    CHECK_FALSE(r.values[3]);
    CHECK((r.values[2] == EPERM || r.values[2] == ENOSYS));
    CHECK(placed == std::vector<int>(pages, from));
  } else {
    // Whatever it says about each page, the kernel must agree.
    REQUIRE(status.size() == pages);
    std::vector<int> expected(pages);
    for (std::size_t i = 0; i < pages; ++i) expected[i] = status[i] >= 0 ? status[i] : from;
    CHECK(placed == expected);
    if (r.values[3]) CHECK(status == std::vector<int>(pages, to));
    CHECK(static_cast<std::size_t>(std::count(status.begin(), status.end(), to)) ==
          static_cast<std::size_t>(r.values[4]));
  }
  CHECK(child.release() == 0);
}

TEST_CASE(
    "under the filter the allocator places with mbind, or by first touch where mbind is refused",
    "[multinode][seccomp][allocator]") {
  const std::vector<int> nodes = memory_nodes();
  const int target = nodes.back();
  constexpr std::size_t pages = 8;
  const bool drop = GENERATE(false, true);
  INFO((drop ? "without" : "with") << " CAP_SYS_NICE");
  REQUIRE(has_effective_capability(CAP_SYS_NICE));

  child_options options;
  options.drop_cap_sys_nice = drop;
  seccomp_child child(
      [&](child_channel& ch) {
        // First touch from a CPU of another node, so only the policy can put pages on target.
        pin_to_cpu pin(cpu_of_other_memory_node(target));
        try {
          numamove::vector<char> v(pages * page(), 0,
                                   numamove::allocator<char>(numamove::placement::on_node(target)));
          fill(v.data(), v.size(), 111);
          ch.send(0);                                          // 0: no error
          ch.send(reinterpret_cast<std::intptr_t>(v.data()));  // 1
          ch.wait_for_parent();
        } catch (const std::system_error& e) {
          ch.send(e.code().value());
          ch.send(0);
        }
        return 0;
      },
      options);
  const child_report& r = child.receive(2);
  INFO(r.describe());
  REQUIRE(r.values.size() == 2);
  // Without CAP_SYS_NICE mbind is refused: a worker pinned to the target's CPUs touches the
  // pages instead, which needs the target to have CPUs (EHOSTUNREACH otherwise).
  if (drop && numamove::topology::system().cpus_of(target).empty()) {
    CHECK(r.values[0] == EHOSTUNREACH);
  } else {
    CHECK(r.values[0] == 0);
    const char* first = reinterpret_cast<const char*>(static_cast<std::intptr_t>(r.values[1]));
    CHECK(kernel_query(first, pages, child.pid()) == std::vector<int>(pages, target));
  }
  CHECK(child.release() == 0);
}
