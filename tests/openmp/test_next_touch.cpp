// next_touch on this machine: the first touch of each page is caught and resolved once, every
// write lands, contents and addresses stay, and unmarking gives untouched pages back.
#include <omp.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

#include <numamove/capabilities.hpp>
#include <numamove/openmp.hpp>

#include "support/catch.hpp"
#include "support/child.hpp"
#include "support/pages.hpp"
#include "support/seccomp_child.hpp"

using numamove_test::home;
using numamove_test::mapping;
using numamove_test::page;

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
      if (i % 2 == 0)
        m.at_page(static_cast<std::size_t>(i))[1] = 'w';
      else
        sum += m.at_page(static_cast<std::size_t>(i))[1];
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

TEST_CASE("next_touch: concurrent touches of one page resolve once and lose no write",
          "[next_touch]") {
  mapping m(4);
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
      while (ready.load() < omp_get_num_threads()) {
      }
      // Every thread writes its own bytes of every page, all at once.
      auto* counters = reinterpret_cast<std::uint32_t*>(m.data);
      for (int k = 0; k < writes; ++k)
        for (std::size_t p = 0; p < 4; ++p)
          ++counters[p * page() / sizeof(std::uint32_t) + static_cast<std::size_t>(t)];
    }
    REQUIRE(marked.armed() == 0);
    CHECK(marked.local() + marked.moved() + marked.failed() == 4);
    const auto* counters = reinterpret_cast<const std::uint32_t*>(m.data);
    for (std::size_t p = 0; p < 4; ++p)
      for (std::size_t t = 0; t < threads; ++t)
        REQUIRE(counters[p * page() / sizeof(std::uint32_t) + t] == writes);
  }
}

TEST_CASE("next_touch: unmarking gives untouched pages their protection back where they are",
          "[next_touch]") {
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
  m.at_page(7)[0] = 'y';                                    // and writable
  CHECK(numamove_test::kernel_query(m.data, 8) == std::vector<int>(8, home));
}

TEST_CASE("next_touch: a range mixing permissions or an unmapped range is refused",
          "[next_touch]") {
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
  char* hole = numamove_test::never_mapped();
  try {
    numamove::openmp::next_touch marked(hole, page());
    FAIL("marked an unmapped page");
  } catch (const std::system_error& e) {
    CHECK(e.code().value() == EINVAL);
  }
}

// Where move_pages(2) is refused (the Docker-like filter), each toucher re-backs its page, with
// the same address and contents. (The new page often gets the old page's frame back: it is
// freed just before; the multi-node guest shows where the pages land.)
TEST_CASE(
    "next_touch without move_pages: touchers re-back their pages, contents and addresses stay",
    "[next_touch][userspace]") {
  constexpr std::size_t pages = 32;
  mapping m(pages);
  numamove_test::seccomp_child child([&](numamove_test::child_channel& ch) {
    m.touch(0, 16, 40);  // the child's own pages; 16..31 never touched, 24..31 read (the zero page)
    std::vector<char> before(m.data, m.data + m.bytes);
    for (std::size_t i = 16; i < 24; ++i) ::madvise(m.at_page(i), page(), MADV_DONTNEED);
    bool sums_ok = true;
    {
      numamove::openmp::next_touch marked(m.data, m.bytes);
      ch.send(static_cast<int>(numamove::capabilities::of_this_process().automatic()));  // 0
      // Two threads; even pages are written, odd pages read.
      std::vector<std::thread> touchers;
      for (std::size_t t = 0; t < 2; ++t)
        touchers.emplace_back([&, t] {
          long sum = 0;
          for (std::size_t i = t; i < pages; i += 2) {
            if (i % 2 == 0)
              m.at_page(i)[1] = 'w';
            else
              sum += m.at_page(i)[1];
          }
          if (t == 1 && sum != 8 * 40 + (1 + 3 + 5 + 7 + 9 + 11 + 13 + 15))
            sums_ok = false;  // pages 16.. read 0
        });
      for (std::thread& t : touchers) t.join();
      ch.send(static_cast<std::int64_t>(marked.armed()));   // 1
      ch.send(static_cast<std::int64_t>(marked.moved()));   // 2
      ch.send(static_cast<std::int64_t>(marked.local()));   // 3
      ch.send(static_cast<std::int64_t>(marked.failed()));  // 4
    }
    bool intact = sums_ok;
    for (std::size_t i = 0; i < pages; ++i) {
      if (i % 2 == 0) before[i * page() + 1] = 'w';
      intact = intact && std::memcmp(m.at_page(i), before.data() + i * page(), page()) == 0;
    }
    ch.send(intact);                                   // 5
    ch.send(reinterpret_cast<std::intptr_t>(m.data));  // 6
    ch.wait_for_parent();
    return 0;
  });
  const numamove_test::child_report& r = child.receive(7);
  INFO(r.describe());
  REQUIRE(r.values.size() == 7);
  CHECK(r.values[0] == static_cast<int>(numamove::backend::userspace));
  CHECK(r.values[1] == 0);
  CHECK(r.values[2] == 16);  // every present page, re-backed by its toucher
  CHECK(r.values[3] ==
        16);  // not present, or the zero page: allocated (or read as zero) by the touch
  CHECK(r.values[4] == 0);
  CHECK(r.values[5] == 1);
  CHECK(reinterpret_cast<char*>(static_cast<std::intptr_t>(r.values[6])) == m.data);
  const std::vector<int> status = numamove_test::kernel_query(m.data, pages, child.pid());
  for (std::size_t i = 0; i < pages; ++i) {
    INFO("page " << i);
    if (i < 16 || i % 2 == 0) CHECK(status[i] == home);
  }
  child.proceed();
  CHECK(child.release() == 0);
}

