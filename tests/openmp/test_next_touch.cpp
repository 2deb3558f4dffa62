// next_touch on this machine: the first touch of each page is caught and resolved once, every
// write lands, contents and addresses stay, and unmarking gives untouched pages back.
#include <omp.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <system_error>
#include <vector>

#include <numamove/openmp.hpp>

#include "support/catch.hpp"
#include "support/pages.hpp"

using numamove_test::mapping;
using numamove_test::page;

namespace {
const int home = numamove::topology::system().nodes().front();
}

TEST_CASE("next_touch: each first touch places its page on the toucher's node", "[next_touch]") {
  mapping m(32);
  m.touch(0, 16);  // pages 16..31 are never touched before marking
  std::vector<char> before(m.data, m.data + m.bytes);
  {
    numamove::openmp::next_touch marked(m.data, m.bytes);
    CHECK(marked.pages() == 32);
    CHECK(marked.armed() == 32);
    // Reads count as touches too: odd pages are read, even pages written.
    long sum = 0;
#pragma omp parallel for schedule(static) num_threads(2) reduction(+ : sum)
    for (int i = 0; i < 32; ++i) {
      if (i % 2 == 0) m.at_page(static_cast<std::size_t>(i))[1] = 'w';
      else sum += m.at_page(static_cast<std::size_t>(i))[1];
    }
    CHECK(marked.armed() == 0);
    CHECK(marked.local() == 32);  // one node: everything is local
    CHECK(marked.moved() == 0);
    CHECK(marked.failed() == 0);
    CHECK(sum != 0);
  }
  for (std::size_t i = 0; i < 32; ++i) {
    INFO("page " << i);
    CHECK(m.at_page(i)[1] == (i % 2 == 0 ? 'w' : before[i * page() + 1]));
    CHECK(std::memcmp(m.at_page(i) + 2, before.data() + i * page() + 2, page() - 2) == 0);
  }
  const auto status = numamove_test::kernel_query(m.data, 32);
  for (std::size_t i = 0; i < 32; i += 2) CHECK(status[i] == home);
}

TEST_CASE("next_touch: concurrent touches of one page resolve once and lose no write", "[next_touch]") {
  mapping m(4);
  m.touch(0, 4, 0);
  const int threads = 2;
  constexpr int writes = 2000;
  for (int round = 0; round < 20; ++round) {
    std::memset(m.data, 0, m.bytes);
    numamove::openmp::next_touch marked(m.data, m.bytes);
    std::atomic<int> ready{0};
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
      ready.fetch_add(1);
      while (ready.load() < omp_get_num_threads()) {}
      // Every thread writes its own bytes of every page, all at once.
      auto* counters = reinterpret_cast<std::uint32_t*>(m.data);
      for (int k = 0; k < writes; ++k)
        for (std::size_t p = 0; p < 4; ++p) ++counters[p * page() / sizeof(std::uint32_t) + static_cast<std::size_t>(t)];
    }
    REQUIRE(marked.armed() == 0);
    CHECK(marked.local() + marked.moved() + marked.failed() == 4);
    const auto* counters = reinterpret_cast<const std::uint32_t*>(m.data);
    for (std::size_t p = 0; p < 4; ++p)
      for (std::size_t t = 0; t < threads; ++t) REQUIRE(counters[p * page() / sizeof(std::uint32_t) + t] == writes);
  }
}

TEST_CASE("next_touch: unmarking gives untouched pages their protection back where they are", "[next_touch]") {
  mapping m(8);
  m.touch(0, 8, 3);
  std::vector<char> before(m.data, m.data + m.bytes);
  numamove::openmp::next_touch marked(m.data, m.bytes);
  m.at_page(2)[0] = 'x';
  CHECK(marked.armed() == 7);
  marked.disarm();
  marked.disarm();  // once is enough
  CHECK(marked.armed() == 0);
  CHECK(marked.local() == 1);
  before[2 * page()] = 'x';
  CHECK(std::memcmp(m.data, before.data(), m.bytes) == 0);  // readable again, unchanged
  m.at_page(7)[0] = 'y';                                      // and writable
  CHECK(numamove_test::kernel_query(m.data, 8) == std::vector<int>(8, home));
}

TEST_CASE("next_touch: a range mixing permissions or an unmapped range is refused", "[next_touch]") {
  mapping m(4);
  m.touch(0, 4);
  REQUIRE(::mprotect(m.at_page(2), 2 * page(), PROT_READ) == 0);
  try {
    numamove::openmp::next_touch marked(m.data, m.bytes);
    FAIL("marked a range with two permissions");
  } catch (const std::system_error& e) {
    CHECK(e.code().value() == EINVAL);
  }
  // A read-only range can be marked, and reading a page places it.
  {
    numamove::openmp::next_touch marked(m.at_page(2), 2 * page());
    CHECK(m.at_page(3)[0] == static_cast<char>(1 + 3));
    CHECK(marked.local() == 1);
  }
  REQUIRE(::mprotect(m.at_page(2), 2 * page(), PROT_READ | PROT_WRITE) == 0);
  void* hole = ::mmap(nullptr, page(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(::munmap(hole, page()) == 0);
  try {
    numamove::openmp::next_touch marked(static_cast<char*>(hole), page());
    FAIL("marked an unmapped page");
  } catch (const std::system_error& e) {
    CHECK(e.code().value() == EINVAL);
  }
}
