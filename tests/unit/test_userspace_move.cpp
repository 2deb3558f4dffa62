// The userspace migrator's copy path and its call-level contract, on this machine: forced moves
// to the node the pages are on relocate them for real (new page frames, same addresses,
// contents, protections, huge pages); call-level errors match backend::kernel's.
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <climits>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <numamove/capabilities.hpp>
#include <numamove/numamove.hpp>

#include "support/catch.hpp"
#include "support/child.hpp"
#include "support/pages.hpp"
#include "support/patterns.hpp"
#include "support/seccomp_filter.hpp"
#include "test_userspace_support.hpp"

using numamove::backend;
using namespace numamove_test;
namespace us = numamove::detail::userspace;

namespace {

bool thp_available() {
  const std::string mode = numamove::capabilities::of_this_process().thp;
  return mode == "always" || mode == "madvise";
}

// rc, or 1000 + errno for -1: one number to compare between the backends.
long outcome(long rc) {
  return rc == -1 ? 1000 + errno : rc;
}

}  // namespace

TEST_CASE("userspace: a forced move keeps addresses, contents and protections",
          "[userspace][move]") {
  constexpr std::size_t pages = 12;
  mapping m(pages);
  fill(m.data, pages * page(), 3);
  // Pages 0-2 rw, 3-5 read-only, 6-8 PROT_NONE, 9-11 read+exec.
  REQUIRE(::mprotect(m.at_page(3), 3 * page(), PROT_READ) == 0);
  REQUIRE(::mprotect(m.at_page(6), 3 * page(), PROT_NONE) == 0);
  REQUIRE(::mprotect(m.at_page(9), 3 * page(), PROT_READ | PROT_EXEC) == 0);
  const snapshot before(m.data, pages);
  const bool protect = GENERATE(true, false);
  INFO("protect_writes " << protect);
  relocation_options options;
  options.force = true;
  options.protect_writes = protect;
  std::vector<int> status;
  REQUIRE(move(m.data, pages, home, status, MPOL_MF_MOVE, options) == 0);
  CHECK(status == std::vector<int>(pages, home));
  for (std::size_t i = 0; i < pages; ++i) check_page(before, m.data, i, true);
  REQUIRE(::mprotect(m.data, m.bytes, PROT_READ) == 0);
  CHECK(first_bad_page(m.data, pages, 3) == pages);
}

TEST_CASE("userspace: moved pages are still writable and private", "[userspace][move]") {
  mapping m(4);
  fill(m.data, 4 * page());
  std::vector<int> status;
  REQUIRE(force_move(m.data, 4, home, status) == 0);
  m.data[10] = 'x';
  m.at_page(3)[1] = 'y';
  CHECK(m.data[10] == 'x');
  CHECK(m.at_page(3)[1] == 'y');
  CHECK((pagemap(m.data) >> 56 & 1) == 1);
  CHECK(smaps_of(m.data).find("rw-p") != std::string::npos);
}

TEST_CASE("userspace: huge pages survive a move and re-back a region that asks for them",
          "[userspace][move][thp]") {
  if (!thp_available()) {
    WARN("SKIPPED (transparent huge pages are off here)");
    return;
  }
  aligned_mapping m(2 * huge_page_bytes, huge_page_bytes);
  SECTION("THP-backed pages stay THP-backed") {
    REQUIRE(::madvise(m.data, m.bytes, MADV_HUGEPAGE) == 0);
    fill(m.data, m.bytes);
    if (anon_huge_bytes(m.data) < m.bytes) {
      WARN("SKIPPED (the kernel gave no huge pages: memory too fragmented)");
      return;
    }
  }
  SECTION("4 KiB pages of a region that now asks for huge pages get them (force re-backs)") {
    REQUIRE(::madvise(m.data, m.bytes, MADV_NOHUGEPAGE) == 0);
    fill(m.data, m.bytes);
    REQUIRE(anon_huge_bytes(m.data) == 0);
    REQUIRE(::madvise(m.data, m.bytes, MADV_HUGEPAGE) == 0);
  }
  const std::uint64_t before = pfn(m.data);
  std::vector<int> status;
  REQUIRE(force_move(m.data, m.bytes / page(), home, status) == 0);
  CHECK(status == std::vector<int>(m.bytes / page(), home));
  CHECK(first_bad_page(m.data, m.bytes / page()) == m.bytes / page());
  if (before != 0) CHECK(pfn(m.data) != before);
  if (anon_huge_bytes(m.data) < m.bytes)
    WARN("the fresh pages got no huge pages (fragmented memory?)");
  CHECK(anon_huge_bytes(m.data) > 0);
}

