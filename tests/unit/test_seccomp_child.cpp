// The seccomp helper (tests/support/seccomp_child.hpp) on any machine, one node is enough:
// the filter refuses what Docker's default profile refuses and nothing else, the parent can
// query a filtered child's pages, and numamove under the filter reports the refusal cleanly.
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

#include <numamove/numamove.hpp>

#include "support/catch.hpp"
#include "support/pages.hpp"
#include "support/seccomp_child.hpp"

using numamove_test::child_channel;
using numamove_test::child_options;
using numamove_test::home;
using numamove_test::numa_filter;

namespace {

// The raw calls, bypassing numamove. Each returns 0 or the errno.
int raw_query_errno(void* page) {
  int status = 1000;
  return ::syscall(SYS_move_pages, 0, 1UL, &page, nullptr, &status, 0) == 0 ? 0 : errno;
}
int raw_migrate_pages_errno() {
  // From the first node to itself: moves nothing and returns 0 where the call is allowed.
  // (Empty masks are EINVAL.)
  const unsigned long mask = 1UL << numamove::topology::system().nodes().front();
  return ::syscall(SYS_migrate_pages, 0, 8 * sizeof mask, &mask, &mask) >= 0 ? 0 : errno;
}
int raw_get_mempolicy_errno() {
  int mode = -1;
  return ::syscall(SYS_get_mempolicy, &mode, nullptr, 0UL, nullptr, 0UL) == 0 ? 0 : errno;
}
int raw_set_mempolicy_errno() {
  return ::syscall(SYS_set_mempolicy, 0 /* MPOL_DEFAULT */, nullptr, 0UL) == 0 ? 0 : errno;
}
int raw_mbind_errno(void* addr, std::size_t length) {
  return ::syscall(SYS_mbind, addr, length, 0 /* MPOL_DEFAULT */, nullptr, 0UL, 0U) == 0 ? 0
                                                                                         : errno;
}

}  // namespace

TEST_CASE("without a filter the child's NUMA calls reach the kernel (the control)", "[seccomp]") {
  numamove_test::mapping m(1);
  m.touch(0, 1);
  const auto r = numamove_test::run_in_seccomp_child(
      [&](child_channel& ch) {
        ch.send(raw_query_errno(m.data));
        ch.send(raw_migrate_pages_errno());
        ch.send(raw_get_mempolicy_errno());
        return 7;
      },
      child_options{numa_filter::none});
  INFO(r.describe());
  REQUIRE(r.finished);
  CHECK(r.code == 7);
  REQUIRE(r.values.size() == 3);
  CHECK(r.values[0] == 0);
  CHECK(r.values[1] == 0);
  CHECK(r.values[2] == 0);
}

TEST_CASE("the Docker-like filter refuses move_pages and migrate_pages with EPERM", "[seccomp]") {
  numamove_test::mapping m(1);
  m.touch(0, 1);
  const bool nice = numamove_test::has_effective_capability(CAP_SYS_NICE);
  const auto r = numamove_test::run_in_seccomp_child([&](child_channel& ch) {
    ch.send(raw_query_errno(m.data));
    ch.send(raw_migrate_pages_errno());
    ch.send(raw_get_mempolicy_errno());
    ch.send(raw_set_mempolicy_errno());
    ch.send(raw_mbind_errno(m.data, m.bytes));
    ch.send(::getpid() > 0);  // an unrelated system call still works
    return 0;
  });
  INFO(r.describe());
  REQUIRE(r.finished);
  REQUIRE(r.values.size() == 6);
  CHECK(r.values[0] == EPERM);
  CHECK(r.values[1] == EPERM);
  // The mempolicy calls follow CAP_SYS_NICE, as in Docker.
  INFO("parent has CAP_SYS_NICE: " << nice);
  CHECK(r.values[2] == (nice ? 0 : EPERM));
  CHECK(r.values[3] == (nice ? 0 : EPERM));
  CHECK(r.values[4] == (nice ? 0 : EPERM));
  CHECK(r.values[5] == 1);
  // The parent is not filtered.
  CHECK(raw_query_errno(m.data) == 0);
}

