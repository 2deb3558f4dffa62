// The pure planning of a kernel-path migration (detail/engine/migration_plan.hpp) on synthetic
// statuses and addresses: which entries move, one address per huge page, slices of equal work
// in target order, which entries are asked about again, and the counts of the outcome.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <numamove/numamove.hpp>

#include "support/catch.hpp"

namespace plan = numamove::detail;
using entries = std::vector<std::size_t>;

namespace {

constexpr std::size_t base_page = 4096;
constexpr std::size_t huge_page = std::size_t{2} << 20;
constexpr std::size_t per_huge = huge_page / base_page;

// Fake page-aligned addresses from a huge-page-aligned base: planning never touches memory.
std::vector<void*> pages_from(std::uintptr_t first, std::size_t count) {
  std::vector<void*> pages(count);
  for (std::size_t i = 0; i < count; ++i) pages[i] = reinterpret_cast<void*>(first + i * base_page);
  return pages;
}
constexpr std::uintptr_t aligned = std::uintptr_t{1} << 32;

}  // namespace

TEST_CASE("plan: only entries on another node move; placed, untouched and unmapped are final",
          "[plan]") {
  const std::vector<int> status = {0, 1, -ENOENT, 1, -EFAULT, 0, -EBUSY};
  const std::vector<int> target(status.size(), 1);
  CHECK(plan::count_placed(status, target) == 2);
  CHECK(plan::entries_elsewhere(status, target) == entries{0, 5});
  CHECK(plan::still_elsewhere({5, 3, 0, 2}, status, target) == entries{5, 0});
}

TEST_CASE("plan: one address per huge page, the others ride", "[plan][thp]") {
  // Two huge pages, then two base pages; every entry is elsewhere.
  const std::vector<void*> pages = pages_from(aligned, 2 * per_huge + 2);
  const std::vector<int> target(pages.size(), 1);
  entries elsewhere(pages.size());
  std::vector<std::size_t> extent(pages.size(), huge_page);
  for (std::size_t i = 0; i < pages.size(); ++i) elsewhere[i] = i;
  extent[2 * per_huge] = extent[2 * per_huge + 1] = 0;

  const plan::move_plan p =
      plan::one_per_huge_page(elsewhere, pages, target, extent, base_page, false);
  CHECK(p.leaders == entries{0, per_huge, 2 * per_huge, 2 * per_huge + 1});
  CHECK(p.riders.size() == 2 * (per_huge - 1));
  CHECK(p.riders.front() == 1);
  CHECK(p.riders.back() == 2 * per_huge - 1);
  CHECK(p.weight.empty());
  CHECK(plan::work_of(p.leaders, p.weight) == 4);

  const plan::move_plan weighed =
      plan::one_per_huge_page(elsewhere, pages, target, extent, base_page, true);
  CHECK(weighed.leaders == p.leaders);
  CHECK(weighed.weight.size() == pages.size());
  CHECK(weighed.weight[0] == per_huge);
  CHECK(weighed.weight[2 * per_huge] == 1);
  CHECK(plan::work_of(weighed.leaders, weighed.weight) == 2 * per_huge + 2);
}

TEST_CASE("plan: a page of a huge page bound elsewhere leads, so each target gets its own call",
          "[plan][thp]") {
  const std::vector<void*> pages = pages_from(aligned, 4);
  const std::vector<int> target = {1, 1, 2, 2};
  const std::vector<std::size_t> extent(4, huge_page);
  const plan::move_plan p =
      plan::one_per_huge_page({0, 1, 2, 3}, pages, target, extent, base_page, false);
  CHECK(p.leaders == entries{0, 2});
  CHECK(p.riders == entries{1, 3});
}

TEST_CASE("plan: the pages of a huge page that are not elsewhere are not riders", "[plan][thp]") {
  const std::vector<void*> pages = pages_from(aligned, 6);
  const std::vector<int> target(6, 1);
  const std::vector<std::size_t> extent(3, huge_page);  // one per entry of `elsewhere`
  const plan::move_plan p =
      plan::one_per_huge_page({1, 3, 5}, pages, target, extent, base_page, false);
  CHECK(p.leaders == entries{1});
  CHECK(p.riders == entries{3, 5});
}