TEST_CASE("userspace: a huge-page block with a hole gets base pages, the hole stays untouched",
          "[userspace][move][thp]") {
  if (!thp_available()) {
    WARN("SKIPPED (transparent huge pages are off here)");
    return;
  }
  aligned_mapping m(huge_page_bytes, huge_page_bytes);
  const std::size_t pages = huge_page_bytes / page();
  if (!huge_block_with_hole(m, 5)) {
    WARN("SKIPPED (khugepaged filled the hole of 5 blocks in a row)");
    return;
  }
  std::vector<int> status;
  REQUIRE(force_move(m.data, pages, home, status) == 0);
  CHECK(status[4] == home);
  CHECK(status[5] == -ENOENT);
  CHECK(status[6] == home);
  CHECK_FALSE(present(m.data + 5 * page()));
  CHECK(anon_huge_bytes(m.data) == 0);
  std::size_t damaged = 0;
  for (std::size_t p = 0; p < pages; ++p) damaged += p != 5 && !page_intact(m.data, p);
  CHECK(damaged == 0);
}

TEST_CASE("userspace: several workers copy a large range", "[userspace][move]") {
  constexpr std::size_t pages = 16384;  // 64 MiB
  mapping m(pages);
  for (std::size_t p = 0; p < pages; ++p) std::memcpy(m.at_page(p), &p, sizeof p);
  relocation_options options;
  options.force = true;
  options.workers = GENERATE(1u, 2u, 3u);
  std::vector<int> status;
  REQUIRE(move(m.data, pages, home, status, MPOL_MF_MOVE, options) == 0);
  CHECK(status == std::vector<int>(pages, home));
  std::size_t bad = 0;
  for (std::size_t p = 0; p < pages; ++p) bad += std::memcmp(m.at_page(p), &p, sizeof p) != 0;
  CHECK(bad == 0);
}

TEST_CASE("userspace: pages in any order, some twice, several mappings", "[userspace][move]") {
  mapping a(3);
  mapping b(3);
  a.touch(0, 3, 10);
  b.touch(0, 3, 40);
  std::vector<void*> pages{b.at_page(2), a.at_page(1),     a.data,
                           b.data,       a.at_page(1) + 5, b.at_page(1)};
  std::vector<int> nodes(pages.size(), home);
  std::vector<int> status(pages.size(), 1000);
  REQUIRE(us::move_pages(0, pages.size(), pages.data(), nodes.data(), status.data(), 0,
                         {true, true, 0}) == 0);
  CHECK(status == std::vector<int>(pages.size(), home));
  CHECK(*a.at_page(1) == 11);
  CHECK(*b.at_page(2) == 42);
}

