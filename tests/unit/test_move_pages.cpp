// numamove::move_pages on the kernel path: the seed's contract, call-level errors in the kernel's
// order, per-page statuses. Runs on any machine with the kernel's NUMA calls (one node is enough).
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <vector>

#include <numamove/numamove.hpp>

#include "support/catch.hpp"
#include "support/child.hpp"
#include "support/pages.hpp"

using numamove::backend;
using numamove_test::drop_capability;
using numamove_test::held_child;
using numamove_test::home;
using numamove_test::in_child;
using numamove_test::mapping;
using numamove_test::page;
using numamove_test::vanished_pid;

TEST_CASE("count 0 returns 0 without reading the arrays", "[move_pages]") {
  errno = 0;
  CHECK(numamove::move_pages(0, 0, nullptr, nullptr, nullptr, MPOL_MF_MOVE, backend::kernel) == 0);
}

TEST_CASE("query reports node, not present and no mapping per page", "[move_pages]") {
  mapping m(4);
  m.touch(0, 1);
  m.touch(2, 1);
  void* gone = numamove_test::never_mapped();
  // Reading a page never written maps the shared zero page.
  volatile char sink = *m.at_page(3);
  (void)sink;
  // Any address inside a page names the page.
  std::vector<void*> pages{m.at_page(0) + 17, m.at_page(1), m.at_page(2) + page() - 1, m.at_page(3),
                           gone};
  std::vector<int> status(pages.size(), 99);
  REQUIRE(numamove::move_pages(0, pages.size(), pages.data(), nullptr, status.data(), 0,
                               backend::kernel) == 0);
  CHECK(status == std::vector<int>{home, -ENOENT, home, -EFAULT, -EFAULT});
}

TEST_CASE("moving to the node a page is on reports that node", "[move_pages]") {
  mapping m(8);
  m.touch(0, 8);
  std::vector<void*> pages;
  for (std::size_t i = 0; i < 8; ++i) pages.push_back(m.at_page(i));
  std::vector<int> nodes(8, home);
  std::vector<int> status(8, 99);
  SECTION("MPOL_MF_MOVE") {
    CHECK(numamove::move_pages(0, 8, pages.data(), nodes.data(), status.data(), MPOL_MF_MOVE,
                               backend::kernel) == 0);
  }
  SECTION("flags 0 moves like MPOL_MF_MOVE") {
    CHECK(numamove::move_pages(0, 8, pages.data(), nodes.data(), status.data(), 0,
                               backend::kernel) == 0);
  }
  CHECK(status == std::vector<int>(8, home));
  CHECK(*m.at_page(5) == 1 + 5);
}

TEST_CASE("a move does not allocate pages never touched", "[move_pages]") {
  mapping m(2);
  m.touch(0, 1);
  std::vector<void*> pages{m.at_page(0), m.at_page(1)};
  std::vector<int> nodes{home, home};
  std::vector<int> status(2, 99);
  REQUIRE(numamove::move_pages(0, 2, pages.data(), nodes.data(), status.data(), MPOL_MF_MOVE,
                               backend::kernel) == 0);
  CHECK(status == std::vector<int>{home, -ENOENT});
  CHECK(numamove_test::kernel_query(m.data, 2)[1] < 0);
}