TEST_CASE("without CAP_SYS_NICE, or with refuse_all, the mempolicy calls are refused too",
          "[seccomp]") {
  numamove_test::mapping m(1);
  m.touch(0, 1);
  const auto body = [&](child_channel& ch) {
    ch.send(numamove_test::has_effective_capability(CAP_SYS_NICE));
    ch.send(raw_query_errno(m.data));
    ch.send(raw_get_mempolicy_errno());
    ch.send(raw_set_mempolicy_errno());
    ch.send(raw_mbind_errno(m.data, m.bytes));
    return 0;
  };
  child_options options;
  SECTION("docker_default in a child without CAP_SYS_NICE") {
    options.drop_cap_sys_nice = true;
  }
  SECTION("refuse_all") {
    options.filter = numa_filter::refuse_all;
  }
  const auto r = numamove_test::run_in_seccomp_child(body, options);
  INFO(r.describe());
  REQUIRE(r.finished);
  REQUIRE(r.values.size() == 5);
  if (options.drop_cap_sys_nice) CHECK(r.values[0] == 0);
  CHECK(r.values[1] == EPERM);
  CHECK(r.values[2] == EPERM);
  CHECK(r.values[3] == EPERM);
  CHECK(r.values[4] == EPERM);
}

TEST_CASE("under the filter backend::kernel reports the kernel's refusal: -1, errno EPERM",
          "[seccomp][move_pages]") {
  numamove_test::mapping m(4);
  m.touch(0, 4);
  const auto r = numamove_test::run_in_seccomp_child([&](child_channel& ch) {
    std::vector<void*> pages{m.at_page(0), m.at_page(1), m.at_page(2), m.at_page(3)};
    std::vector<int> nodes(4, home);
    std::vector<int> status(4, 1000);
    errno = 0;
    ch.send(numamove::move_pages(0, 4, pages.data(), nullptr, status.data(), 0,
                                 numamove::backend::kernel));
    ch.send(errno);
    ch.send(status == std::vector<int>(4, 1000));  // nothing written
    errno = 0;
    ch.send(numamove::move_pages(0, 4, pages.data(), nodes.data(), status.data(), MPOL_MF_MOVE,
                                 numamove::backend::kernel));
    ch.send(errno);
    numamove::migrate_options kernel_only;
    kernel_only.path = numamove::backend::kernel;
    const numamove::migration_result moved = numamove::migrate(m.data, m.bytes, home, kernel_only);
    ch.send(moved.error.value());
    ch.send(static_cast<bool>(moved));
    ch.send(static_cast<std::int64_t>(moved.moved));
    return 0;
  });
  INFO(r.describe());
  REQUIRE(r.finished);
  REQUIRE(r.values.size() == 8);
  CHECK(r.values[0] == -1);
  CHECK(r.values[1] == EPERM);
  CHECK(r.values[2] == 1);
  CHECK(r.values[3] == -1);
  CHECK(r.values[4] == EPERM);
  CHECK(r.values[5] == EPERM);
  CHECK(r.values[6] == 0);
  CHECK(r.values[7] == 0);
}

