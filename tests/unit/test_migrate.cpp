// migrate(), locate() and bytes_per_node() on one node: what they report, what they leave alone.
#include <sys/mman.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <numeric>
#include <vector>

#include <numamove/numamove.hpp>

#include "support/catch.hpp"
#include "support/pages.hpp"

using numamove_test::home;
using numamove_test::mapping;
using numamove_test::page;

TEST_CASE("migrate to the node the data is on moves nothing and reports every page", "[migrate]") {
  mapping m(16);
  m.touch(0, 12);
  auto* words = reinterpret_cast<std::uint64_t*>(m.data);
  const std::size_t count = m.bytes / sizeof(std::uint64_t);
  const numamove::migration_result r = numamove::migrate(words, count, home);
  CHECK(r);
  CHECK_FALSE(r.error);
  CHECK(r.used == numamove::backend::kernel);
  CHECK(r.status.size() == 16);
  CHECK(r.first_page == m.data);
  CHECK(r.already_there == 12);
  CHECK(r.not_present == 4);
  CHECK(r.moved == 0);
  CHECK(r.failed == 0);
  CHECK(r.bytes == 0);
  for (std::size_t i = 0; i < 16; ++i) CHECK(r.status[i] == (i < 12 ? home : -ENOENT));
  // Never-touched pages stay unallocated.
  CHECK(numamove_test::kernel_query(m.at_page(12), 4) != std::vector<int>(4, home));
}

TEST_CASE("migrate covers every page the bytes touch, partial pages included", "[migrate]") {
  mapping m(4);
  m.touch(0, 4);
  // 3 bytes straddling the boundary of pages 1 and 2.
  const numamove::migration_result r = numamove::migrate(m.at_page(2) - 1, 3, home);
  CHECK(r.status.size() == 2);
  CHECK(r.first_page == m.at_page(1));
  CHECK(r.already_there == 2);
}

TEST_CASE("migrate of nothing succeeds with no pages", "[migrate]") {
  int* nothing = nullptr;
  const numamove::migration_result r = numamove::migrate(nothing, 0, home);
  CHECK(r);
  CHECK(r.status.empty());
}

TEST_CASE("migrate of containers and C arrays", "[migrate]") {
  std::vector<double> v(100000, 1.5);
  CHECK(numamove::migrate(v, home).already_there == numamove::locate(v.data(), v.size()).size());
  static std::array<int, 4096> a{};
  a.fill(3);
  CHECK(numamove::migrate(a, home));
  int c[2048] = {};
  c[7] = 1;
  CHECK(numamove::migrate(c, home));
  CHECK(v[99999] == 1.5);
  CHECK(a[4095] == 3);
  CHECK(c[7] == 1);
}

TEST_CASE("migrate reports call-level errors and leaves the data as it was", "[migrate][errors]") {
  mapping m(2);
  m.touch(0, 2, 40);
  numamove::migrate_options options;
  SECTION("ENODEV for a node that does not exist") {
    for (const int bad : {-1, numamove::topology::system().nodes().back() + 1, 4096}) {
      const numamove::migration_result r = numamove::migrate(m.data, m.bytes, bad);
      CHECK(r.error == std::errc::no_such_device);
      CHECK_FALSE(r);
      CHECK(r.status.empty());
    }
  }
  SECTION("EINVAL for unknown flags") {
    options.flags = MPOL_MF_MOVE | 8;
    CHECK(numamove::migrate(m.data, m.bytes, home, options).error == std::errc::invalid_argument);
  }
  SECTION("EFAULT status for pages with no mapping") {
    char* gone = numamove_test::never_mapped();
    const numamove::migration_result r = numamove::migrate(gone, 2 * page(), home);
    CHECK_FALSE(r);
    CHECK_FALSE(r.error);
    CHECK(r.failed == 2);
    CHECK(r.status == std::vector<int>{-EFAULT, -EFAULT});
  }
  CHECK(m.data[0] == 40);
  CHECK(m.data[page()] == 41);
}

TEST_CASE("migrate over transparent huge pages", "[migrate][thp]") {
  const std::size_t huge = numamove_test::huge_page_bytes;
  const numamove_test::aligned_mapping m(huge, huge);
  char* aligned = m.data;
  ::madvise(aligned, huge, MADV_HUGEPAGE);
  std::memset(aligned, 5, huge);
  const numamove::migration_result r = numamove::migrate(aligned, huge, home);
  CHECK(r);
  CHECK(r.already_there == huge / page());
  CHECK(aligned[huge - 1] == 5);
}

TEST_CASE("locate gives one entry per page with one query", "[locate]") {
  mapping m(3);
  m.touch(1, 1);
  const std::vector<int> where = numamove::locate(m.data, m.bytes);
  CHECK(where == std::vector<int>{-ENOENT, home, -ENOENT});
  CHECK(where == numamove::locate(reinterpret_cast<const std::uint32_t*>(m.data), m.bytes / 4));
}

TEST_CASE("bytes_per_node counts the bytes of the range only", "[locate]") {
  mapping m(3);
  m.touch(0, 2);
  // From the middle of page 0 to the middle of page 2.
  const std::size_t half = page() / 2;
  const auto bytes = numamove::bytes_per_node(m.data + half, 2 * page());
  CHECK(bytes.at(home) == page() + half);
  CHECK(bytes.at(-ENOENT) == half);
  CHECK(bytes.size() == 2);
}

TEST_CASE("locate of memory that is not mapped reports -EFAULT", "[locate]") {
  const char* gone = numamove_test::never_mapped();
  CHECK(numamove::locate(gone, 1) == std::vector<int>{-EFAULT});
}

TEST_CASE("a range that does not fit in the address space is EFAULT, not a crash",
          "[migrate][errors]") {
  auto* near_top = reinterpret_cast<std::uint64_t*>(UINTPTR_MAX - 64);
  CHECK(numamove::migrate(near_top, 1000, home).error == std::errc::bad_address);
  CHECK(numamove::migrate(reinterpret_cast<std::uint64_t*>(4096), SIZE_MAX / 4, home).error ==
        std::errc::bad_address);
  try {
    numamove::locate(near_top, 1000);
    FAIL("locate did not throw");
  } catch (const std::system_error& e) {
    CHECK(e.code().value() == EFAULT);
  }
}
