// migrate() and move_pages() between real nodes: every ordered pair, checked by the kernel's
// own query, with contents and virtual addresses preserved.
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#include "guest_support.hpp"
#include "support/seccomp_child.hpp"

using namespace numamove_test;

TEST_CASE("migrate() moves every page between every pair of nodes", "[multinode][migrate]") {
  const std::vector<int> nodes = memory_nodes();
  constexpr std::size_t pages = 32;
  for (const int from : nodes) {
    for (const int to : nodes) {
      if (from == to) continue;
      INFO("from node " << from << " to node " << to);
      mapping m(pages);
      const std::uint64_t seed =
          static_cast<std::uint64_t>(from) * 1000 + static_cast<std::uint64_t>(to);
      fill(m.data, m.bytes, seed);
      std::vector<int> status;
      REQUIRE(kernel_move(m.data, pages, from, status) == 0);
      REQUIRE(kernel_query(m.data, pages) == std::vector<int>(pages, from));

      auto* words = reinterpret_cast<std::uint64_t*>(m.data);
      const std::size_t count = m.bytes / sizeof *words;
      const numamove::migration_result r = numamove::migrate(words, count, to);
      CHECK(r);
      CHECK_FALSE(r.error);
      CHECK(r.used == numamove::backend::kernel);
      CHECK(r.first_page == m.data);
      CHECK(r.status == std::vector<int>(pages, to));
      CHECK(r.moved == pages);
      CHECK(r.already_there == 0);
      CHECK(r.not_present == 0);
      CHECK(r.failed == 0);
      CHECK(r.bytes == m.bytes);
      // The kernel agrees, the addresses still hold the same data.
      CHECK(kernel_query(m.data, pages) == std::vector<int>(pages, to));
      CHECK(first_mismatch(m.data, m.bytes, seed) == SIZE_MAX);

      // Again: nothing left to move.
      const numamove::migration_result again = numamove::migrate(words, count, to);
      CHECK(again);
      CHECK(again.moved == 0);
      CHECK(again.already_there == pages);
      CHECK(again.bytes == 0);
    }
  }
}

TEST_CASE("migrate() of a container keeps data() and the contents, node after node",
          "[multinode][migrate]") {
  const std::vector<int> nodes = memory_nodes();
  SECTION("std::vector (heap memory, partial pages at both ends)") {
    std::vector<std::uint64_t> v(20000);
    fill(v.data(), v.size() * sizeof v[0], 7);
    const std::uint64_t* before = v.data();
    for (std::size_t k = 1; k <= nodes.size(); ++k) {
      const int to = nodes[k % nodes.size()];
      INFO("to node " << to);
      const numamove::migration_result r = numamove::migrate(v, to);
      CHECK(r);
      CHECK(v.data() == before);
      CHECK(kernel_query(r.first_page, r.status.size()) == std::vector<int>(r.status.size(), to));
      CHECK(numamove::bytes_per_node(v.data(), v.size()) ==
            std::map<int, std::size_t>{{to, v.size() * sizeof v[0]}});
      CHECK(first_mismatch(v.data(), v.size() * sizeof v[0], 7) == SIZE_MAX);
    }
  }
  SECTION("numamove::vector placed on the first node") {
    numamove::vector<std::uint64_t> v(
        3 * page(), 0,
        numamove::allocator<std::uint64_t>(numamove::placement::on_node(nodes.front())));
    fill(v.data(), v.size() * sizeof v[0], 11);
    const std::size_t pages = v.size() * sizeof v[0] / page();
    REQUIRE(kernel_query(v.data(), pages) == std::vector<int>(pages, nodes.front()));
    const std::uint64_t* before = v.data();
    for (std::size_t k = 1; k <= nodes.size(); ++k) {
      const int to = nodes[k % nodes.size()];
      INFO("to node " << to);
      const numamove::migration_result r = numamove::migrate(v, to);
      CHECK(r);
      CHECK(r.moved == pages);
      CHECK(v.data() == before);
      CHECK(kernel_query(v.data(), pages) == std::vector<int>(pages, to));
      CHECK(first_mismatch(v.data(), v.size() * sizeof v[0], 11) == SIZE_MAX);
    }
  }
}

TEST_CASE("migrate() moves only the pages that are elsewhere", "[multinode][migrate]") {
  const std::vector<int> nodes = memory_nodes();
  const int to = nodes.back();
  constexpr std::size_t pages = 16;
  mapping m(pages);
  fill(m.data, m.bytes, 3);
  std::vector<int> status;
  // Even pages on the target already, odd pages spread over the other nodes.
  for (std::size_t i = 0; i < pages; ++i) {
    const int node = i % 2 == 0 ? to : nodes[(i / 2) % (nodes.size() - 1)];
    REQUIRE(kernel_move(m.at_page(i), 1, node, status) == 0);
    REQUIRE(status[0] == node);
  }
  const numamove::migration_result r = numamove::migrate(m.data, m.bytes, to);
  CHECK(r);
  CHECK(r.already_there == pages / 2);
  CHECK(r.moved == pages / 2);
  CHECK(r.bytes == pages / 2 * page());
  CHECK(r.status == std::vector<int>(pages, to));
  CHECK(kernel_query(m.data, pages) == std::vector<int>(pages, to));
  CHECK(first_mismatch(m.data, m.bytes, 3) == SIZE_MAX);
}