TEST_CASE("under the filter backend::automatic does not crash and leaves the data alone",
          "[seccomp][move_pages]") {
  constexpr std::size_t pages = 8;
  numamove_test::mapping m(pages);
  m.touch(0, pages);
  std::vector<char> before(m.data, m.data + m.bytes);
  // backend::automatic decides from a probe of the process it runs in (numamove re-probes in
  // a forked child): the kernel path, refused with EPERM, or the userspace path. Each answer
  // is checked for what that path promises.
  numamove_test::seccomp_child child([&](child_channel& ch) {
    std::vector<void*> addresses(pages);
    for (std::size_t i = 0; i < pages; ++i) addresses[i] = m.at_page(i);
    std::vector<int> status(pages, 1000);
    std::vector<int> nodes(pages, home);
    errno = 0;
    ch.send(numamove::move_pages(0, pages, addresses.data(), nullptr, status.data(), 0));
    ch.send(errno);
    errno = 0;
    ch.send(numamove::move_pages(0, pages, addresses.data(), nodes.data(), status.data(),
                                 MPOL_MF_MOVE));
    ch.send(errno);
    const numamove::migration_result moved = numamove::migrate(m.data, m.bytes, home);
    ch.send(moved.error.value());
    ch.send(static_cast<int>(moved.used));
    ch.send(static_cast<std::int64_t>(moved.failed + moved.moved + moved.already_there));
    int located = 0;
    try {
      const std::vector<int> where = numamove::locate(m.data, m.bytes);
      located = where.empty() ? -1 : where.front();
    } catch (const std::system_error& e) {
      located = -e.code().value();
    }
    ch.send(located);
    ch.send(std::memcmp(m.data, before.data(), m.bytes) == 0);
    return 0;
  });
  const numamove_test::child_report& r = child.wait();
  INFO(r.describe());
  REQUIRE(r.finished);
  REQUIRE(r.values.size() == 9);
  const auto used = static_cast<numamove::backend>(r.values[5]);
  INFO("migrate() used backend::" << numamove::to_string(used));
  if (used == numamove::backend::kernel) {
    // The kernel's refusal, passed on as it is.
    CHECK(r.values[0] == -1);
    CHECK(r.values[1] == EPERM);
    CHECK(r.values[2] == -1);
    CHECK(r.values[3] == EPERM);
    CHECK(r.values[4] == EPERM);
    CHECK(r.values[6] == 0);       // no page claimed
    CHECK(r.values[7] == -EPERM);  // locate() threw std::system_error(EPERM)
  } else {
    // The userspace path: ENOSYS while it is a stub, then real answers; never a crash.
    REQUIRE(used == numamove::backend::userspace);
    CHECK((r.values[0] == 0 || (r.values[0] == -1 && r.values[1] == ENOSYS)));
    CHECK((r.values[2] == 0 || (r.values[2] == -1 && r.values[3] == ENOSYS)));
    CHECK((r.values[4] == 0 || r.values[4] == ENOSYS));
  }
  CHECK(r.values[8] == 1);  // contents intact
  // The parent's own query of the child's pid: the child's pages are where they were.
  const std::vector<int> where = numamove_test::kernel_query(m.data, pages, child.pid());
  CHECK(where == std::vector<int>(pages, home));
  CHECK(child.release() == 0);
}

TEST_CASE("the helper reports a child that crashes or throws instead of hanging", "[seccomp]") {
  SECTION("crash") {
    const auto r = numamove_test::run_in_seccomp_child([](child_channel& ch) {
      ch.send(1);
      ::raise(SIGSEGV);
      return 0;
    });
    CHECK(r.started);
    CHECK_FALSE(r.finished);
    CHECK(r.values == std::vector<std::int64_t>{1});
    CHECK(r.problem.find("signal 11") != std::string::npos);
  }
  SECTION("throw") {
    const auto r = numamove_test::run_in_seccomp_child(
        [](child_channel&) -> int { throw std::runtime_error("boom"); });
    CHECK(r.finished);
    CHECK(r.code == 125);
    CHECK(r.notes.find("boom") != std::string::npos);
  }
  SECTION("a conversation: the child waits for the parent") {
    numamove_test::seccomp_child child([](child_channel& ch) {
      ch.send(10);
      if (!ch.wait_for_parent()) return 3;
      ch.send(20);
      return 0;
    });
    CHECK(child.receive(1).values == std::vector<std::int64_t>{10});
    child.proceed();
    CHECK(child.wait().values == std::vector<std::int64_t>{10, 20});
    CHECK(child.release() == 0);
  }
}
