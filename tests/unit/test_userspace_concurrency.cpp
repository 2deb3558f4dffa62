// No write is lost while pages move: writer threads increment counters across a range while it
// is migrated again and again (the write protection parks each writer until its page has moved).
// Also run under ThreadSanitizer: see docs/userspace.md, "Testing".
#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include <numamove/numamove.hpp>

#include "support/catch.hpp"
#include "support/pages.hpp"
#include "test_userspace_support.hpp"

using namespace numamove_test;

namespace {

// Writer `w` increments its own counter in every page of the range in turn, so that each
// counter has one writer (no data race) and every page is written all the time.
struct counters {
  counters(char* first_, std::size_t pages_) : first(first_), pages(pages_) {}
  std::uint64_t* at(std::size_t p, unsigned w) const {
    return reinterpret_cast<std::uint64_t*>(first + p * page() + w * 64);
  }
  std::uint64_t sum(unsigned w) const {
    std::uint64_t total = 0;
    for (std::size_t p = 0; p < pages; ++p) total += *at(p, w);
    return total;
  }
  char* first;
  std::size_t pages;
};

void hammer_while_migrating(char* first, std::size_t pages, unsigned writers, int rounds,
                            const numamove::migrate_options& options) {
  const counters c(first, pages);
  std::atomic<bool> stop{false};
  std::atomic<unsigned> running{0};
  std::vector<std::uint64_t> done(writers, 0);
  std::vector<std::thread> threads;
  for (unsigned w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      std::uint64_t n = 0;
      running.fetch_add(1);
      for (std::size_t i = w; !stop.load(std::memory_order_relaxed); ++i) {
        std::uint64_t* counter = c.at(i % pages, w);
        *counter = *counter + 1;
        ++n;
      }
      done[w] = n;
    });
  }
  while (running.load() != writers) std::this_thread::yield();
  std::size_t moved = 0;
  for (int round = 0; round < rounds; ++round) {
    const numamove::migration_result r = numamove::migrate(first, pages * page(), home, options);
    REQUIRE(r);
    moved += r.moved;
  }
  stop.store(true);
  for (std::thread& t : threads) t.join();
  CHECK(moved == static_cast<std::size_t>(rounds) * pages);
  for (unsigned w = 0; w < writers; ++w) {
    INFO("writer " << w);
    CHECK(c.sum(w) == done[w]);
  }
}

}  // namespace

TEST_CASE("userspace: writers lose no increment while their range moves again and again",
          "[userspace][concurrency]") {
  numamove::migrate_options options;
  options.path = numamove::backend::userspace;
  options.force = true;
  SECTION("base pages, one worker") {
    numamove_test::mapping m(64);
    std::memset(m.data, 0, m.bytes);
    options.workers = 1;
    hammer_while_migrating(m.data, 64, 3, 40, options);
  }
  SECTION("huge pages, two workers") {
    aligned_mapping m(2 * numamove_test::huge_page_bytes, numamove_test::huge_page_bytes);
    ::madvise(m.data, m.bytes, MADV_HUGEPAGE);
    std::memset(m.data, 0, m.bytes);
    options.workers = 2;
    hammer_while_migrating(m.data, m.bytes / page(), 2, 10, options);
  }
}

TEST_CASE("userspace: a writer that keeps writing one page waits for it, then writes the new page",
          "[userspace][concurrency]") {
  numamove_test::mapping m(1);
  std::memset(m.data, 0, m.bytes);
  std::atomic<bool> stop{false};
  std::uint64_t written = 0;
  std::thread writer([&] {
    auto* counter = reinterpret_cast<std::uint64_t*>(m.data);
    while (!stop.load(std::memory_order_relaxed)) {
      *counter = *counter + 1;
      ++written;
    }
  });
  numamove::migrate_options options;
  options.path = numamove::backend::userspace;
  options.force = true;
  for (int round = 0; round < 200; ++round)
    REQUIRE(numamove::migrate(m.data, m.bytes, home, options).moved == 1);
  stop.store(true);
  writer.join();
  CHECK(*reinterpret_cast<std::uint64_t*>(m.data) == written);
}
