// The userspace path where it is needed: in a child whose NUMA system calls are refused the way
// Docker's default seccomp profile refuses them. The parent checks what the child did with its
// own move_pages(2) query of the child's pid.
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#include <numamove/capabilities.hpp>
#include <numamove/numamove.hpp>

#include "support/catch.hpp"
#include "support/pages.hpp"
#include "support/seccomp_child.hpp"
#include "test_userspace_support.hpp"

using namespace numamove_test;

TEST_CASE(
    "under the filter: the probe sees it, automatic takes the userspace path and really moves",
    "[userspace][seccomp]") {
  const bool drop = GENERATE(false, true);
  INFO((drop ? "without" : "with") << " CAP_SYS_NICE");
  numamove_test::child_options options;
  options.drop_cap_sys_nice = drop;
  constexpr std::size_t pages = 8;
  numamove_test::mapping m(pages);
  numamove_test::seccomp_child child(
      [&](child_channel& ch) {
        m.touch(0, 6, 50);  // the child's own pages (after fork the parent's would be shared)
        const numamove::capabilities& here = numamove::capabilities::of_this_process();
        ch.send(here.move_pages_query);               // 0
        ch.send(here.mbind);                          // 1
        ch.send(static_cast<int>(here.automatic()));  // 2
        const std::uint64_t before = pfn(m.data);
        numamove::migrate_options force;
        force.force = true;
        const numamove::migration_result r = numamove::migrate(m.data, m.bytes, home, force);
        ch.send(static_cast<int>(r.used));                  // 3
        ch.send(r.error.value());                           // 4
        ch.send(static_cast<std::int64_t>(r.moved));        // 5
        ch.send(static_cast<std::int64_t>(r.not_present));  // 6
        ch.send(before == 0 || pfn(m.data) != before);      // 7: a new page frame
        bool intact = true;
        for (std::size_t i = 0; i < 6; ++i)
          intact = intact && *m.at_page(i) == static_cast<char>(50 + i);
        ch.send(intact);  // 8
        const std::vector<int> where = numamove::locate(m.data, m.bytes);
        ch.send(where ==
                std::vector<int>{home, home, home, home, home, home, -ENOENT, -ENOENT});  // 9
        numamove::migrate_options all;
        all.flags = MPOL_MF_MOVE_ALL;
        ch.send(numamove::migrate(m.data, m.bytes, home, all).error.value());  // 10
        // The allocator places without mbind by first touch from a pinned worker.
        int placed = 0;
        try {
          numamove::vector<char> v(16 * page(), 1,
                                   numamove::allocator<char>(numamove::placement::on_node(home)));
          ch.send(reinterpret_cast<std::intptr_t>(v.data()));  // 11
          ch.wait_for_parent();
          placed = v[5] == 1;
        } catch (const std::system_error& e) {
          ch.send(-e.code().value());
        }
        ch.send(placed);  // 12
        return 0;
      },
      options);
  const numamove_test::child_report& head = child.receive(12);
  REQUIRE(head.values.size() == 12);
  const std::vector<std::int64_t>& v = head.values;
  CHECK(v[0] == 0);
  CHECK(v[1] == (drop ? 0 : 1));
  CHECK(v[2] == static_cast<int>(numamove::backend::userspace));
  CHECK(v[3] == static_cast<int>(numamove::backend::userspace));
  CHECK(v[4] == 0);
  CHECK(v[5] == 6);
  CHECK(v[6] == 2);
  CHECK(v[7] == 1);
  CHECK(v[8] == 1);
  CHECK(v[9] == 1);
  CHECK(v[10] == (drop ? EPERM : 0));
  // The parent's own query of the child's pages.
  const std::vector<int> where = numamove_test::kernel_query(m.data, pages, child.pid());
  for (std::size_t i = 0; i < 6; ++i) CHECK(where[i] == home);
  REQUIRE(v[11] > 0);
  const auto* allocated = reinterpret_cast<const char*>(static_cast<std::intptr_t>(v[11]));
  CHECK(numamove_test::kernel_query(allocated, 16, child.pid()) == std::vector<int>(16, home));
  child.proceed();
  const numamove_test::child_report& r = child.wait();
  REQUIRE(r.values.size() == 13);
  CHECK(r.values[12] == 1);
  CHECK(child.release() == 0);
}