TEST_CASE("next_touch without move_pages: concurrent touches lose no write; shared pages stay",
          "[next_touch][userspace]") {
  mapping m(4);
  char* shared = static_cast<char*>(
      ::mmap(nullptr, page(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  REQUIRE(shared != MAP_FAILED);
  numamove_test::seccomp_child child([&](numamove_test::child_channel& ch) {
    constexpr std::uint32_t writes = 2000;
    bool every_write = true;
    bool all_resolved = true;
    for (int round = 0; round < 10; ++round) {
      std::memset(m.data, 0, m.bytes);
      numamove::openmp::next_touch marked(m.data, m.bytes);
      std::atomic<int> ready{0};
      std::vector<std::thread> writers;
      for (std::size_t t = 0; t < 2; ++t)
        writers.emplace_back([&, t] {
          ready.fetch_add(1);
          while (ready.load() < 2) {
          }
          auto* counters = reinterpret_cast<std::uint32_t*>(m.data);
          for (std::uint32_t k = 0; k < writes; ++k)
            for (std::size_t p = 0; p < 4; ++p) ++counters[p * page() / sizeof(std::uint32_t) + t];
        });
      for (std::thread& t : writers) t.join();
      all_resolved = all_resolved && marked.armed() == 0 && marked.moved() + marked.local() == 4;
      const auto* counters = reinterpret_cast<const std::uint32_t*>(m.data);
      for (std::size_t p = 0; p < 4; ++p)
        for (std::size_t t = 0; t < 2; ++t)
          every_write = every_write && counters[p * page() / sizeof(std::uint32_t) + t] == writes;
    }
    ch.send(every_write);   // 0
    ch.send(all_resolved);  // 1
    // A MAP_SHARED page and a page shared copy-on-write with a grandchild are not re-backed.
    std::memset(shared, 60, page());
    mapping cow(1);
    cow.touch(0, 1, 70);
    numamove_test::held_child sharer([] {});
    for (char* target : {shared, cow.data}) {
      const std::uint64_t frame = numamove_test::pfn(target);
      numamove::openmp::next_touch marked(target, page());
      const char seen = target[0];
      ch.send(static_cast<std::int64_t>(marked.failed()));  // 2, 5
      ch.send(seen == (target == shared ? 60 : 70));        // 3, 6
      ch.send(numamove_test::pfn(target) == frame);         // 4, 7
    }
    return 0;
  });
  const numamove_test::child_report& r = child.wait();
  INFO(r.describe());
  REQUIRE(r.values.size() == 8);
  CHECK(r.values[0] == 1);
  CHECK(r.values[1] == 1);
  for (const std::size_t at : {std::size_t{2}, std::size_t{5}}) {
    CHECK(r.values[at] == 1);
    CHECK(r.values[at + 1] == 1);
    CHECK(r.values[at + 2] == 1);
  }
  CHECK(child.release() == 0);
  ::munmap(shared, page());
}