TEST_CASE("call-level errors come in the kernel's order", "[move_pages][errors]") {
  mapping m(2);
  m.touch(0, 2);
  std::vector<void*> pages{m.at_page(0), m.at_page(1)};
  std::vector<int> status{99, 99};
  const auto call = [&](int pid, const int* nodes, int flags) {
    errno = 0;
    const long rc =
        numamove::move_pages(pid, 2, pages.data(), nodes, status.data(), flags, backend::kernel);
    return rc == -1 ? errno : static_cast<int>(1000 + rc);
  };
  const std::vector<int> nodes{home, home};

  SECTION("EINVAL: unknown flags, also when querying, before the pid is looked at") {
    CHECK(call(0, nodes.data(), MPOL_MF_MOVE | 1) == EINVAL);
    CHECK(call(0, nullptr, 1 << 5) == EINVAL);
    CHECK(call(vanished_pid(), nullptr, 1 << 5) == EINVAL);
  }
  SECTION("EPERM: MPOL_MF_MOVE_ALL without CAP_SYS_NICE, also when querying, before ESRCH") {
    const pid_t gone = vanished_pid();
    CHECK(in_child([&] {
            if (drop_capability(CAP_SYS_NICE) != 0) return 90;
            if (call(0, nodes.data(), MPOL_MF_MOVE_ALL) != EPERM) return 91;
            if (call(0, nullptr, MPOL_MF_MOVE_ALL) != EPERM) return 92;
            if (call(gone, nullptr, MPOL_MF_MOVE_ALL) != EPERM) return 93;
            return call(0, nodes.data(), MPOL_MF_MOVE) == 1000 ? 0 : 94;
          }) == 0);
  }
  SECTION("ESRCH: no such process") {
    CHECK(call(vanished_pid(), nullptr, 0) == ESRCH);
  }
  SECTION("EPERM: another user's process") {
    CHECK(in_child([&] {
            if (::setgid(65534) != 0 || ::setuid(65534) != 0) return 90;
            return call(1, nullptr, 0) == EPERM ? 0 : 91;
          }) == 0);
  }
  SECTION("ENODEV: a node that does not exist, earlier entries already reported") {
    for (const int bad : {-1, 1 << 20, INT_MAX, numamove::topology::system().nodes().back() + 1}) {
      status = {99, 99};
      const std::vector<int> some_bad{home, bad};
      CHECK(call(0, some_bad.data(), MPOL_MF_MOVE) == ENODEV);
      CHECK(status[0] == home);
      CHECK(status[1] == 99);
    }
  }
  SECTION("EFAULT: arrays that cannot be read or written") {
    CHECK(numamove::move_pages(0, 2, nullptr, nullptr, status.data(), 0, backend::kernel) == -1);
    CHECK(errno == EFAULT);
    CHECK(numamove::move_pages(0, 2, pages.data(), nullptr, nullptr, 0, backend::kernel) == -1);
    CHECK(errno == EFAULT);
    int* unwritable = static_cast<int*>(static_cast<void*>(const_cast<char*>("read-only string!")));
    CHECK(numamove::move_pages(0, 1, pages.data(), nullptr, unwritable, 0, backend::kernel) == -1);
    CHECK(errno == EFAULT);
  }
  // Bad calls leave the data as it was.
  CHECK(*m.at_page(1) == 1 + 1);
}

TEST_CASE("the pages of another process are queried by pid", "[move_pages]") {
  mapping m(1);
  m.touch(0, 1);
  // The child's copy of the page is at the same address.
  held_child child([&] { std::memset(m.data, 7, page()); });
  REQUIRE(child.pid() > 0);
  void* address = m.data;
  int status = 99;
  CHECK(numamove::move_pages(child.pid(), 1, &address, nullptr, &status, 0, backend::kernel) == 0);
  CHECK(status == home);
}

TEST_CASE("automatic takes the kernel path where move_pages works", "[move_pages]") {
  mapping m(1);
  m.touch(0, 1);
  void* address = m.data;
  int status = 99;
  CHECK(numamove::move_pages(0, 1, &address, nullptr, &status, 0) == 0);
  CHECK(status == home);
}

TEST_CASE("-EFAULT for a never-touched page becomes -ENOENT, as on kernels outside 4.3..6.11",
          "[move_pages][normalize]") {
  // The correction runs by itself only on 4.3..6.11 (the guests' 6.1 kernel); here it is called
  // directly with what those kernels report, so its decisions are checked on any kernel.
  mapping m(3);
  m.touch(0, 1);
  volatile char sink = *m.at_page(2);  // the zero page
  (void)sink;
  void* gone = numamove_test::never_mapped();
  void* pages[] = {m.at_page(0), m.at_page(1), m.at_page(2), gone};
  int status[] = {home, -EFAULT, -EFAULT, -EFAULT};
  numamove::detail::restore_enoent(0, 4, pages, status);
  CHECK(status[0] == home);
  CHECK(status[1] == -ENOENT);
  CHECK(status[2] == -EFAULT);
  CHECK(status[3] == -EFAULT);
}