TEST_CASE("userspace: call-level errors are the kernel's, in the kernel's order",
          "[userspace][errors]") {
  mapping m(2);
  m.touch(0, 2);
  std::vector<void*> pages{m.data, m.at_page(1)};
  const std::vector<int> nodes{home, home};
  const auto both = [&](int pid, unsigned long count, void** p, const int* n, int* s, int flags) {
    const long kernel = outcome(numamove::move_pages(pid, count, p, n, s, flags, backend::kernel));
    const long userspace =
        outcome(numamove::move_pages(pid, count, p, n, s, flags, backend::userspace));
    CHECK(userspace == kernel);
    return userspace;
  };
  std::vector<int> status{99, 99};
  SECTION("count 0 returns 0 without reading the arrays") {
    CHECK(both(0, 0, nullptr, nullptr, nullptr, MPOL_MF_MOVE) == 0);
  }
  SECTION("EINVAL: unknown flags, also when querying, before the pid") {
    CHECK(both(0, 2, pages.data(), nodes.data(), status.data(), MPOL_MF_MOVE | 1) == 1000 + EINVAL);
    CHECK(both(vanished_pid(), 2, pages.data(), nullptr, status.data(), 1 << 5) == 1000 + EINVAL);
  }
  SECTION("EPERM: MPOL_MF_MOVE_ALL without CAP_SYS_NICE, before ESRCH") {
    const pid_t gone = vanished_pid();
    CHECK(in_child([&] {
            if (drop_capability(CAP_SYS_NICE) != 0) return 90;
            numamove::capabilities::refresh();
            void* p = pages[0];
            int s = 0;
            errno = 0;
            if (numamove::move_pages(gone, 1, &p, nullptr, &s, MPOL_MF_MOVE_ALL,
                                     backend::userspace) != -1)
              return 91;
            return errno == EPERM ? 0 : 92;
          }) == 0);
  }
  SECTION("ESRCH: no such process") {
    CHECK(both(vanished_pid(), 2, pages.data(), nullptr, status.data(), 0) == 1000 + ESRCH);
  }
  SECTION("EPERM: another user's process") {
    CHECK(in_child([&] {
            if (::setgid(65534) != 0 || ::setuid(65534) != 0) return 90;
            void* p = pages[0];
            int s = 0;
            errno = 0;
            if (numamove::move_pages(1, 1, &p, nullptr, &s, 0, backend::userspace) != -1) return 91;
            return errno == EPERM ? 0 : 92;
          }) == 0);
  }
  SECTION("ENODEV: a node that does not exist, earlier entries handled and reported") {
    for (const int bad : {-1, 1 << 20, INT_MAX, numamove::topology::system().nodes().back() + 1}) {
      status = {99, 99};
      const std::vector<int> some_bad{home, bad};
      errno = 0;
      CHECK(numamove::move_pages(0, 2, pages.data(), some_bad.data(), status.data(), MPOL_MF_MOVE,
                                 backend::userspace) == -1);
      CHECK(errno == ENODEV);
      CHECK(status[0] == home);
      CHECK(status[1] == 99);
    }
  }
  SECTION("EFAULT: arrays that cannot be read or written, found without a crash") {
    CHECK(both(0, 2, nullptr, nullptr, status.data(), 0) == 1000 + EFAULT);
    CHECK(both(0, 2, pages.data(), nullptr, nullptr, 0) == 1000 + EFAULT);
    CHECK(both(0, 2, pages.data(), nodes.data(), nullptr, MPOL_MF_MOVE) == 1000 + EFAULT);
    int* unwritable = static_cast<int*>(static_cast<void*>(const_cast<char*>("read-only string!")));
    CHECK(both(0, 1, pages.data(), nullptr, unwritable, 0) == 1000 + EFAULT);
    CHECK(both(0, 1, pages.data(), reinterpret_cast<const int*>(16), status.data(), MPOL_MF_MOVE) ==
          1000 + EFAULT);
  }
  SECTION("EFAULT in the middle of the pages array: the entries before it are handled") {
    // Two entries at the end of one page, the rest of the array on a page that is not mapped.
    char* two = static_cast<char*>(
        ::mmap(nullptr, 2 * page(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    REQUIRE(::munmap(two + page(), page()) == 0);
    void** array = reinterpret_cast<void**>(two + page() - 2 * sizeof(void*));
    array[0] = pages[0];
    array[1] = pages[1];
    std::vector<int> many(4, 99);
    std::vector<int> four_nodes(4, home);
    errno = 0;
    CHECK(numamove::move_pages(0, 4, array, four_nodes.data(), many.data(), MPOL_MF_MOVE,
                               backend::userspace) == -1);
    CHECK(errno == EFAULT);
    CHECK(many == std::vector<int>{home, home, 99, 99});
    ::munmap(two, page());
  }
  CHECK(*m.at_page(1) == 1 + 1);
}

TEST_CASE("userspace: without process_vm_readv the caller's arrays are read through a pipe",
          "[userspace][errors]") {
  mapping m(2);
  m.touch(0, 2);
  char* two = static_cast<char*>(
      ::mmap(nullptr, 2 * page(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  REQUIRE(::munmap(two + page(), page()) == 0);
  CHECK(
      in_child([&] {
        if (refuse_syscalls({SYS_process_vm_readv, SYS_process_vm_writev}) != 0) return 90;
        std::vector<void*> pages{m.data, m.at_page(1)};
        std::vector<int> nodes{home, home};
        std::vector<int> status{99, 99};
        if (numamove::move_pages(0, 2, pages.data(), nodes.data(), status.data(), 0,
                                 backend::userspace) != 0)
          return 91;
        if (status != std::vector<int>{home, home}) return 92;
        errno = 0;
        if (numamove::move_pages(0, 2, nullptr, nullptr, status.data(), 0, backend::userspace) !=
                -1 ||
            errno != EFAULT)
          return 93;
        int* unwritable =
            static_cast<int*>(static_cast<void*>(const_cast<char*>("read-only string!")));
        errno = 0;
        if (numamove::move_pages(0, 1, pages.data(), nullptr, unwritable, 0, backend::userspace) !=
                -1 ||
            errno != EFAULT)
          return 94;
        void** array = reinterpret_cast<void**>(two + page() - sizeof(void*));
        array[0] = m.data;
        std::vector<int> many(3, 99);
        errno = 0;
        if (numamove::move_pages(0, 3, array, nullptr, many.data(), 0, backend::userspace) != -1 ||
            errno != EFAULT)
          return 95;
        return many == std::vector<int>{home, 99, 99} ? 0 : 96;
      }) == 0);
  ::munmap(two, page());
}

TEST_CASE("userspace: another process's pages can be queried, not moved", "[userspace][errors]") {
  mapping m(2);
  m.touch(0, 1);
  held_child child([] {});
  REQUIRE(child.pid() > 0);
  std::vector<void*> pages{m.data, m.at_page(1)};
  std::vector<int> status{99, 99};
  CHECK(numamove::move_pages(child.pid(), 2, pages.data(), nullptr, status.data(), 0,
                             backend::userspace) == 0);
  // The touched page where the kernel says; the untouched one -ENOENT, which the kernel says
  // from 6.12 on (-EFAULT before; docs/semantics.md).
  CHECK(status[0] == numamove_test::kernel_query(m.data, 1, child.pid())[0]);
  CHECK(status[1] == -ENOENT);
  const std::vector<int> nodes{home, home};
  errno = 0;
  CHECK(numamove::move_pages(child.pid(), 2, pages.data(), nodes.data(), status.data(),
                             MPOL_MF_MOVE, backend::userspace) == -1);
  CHECK(errno == EOPNOTSUPP);
}

TEST_CASE("userspace: migrate() through the userspace path", "[userspace][migrate]") {
  mapping m(16);
  m.touch(0, 12);
  numamove::migrate_options options;
  options.path = backend::userspace;
  SECTION("pages already there are skipped and counted") {
    const numamove::migration_result r = numamove::migrate(m.data, m.bytes, home, options);
    CHECK(r);
    CHECK(r.used == backend::userspace);
    CHECK(r.already_there == 12);
    CHECK(r.not_present == 4);
    CHECK(r.moved == 0);
  }
  SECTION("force moves them, and automatic with force takes the userspace path") {
    options.force = true;
    options.path = GENERATE(backend::userspace, backend::automatic);
    const std::uint64_t before = pfn(m.data);
    const numamove::migration_result r = numamove::migrate(m.data, m.bytes, home, options);
    CHECK(r);
    CHECK(r.used == backend::userspace);
    CHECK(r.moved == 12);
    CHECK(r.already_there == 0);
    CHECK(r.not_present == 4);
    CHECK(r.bytes == 12 * page());
    CHECK(r.node_unknown == 0);
    if (before != 0) CHECK(pfn(m.data) != before);
    for (std::size_t i = 0; i < 16; ++i) CHECK(r.status[i] == (i < 12 ? home : -ENOENT));
  }
  SECTION("force with backend::kernel is EINVAL, nothing moved") {
    options.force = true;
    options.path = backend::kernel;
    const std::uint64_t before = pfn(m.data);
    const numamove::migration_result r = numamove::migrate(m.data, m.bytes, home, options);
    CHECK(r.error == std::errc::invalid_argument);
    CHECK(pfn(m.data) == before);
  }
  CHECK(*m.at_page(11) == 1 + 11);
}

TEST_CASE("userspace: containers on the heap, on the stack of no one, and in the data segment move",
          "[userspace][migrate]") {
  numamove::migrate_options options;
  options.force = true;
  std::vector<double> v(100000, 1.5);
  static std::array<int, 8192> a{};
  a.fill(3);
  const numamove::migration_result rv = numamove::migrate(v, home, options);
  const numamove::migration_result ra = numamove::migrate(a, home, options);
  CHECK(rv);
  CHECK(ra);
  CHECK(rv.moved > 0);
  CHECK(ra.moved > 0);
  CHECK(v[99999] == 1.5);
  CHECK(a[8191] == 3);
  std::vector<int> after(1000, 7);  // the heap still works
  CHECK(after[999] == 7);
}

TEST_CASE("userspace: first-touch placement by a pinned worker, for the allocator",
          "[userspace][allocator]") {
  const std::size_t bytes = 64 * page();
  void* memory = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(memory != MAP_FAILED);
  const numamove::topology& machine = numamove::topology::system();
  std::vector<int> expected(64, home);
  SECTION("on one node") {
    CHECK(us::place_by_first_touch(memory, bytes, numamove::placement::on_node(home)) == 0);
  }
  SECTION("interleaved over every node, page by page") {
    const std::vector<int> nodes = machine.nodes();
    const bool all_have_cpus = std::all_of(
        nodes.begin(), nodes.end(), [&](int node) { return !machine.cpus_of(node).empty(); });
    const int rc = us::place_by_first_touch(memory, bytes, numamove::placement::interleave(nodes));
    if (!all_have_cpus) {
      CHECK(rc == EHOSTUNREACH);  // a node without CPUs: no thread can touch pages there first
      ::munmap(memory, bytes);
      return;
    }
    CHECK(rc == 0);
    for (std::size_t i = 0; i < expected.size(); ++i) expected[i] = nodes[i % nodes.size()];
  }
  CHECK(numamove_test::kernel_query(memory, 64) == expected);
  ::munmap(memory, bytes);
}

TEST_CASE("capabilities: the probe of this process and its report", "[userspace][capabilities]") {
  const numamove::capabilities& here = numamove::capabilities::of_this_process();
  CHECK(&here == &numamove::capabilities::of_this_process());  // probed once
  CHECK(here.move_pages_query);
  CHECK(here.move_pages_move);
  CHECK(here.automatic() == backend::kernel);
  CHECK(here.pagemap);
  REQUIRE(here.find(home) != nullptr);
  CHECK(here.can_place_on(home));
  CHECK_FALSE(here.can_place_on(-1));
  const std::string report = here.report();
  CHECK(report.find("backend::automatic     -> kernel") != std::string::npos);
  CHECK(report.find("node " + std::to_string(home) + ": cpus [") != std::string::npos);
  // A child probes again: what its parent found need not hold there.
  CHECK(in_child([] {
          const numamove::capabilities& child = numamove::capabilities::of_this_process();
          return child.move_pages_query ? 0 : 1;
        }) == 0);
}