TEST_CASE("plan: entries in target order, stable within a target", "[plan]") {
  const std::vector<int> target = {3, 1, 3, 0, 1};
  CHECK(plan::by_target({0, 1, 2, 3, 4}, target) == entries{3, 1, 4, 0, 2});
  CHECK(plan::by_target({4, 1}, target) == entries{4, 1});
}

TEST_CASE("plan: slices count, by the workers asked, the CPUs and the work", "[plan][workers]") {
  CHECK(plan::slice_count(0, 8, 100000) == 1);
  CHECK(plan::slice_count(1, 8, 100000) == 1);
  CHECK(plan::slice_count(4, 8, 100000) == 4);
  CHECK(plan::slice_count(4, 2, 100000) == 2);
  CHECK(plan::slice_count(4, 8, 3 * plan::kernel_slice_min_pages) == 3);
  CHECK(plan::slice_count(4, 8, 10) == 1);
  CHECK(plan::slice_count(4, 0, 100000) == 1);
}

TEST_CASE("plan: workers 0 asks for one worker per parallel_move_min_bytes", "[plan][workers]") {
  const std::size_t step = numamove::parallel_move_min_bytes;
  CHECK(plan::automatic_workers(0) == 1);
  CHECK(plan::automatic_workers(step - 1) == 1);
  CHECK(plan::automatic_workers(2 * step) == 2);
  CHECK(plan::automatic_workers(5 * step + 1) == 5);
}

TEST_CASE("plan: slices of about the same work, none empty, in order", "[plan][workers]") {
  const entries order = {0, 1, 2, 3, 4, 5, 6, 7};
  SECTION("one slice when one is asked for or there is one entry") {
    const std::vector<plan::slice> one = plan::cut_slices(order, {}, 1);
    REQUIRE(one.size() == 1);
    CHECK(one[0].begin == 0);
    CHECK(one[0].end == 8);
    CHECK(plan::cut_slices({5}, {}, 4).size() == 1);
  }
  SECTION("equal weights: equal slices") {
    const std::vector<plan::slice> four = plan::cut_slices(order, {}, 4);
    REQUIRE(four.size() == 4);
    for (std::size_t k = 0; k < 4; ++k) {
      CHECK(four[k].begin == 2 * k);
      CHECK(four[k].end == 2 * k + 2);
    }
  }
  SECTION("a heavy entry (a huge page's leader) fills a slice by itself") {
    std::vector<std::size_t> weight(8, 1);
    weight[0] = 7;  // as much as the seven others
    const std::vector<plan::slice> two = plan::cut_slices(order, weight, 2);
    REQUIRE(two.size() == 2);
    CHECK(two[0].begin == 0);
    CHECK(two[0].end == 1);
    CHECK(two[1].begin == 1);
    CHECK(two[1].end == 8);
  }
  SECTION("more slices than entries: one entry each") {
    const std::vector<plan::slice> many = plan::cut_slices({2, 9, 4}, {}, 8);
    REQUIRE(many.size() == 3);
    CHECK(many[2].begin == 2);
    CHECK(many[2].end == 3);
  }
}

TEST_CASE("plan: after a call, busy or unwritten entries and every rider are asked again",
          "[plan]") {
  const std::vector<int> status = {1, -EBUSY, 0, -EBUSY, -ENOMEM, 0, 0};
  CHECK(plan::entries_to_recheck({0, 1, 3, 4}, status, {6, 2}) == entries{1, 2, 3, 6});
  CHECK(plan::entries_to_recheck({0, 4}, status, {}).empty());
}

TEST_CASE("plan: the counts of the outcome", "[plan]") {
  const std::vector<int> status = {1, 1, 1, -ENOENT, -EBUSY, -EFAULT, 0};
  const std::vector<int> target(status.size(), 1);
  numamove::migration_result r;
  r.already_there = 1;
  plan::count_outcomes(status, target, base_page, r);
  CHECK(r.moved == 2);
  CHECK(r.not_present == 1);
  CHECK(r.failed == 2);
  CHECK(r.bytes == 2 * base_page);
}

TEST_CASE("plan: the entries with a status, for a batch that asks again", "[plan]") {
  const int status[] = {-EBUSY, 0, -EBUSY, -ENOENT};
  CHECK(numamove::detail::entries_with_status(4, status, -EBUSY) == entries{0, 2});
  CHECK(numamove::detail::entries_with_status(4, status, 5).empty());
}
