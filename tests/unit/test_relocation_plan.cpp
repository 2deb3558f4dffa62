// The userspace migrator's plan on synthetic pages (detail/userspace/relocation_plan.hpp): runs,
// chunks at huge-page boundaries, one team per node and each team's chunks, and batches.
// Planning makes no system call, so pages are made up: 4 KiB base pages, 2 MiB huge pages.
#include <cstddef>
#include <cstdint>
#include <vector>

#include <numamove/numamove.hpp>

#include "support/catch.hpp"

namespace us = numamove::detail::userspace;
using us::treatment;

namespace {

constexpr std::size_t page = 4096;
constexpr std::size_t huge_pages = 512;
constexpr std::uintptr_t base = std::uintptr_t{1} << 32;  // huge-page aligned

/// A page `index` pages from `base`, in mapping `vma`, to `target`, treated as `what`.
us::page_facts fact(std::size_t index, treatment what, int target = 1, std::size_t vma = 0) {
  us::page_facts p;
  p.address = base + index * page;
  p.what = what;
  p.target = target;
  p.vma = vma;
  return p;
}

/// Pages base + first .. base + first + count, all treated as `what`.
void add(std::vector<us::page_facts>& pages, std::size_t first, std::size_t count, treatment what,
         int target = 1, std::size_t vma = 0) {
  for (std::size_t i = first; i < first + count; ++i) pages.push_back(fact(i, what, target, vma));
}

struct run_shape {
  std::size_t first, pages;
  int node;
  treatment kind;
};

std::vector<run_shape> shapes(const std::vector<us::run_plan>& runs) {
  std::vector<run_shape> out;
  for (const us::run_plan& r : runs) out.push_back({r.first, r.pages, r.node, r.kind});
  return out;
}

bool operator==(const run_shape& a, const run_shape& b) {
  return a.first == b.first && a.pages == b.pages && a.node == b.node && a.kind == b.kind;
}

}  // namespace

TEST_CASE("relocation plan: holes ride inside copy runs, never at their ends",
          "[userspace][plan]") {
  std::vector<us::page_facts> pages;
  add(pages, 0, 2, treatment::hole);
  add(pages, 2, 3, treatment::copy);
  add(pages, 5, 2, treatment::hole);
  add(pages, 7, 1, treatment::copy);
  add(pages, 8, 3, treatment::hole);
  const std::vector<run_shape> want{{2, 6, 1, treatment::copy}};
  CHECK(shapes(us::plan_runs(pages, page)) == want);
}

TEST_CASE("relocation plan: a run ends at a gap, a mapping, a target or a treatment",
          "[userspace][plan]") {
  std::vector<us::page_facts> pages;
  add(pages, 0, 2, treatment::copy);
  add(pages, 3, 2, treatment::copy);           // a gap of one page before
  add(pages, 5, 2, treatment::copy, 1, 1);     // another mapping
  add(pages, 7, 2, treatment::copy, 2, 1);     // another target
  add(pages, 9, 2, treatment::refault, 2, 1);  // another treatment
  add(pages, 11, 1, treatment::hole, 2, 1);    // a hole never joins a refault run
  add(pages, 12, 1, treatment::refault, 2, 1);
  add(pages, 13, 1, treatment::settled, 2, 1);  // settled pages end every run
  add(pages, 14, 1, treatment::copy, 2, 1);
  const std::vector<run_shape> want{{0, 2, 1, treatment::copy},    {2, 2, 1, treatment::copy},
                                    {4, 2, 1, treatment::copy},    {6, 2, 2, treatment::copy},
                                    {8, 2, 2, treatment::refault}, {11, 1, 2, treatment::refault},
                                    {13, 1, 2, treatment::copy}};
  CHECK(shapes(us::plan_runs(pages, page)) == want);
}

TEST_CASE("relocation plan: nothing to move, no runs", "[userspace][plan]") {
  std::vector<us::page_facts> pages;
  CHECK(us::plan_runs(pages, page).empty());
  add(pages, 0, 3, treatment::hole);
  add(pages, 3, 3, treatment::settled);
  CHECK(us::plan_runs(pages, page).empty());
}

TEST_CASE("relocation plan: chunks are cut at huge-page boundaries of the original addresses",
          "[userspace][plan]") {
  std::vector<us::page_facts> pages;
  add(pages, huge_pages - 10, 10 + huge_pages + 5, treatment::copy);  // 10, a whole huge page, 5
  const auto runs = us::plan_runs(pages, page);
  REQUIRE(runs.size() == 1);
  const auto chunks = us::plan_chunks(pages, runs, page, huge_pages);
  REQUIRE(chunks.size() == 3);
  CHECK(chunks[0].first == 0);
  CHECK(chunks[0].pages == 10);
  CHECK(chunks[1].first == 10);
  CHECK(chunks[1].pages == huge_pages);
  CHECK(chunks[2].first == 10 + huge_pages);
  CHECK(chunks[2].pages == 5);
  for (const us::chunk_cut& c : chunks) CHECK(c.run == 0);
}