TEST_CASE("one move_pages() call sends each page to its own node", "[multinode][move_pages]") {
  const std::vector<int> nodes = memory_nodes();
  const numamove::backend path = GENERATE(numamove::backend::kernel, numamove::backend::automatic);
  INFO("backend " << numamove::to_string(path));
  // Targets scattered over all the nodes, page by page.
  constexpr std::size_t pages = 48;
  mapping m(pages);
  fill(m.data, m.bytes, 5);
  std::vector<int> targets(pages);
  for (std::size_t i = 0; i < pages; ++i) targets[i] = nodes[(i * i / 2 + i) % nodes.size()];
  std::vector<int> status;
  errno = 0;
  CHECK(numamove_move(path, m.data, targets, status) == 0);
  CHECK(status == targets);
  CHECK(kernel_query(m.data, pages) == targets);
  CHECK(first_mismatch(m.data, m.bytes, 5) == SIZE_MAX);
  // Query mode through numamove says the same.
  std::vector<void*> addresses = page_addresses(m.data, pages);
  std::vector<int> queried(pages, INT32_MIN);
  CHECK(numamove::move_pages(0, pages, addresses.data(), nullptr, queried.data(), 0, path) == 0);
  CHECK(queried == targets);
}

TEST_CASE("move_pages() moves another process's pages, as the kernel sees them",
          "[multinode][move_pages]") {
  const std::vector<int> nodes = memory_nodes();
  constexpr std::size_t pages = 8;
  seccomp_child child(
      [&](child_channel& ch) {
        mapping m(pages);
        fill(m.data, m.bytes, 9);
        std::vector<int> status;
        ch.send(kernel_move(m.data, pages, nodes.front(), status));
        ch.send(reinterpret_cast<std::intptr_t>(m.data));
        if (!ch.wait_for_parent()) return 3;
        ch.send(first_mismatch(m.data, m.bytes, 9) == SIZE_MAX);
        ch.wait_for_parent();  // keep the mapping until the parent is done
        return 0;
      },
      child_options{numa_filter::none});
  const child_report& got = child.receive(2);
  REQUIRE(got.values.size() >= 2);
  REQUIRE(got.values[0] == 0);
  char* first = reinterpret_cast<char*>(static_cast<std::intptr_t>(got.values[1]));
  REQUIRE(kernel_query(first, pages, child.pid()) == std::vector<int>(pages, nodes.front()));
  const std::vector<int> targets(pages, nodes.back());
  std::vector<int> status;
  CHECK(numamove_move(numamove::backend::kernel, first, targets, status, child.pid()) == 0);
  CHECK(status == targets);
  CHECK(kernel_query(first, pages, child.pid()) == targets);
  child.proceed();
  CHECK(child.receive(3).values.size() == 3);
  CHECK(child.report().values.back() == 1);  // the child's data is intact
  CHECK(child.release() == 0);
}

TEST_CASE("migrate() with kernel-path workers: the same statuses and counts as one call",
          "[multinode][migrate]") {
  const std::vector<int> nodes = memory_nodes();
  const int from = nodes.front();
  const int to = nodes.back();
  constexpr std::size_t pages = 4096;  // 16 MiB: up to 8 slices of 2 MiB
  // The same layout twice: pages on the source, a few already on the target, never-touched
  // pages, and an unmapped hole.
  const auto prepare = [&](mapping& m) {
    fill(m.data, m.bytes, 21);
    std::vector<int> status;
    REQUIRE(kernel_move(m.data, pages, from, status) == 0);
    for (std::size_t i = 100; i < 200; ++i) REQUIRE(kernel_move(m.at_page(i), 1, to, status) == 0);
    REQUIRE(::madvise(m.at_page(1000), 64 * page(), MADV_DONTNEED) == 0);
    REQUIRE(::munmap(m.at_page(3000), 16 * page()) == 0);
  };
  mapping one(pages);
  mapping many(pages);
  prepare(one);
  prepare(many);
  numamove::migrate_options single;
  numamove::migrate_options sliced;
  sliced.workers = 8;
  const numamove::migration_result a = numamove::migrate(one.data, one.bytes, to, single);
  const numamove::migration_result b = numamove::migrate(many.data, many.bytes, to, sliced);
  CHECK(a.used == numamove::backend::kernel);
  CHECK(b.used == numamove::backend::kernel);
  CHECK(b.status == a.status);
  CHECK(b.moved == a.moved);
  CHECK(b.already_there == a.already_there);
  CHECK(b.not_present == a.not_present);
  CHECK(b.failed == a.failed);
  CHECK(b.error == a.error);
  CHECK(b.moved == pages - 100 - 64 - 16);
  CHECK(b.already_there == 100);
  CHECK(b.not_present == 64);
  CHECK(b.failed == 16);  // the hole: -EFAULT
  // The kernel agrees; the contents stayed.
  const std::vector<int> placed = kernel_query(many.data, 1000);
  CHECK(placed == std::vector<int>(1000, to));
  // Pages [first, end) still hold what fill() wrote there.
  const auto intact = [&](std::size_t first, std::size_t end) {
    for (std::size_t p = first; p < end; ++p)
      if (!page_intact(many.data, p, 21)) return false;
    return true;
  };
  CHECK(intact(0, 1000));
  CHECK(intact(1064, 3000));
  CHECK(intact(3016, pages));
}
