// locate() and bytes_per_node() on pages spread over real nodes, and what they say about pages
// that are on no node (never touched, the zero page).
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <map>
#include <vector>

#include "guest_support.hpp"

using namespace numamove_test;

TEST_CASE("locate() reports the node of each page, as the kernel does", "[multinode][locate]") {
  const std::vector<int> nodes = memory_nodes();
  constexpr std::size_t pages = 24;
  mapping m(pages);
  fill(m.data, m.bytes, 21);
  std::vector<int> targets(pages);
  std::vector<int> status;
  for (std::size_t i = 0; i < pages; ++i) {
    targets[i] = nodes[(i / 3) % nodes.size()];
    REQUIRE(kernel_move(m.at_page(i), 1, targets[i], status) == 0);
  }
  REQUIRE(kernel_query(m.data, pages) == targets);
  const auto* words = reinterpret_cast<const std::uint64_t*>(m.data);
  CHECK(numamove::locate(words, m.bytes / sizeof *words) == targets);

  // Bytes per node, the partial first and last pages counted by their bytes only.
  const std::size_t skip = 100;
  const std::size_t length = m.bytes - skip - 300;
  std::map<int, std::size_t> expected;
  for (std::size_t i = 0; i < pages; ++i) {
    const std::size_t from = std::max(i * page(), skip);
    const std::size_t to = std::min((i + 1) * page(), skip + length);
    if (to > from) expected[targets[i]] += to - from;
  }
  CHECK(numamove::bytes_per_node(m.data + skip, length) == expected);
  CHECK(first_mismatch(m.data, m.bytes, 21) == SIZE_MAX);
}

TEST_CASE("locate() says -ENOENT for a page never touched, on every kernel",
          "[multinode][locate]") {
  constexpr std::size_t pages = 4;
  mapping m(pages);
  fill(m.at_page(1), page(), 1);  // page 1 touched, 0, 2 and 3 not
  const std::vector<int> raw = kernel_query(m.data, pages);
  const int touched_on = raw[1];
  CHECK(touched_on >= 0);
  // The raw call's answer depends on the kernel (-EFAULT on 4.3 to 6.11, e.g. Debian 12's 6.1).
  for (const std::size_t i : {0u, 2u, 3u}) CHECK((raw[i] == -EFAULT || raw[i] == -ENOENT));
  const std::vector<int> located = numamove::locate(m.data, m.bytes);
  CHECK(located == std::vector<int>{-ENOENT, touched_on, -ENOENT, -ENOENT});
  const auto per_node = numamove::bytes_per_node(m.data, m.bytes);
  CHECK(per_node == std::map<int, std::size_t>{{-ENOENT, 3 * page()}, {touched_on, page()}});
}

TEST_CASE("locate() says -EFAULT for the zero page (read, never written)", "[multinode][locate]") {
  mapping m(2);
  volatile char sink = m.data[0];  // maps the shared zero page
  (void)sink;
  m.data[page()] = 1;
  const std::vector<int> located = numamove::locate(m.data, m.bytes);
  REQUIRE(located.size() == 2);
  CHECK(located[0] == -EFAULT);
  CHECK(located[1] >= 0);
}

TEST_CASE("migrate() leaves pages never touched untouched, on any target",
          "[multinode][locate][migrate]") {
  const std::vector<int> nodes = memory_nodes();
  constexpr std::size_t pages = 8;
  mapping m(pages);
  fill(m.data, 4 * page(), 31);  // pages 0-3 touched, 4-7 not
  const int to = nodes.back();
  const numamove::migration_result r = numamove::migrate(m.data, m.bytes, to);
  CHECK(r);
  CHECK(r.not_present == 4);
  CHECK(r.failed == 0);
  CHECK(r.moved + r.already_there == 4);
  for (std::size_t i = 0; i < pages; ++i) {
    INFO("page " << i);
    CHECK(r.status[i] == (i < 4 ? to : -ENOENT));
    CHECK(present(m.at_page(i)) == (i < 4));
  }
  CHECK(kernel_query(m.data, 4) == std::vector<int>(4, to));
  CHECK(first_mismatch(m.data, 4 * page(), 31) == SIZE_MAX);
}