TEST_CASE("relocation plan: one team per node in order of first use, each with its chunks",
          "[userspace][plan]") {
  std::vector<us::page_facts> pages;
  add(pages, 0, 4, treatment::copy, 3);
  add(pages, 4, 4, treatment::copy, 1);
  add(pages, 8, 4, treatment::copy, 3, 1);
  const auto runs = us::plan_runs(pages, page);
  REQUIRE(runs.size() == 3);
  const auto nodes = us::plan_nodes(runs);
  CHECK(nodes == std::vector<int>{3, 1});
  CHECK(us::team_of(nodes, 1) == 1);
  const auto chunks = us::plan_chunks(pages, runs, page, huge_pages);
  const auto orders = us::plan_orders(chunks, runs, nodes);
  REQUIRE(orders.size() == 2);
  CHECK(orders[0] == std::vector<std::size_t>{0, 2});
  CHECK(orders[1] == std::vector<std::size_t>{1});
}

TEST_CASE("relocation plan: workers by size, capped by the node's CPUs and 8, at least one",
          "[userspace][plan]") {
  const std::size_t per_worker_pages = us::bytes_per_worker / page;
  std::vector<us::page_facts> pages;
  add(pages, 0, 3 * per_worker_pages, treatment::copy, 0);  // three workers' worth
  add(pages, 3 * per_worker_pages + 1, 20 * per_worker_pages, treatment::copy, 1);
  add(pages, 23 * per_worker_pages + 2, 1, treatment::copy, 2);
  const auto runs = us::plan_runs(pages, page);
  const auto nodes = us::plan_nodes(runs);
  const auto many_cpus = [](int) { return std::size_t{64}; };
  CHECK(us::plan_team_sizes(runs, nodes, page, 0, many_cpus) == std::vector<unsigned>{3, 8, 1});
  const auto two_cpus = [](int) { return std::size_t{2}; };
  CHECK(us::plan_team_sizes(runs, nodes, page, 0, two_cpus) == std::vector<unsigned>{2, 2, 1});
  const auto no_cpus = [](int) { return std::size_t{0}; };
  CHECK(us::plan_team_sizes(runs, nodes, page, 0, no_cpus) == std::vector<unsigned>{1, 1, 1});
  CHECK(us::plan_team_sizes(runs, nodes, page, 5, two_cpus) == std::vector<unsigned>{5, 5, 5});
}

TEST_CASE("relocation plan: batches of at least batch_bytes, the last one the rest",
          "[userspace][plan]") {
  const std::size_t huge_per_batch = us::batch_bytes / (huge_pages * page);
  std::vector<us::page_facts> pages;
  add(pages, 0, (2 * huge_per_batch + 1) * huge_pages, treatment::copy);
  const auto runs = us::plan_runs(pages, page);
  const auto chunks = us::plan_chunks(pages, runs, page, huge_pages);
  REQUIRE(chunks.size() == 2 * huge_per_batch + 1);
  const auto batches = us::plan_batches(chunks, page, us::batch_bytes);
  REQUIRE(batches.size() == 3);
  CHECK(batches[0].begin == 0);
  CHECK(batches[0].end == huge_per_batch);
  CHECK(batches[1].begin == huge_per_batch);
  CHECK(batches[1].end == 2 * huge_per_batch);
  CHECK(batches[2].begin == 2 * huge_per_batch);
  CHECK(batches[2].end == chunks.size());
  CHECK(us::plan_batches({}, page, us::batch_bytes).empty());
}

TEST_CASE("relocation plan: a team's share of a batch", "[userspace][plan]") {
  const std::vector<std::size_t> order{1, 4, 5, 9};
  const auto check = [&](std::size_t begin, std::size_t end, std::size_t from, std::size_t to) {
    const us::chunk_range share = us::share_of(order, {begin, end});
    CHECK(share.begin == from);
    CHECK(share.end == to);
  };
  check(0, 4, 0, 1);
  check(4, 9, 1, 3);
  check(9, 12, 3, 4);
  check(6, 9, 3, 3);  // none of its chunks
}

TEST_CASE("relocation plan: the whole plan", "[userspace][plan]") {
  std::vector<us::page_facts> pages;
  add(pages, 0, huge_pages + 1, treatment::copy, 2);
  add(pages, huge_pages + 1, 1, treatment::refault, 0, 1);
  auto runs = us::plan_runs(pages, page);
  const us::relocation_plan plan =
      us::plan_relocation(pages, runs, page, huge_pages, 0, [](int) { return std::size_t{4}; });
  CHECK(plan.runs.size() == 2);
  CHECK(plan.chunks.size() == 3);
  CHECK(plan.nodes == std::vector<int>{2, 0});
  CHECK(plan.team_sizes == std::vector<unsigned>{1, 1});
  REQUIRE(plan.orders.size() == 2);
  CHECK(plan.orders[0] == std::vector<std::size_t>{0, 1});
  CHECK(plan.orders[1] == std::vector<std::size_t>{2});
  REQUIRE(plan.batches.size() == 1);
  CHECK(plan.batches[0].end == 3);
}
