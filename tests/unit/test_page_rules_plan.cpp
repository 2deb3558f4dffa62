// The userspace migrator's per-page rules on synthetic pages and mappings
// (detail/userspace/page_rules.hpp): the facts of a mapping, the survey of the pagemap entries,
// and the decision for each page (the table in docs/semantics.md). No system calls: mappings
// and pagemap entries are made up.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <numamove/numamove.hpp>

#include "support/catch.hpp"

namespace us = numamove::detail::userspace;
namespace bit = numamove::detail::pagemap_bit;
using numamove::detail::mapping;
using us::treatment;

namespace {

constexpr std::size_t page = 4096;
constexpr std::uintptr_t base = std::uintptr_t{1} << 32;

mapping make_mapping(std::uintptr_t start, std::size_t pages, const std::string& perms,
                     const std::string& path = "", const std::string& flags = "rd wr mr mw me ac") {
  mapping m;
  m.start = start;
  m.end = start + pages * page;
  m.perms = perms;
  m.path = path;
  m.kernel_page_size = page;
  m.vm_flags = flags;
  return m;
}

us::page_facts page_at(std::uintptr_t address, std::uint64_t entry, int target = 1) {
  us::page_facts p;
  p.address = address;
  p.entry = entry;
  p.target = target;
  return p;
}

constexpr std::uint64_t private_page = bit::present | bit::exclusive;

/// The decision for one page of mapping `m`, on node 0 unless said.
us::page_facts decide(const mapping& m, std::uint64_t entry, const us::rule_context& c = {},
                      bool zero = false, int node = 0, bool memory_backed = false) {
  us::page_facts p = page_at(m.start, entry);
  const us::mapping_facts f = us::facts_of(m, page);
  us::decide_page(p, &m, &f, zero, node, c, [&] { return memory_backed; });
  return p;
}

}  // namespace

TEST_CASE("page rules: the facts of a mapping", "[userspace][rules-plan]") {
  const us::mapping_facts heap = us::facts_of(make_mapping(base, 4, "rw-p", "[heap]"), page);
  CHECK(heap.anonymous);
  CHECK_FALSE(heap.busy);
  CHECK_FALSE(heap.unmovable_io);
  CHECK(us::facts_of(make_mapping(base, 4, "rw-p", "[stack]"), page).busy);
  CHECK(us::facts_of(make_mapping(base, 4, "rw-p", "", "rd wr lo"), page).locked);
  CHECK(us::facts_of(make_mapping(base, 4, "rw-s", "", "rd wr io"), page).unmovable_io);
  CHECK(us::facts_of(make_mapping(base, 4, "r--p", "[vsyscall]"), page).unmovable_io);
  CHECK_FALSE(us::facts_of(make_mapping(base, 4, "rw-p", "/data/file"), page).anonymous);
  CHECK_FALSE(us::facts_of(make_mapping(base, 4, "rw-s"), page).anonymous);
  mapping huge = make_mapping(base, 512, "rw-p");
  huge.kernel_page_size = 512 * page;
  CHECK(us::facts_of(huge, page).hugetlb);
}

TEST_CASE("page rules: the survey finds mappings, present pages and zero-page candidates",
          "[userspace][rules-plan]") {
  us::examination e;
  e.maps = {make_mapping(base, 4, "rw-p"), make_mapping(base + 8 * page, 2, "rw-p", "/data/file")};
  e.pages = {page_at(base, private_page),
             page_at(base + page, bit::present),                            // not exclusive
             page_at(base + 2 * page, bit::present | bit::file_or_shared),  // the huge zero page
             page_at(base + 3 * page, 0),                                   // not present
             page_at(base + 5 * page, private_page),                        // no mapping
             page_at(base + 8 * page, bit::present | bit::file_or_shared)};
  std::vector<us::mapping_facts> facts;
  for (const mapping& m : e.maps) facts.push_back(us::facts_of(m, page));
  const us::page_survey s = us::survey_pages(e, facts);
  CHECK(s.vma == std::vector<const mapping*>{&e.maps[0], &e.maps[0], &e.maps[0], &e.maps[0],
                                             nullptr, &e.maps[1]});
  CHECK(e.pages[5].vma == 1);
  CHECK(s.present == std::vector<std::size_t>{0, 1, 2, 5});
  CHECK(s.zero_candidates == std::vector<std::size_t>{1});
  CHECK(s.zero == std::vector<bool>{false, false, true, false, false, false});
  CHECK(s.node == std::vector<int>(6, -1));
}

TEST_CASE("page rules: pages with no data of their own", "[userspace][rules-plan]") {
  const mapping anonymous = make_mapping(base, 4, "rw-p");
  const us::page_facts untouched = decide(anonymous, 0);
  CHECK(untouched.status == -ENOENT);
  CHECK(untouched.what == treatment::hole);
  const us::page_facts swapped = decide(anonymous, bit::swapped);
  CHECK(swapped.status == -ENOENT);
  CHECK(swapped.what == treatment::settled);
  const us::page_facts zero = decide(anonymous, bit::present, {}, true);
  CHECK(zero.status == -EFAULT);
  CHECK(zero.what == treatment::hole);
  const us::page_facts file_hole = decide(make_mapping(base, 4, "rw-p", "/data/file"), 0);
  CHECK(file_hole.status == -ENOENT);
  CHECK(file_hole.what == treatment::settled);

  us::page_facts unmapped = page_at(base, private_page);
  us::decide_page(unmapped, nullptr, nullptr, false, 0, {}, [] { return false; });
  CHECK(unmapped.status == -EFAULT);
  CHECK(unmapped.what == treatment::settled);
}

TEST_CASE("page rules: queries and pages already on their target", "[userspace][rules-plan]") {
  const mapping anonymous = make_mapping(base, 4, "rw-p");
  us::rule_context query;
  query.query = true;
  CHECK(decide(anonymous, private_page, query, false, 2).status == 2);
  const us::page_facts unknown = decide(anonymous, private_page, query, false, -1);
  CHECK(unknown.status == numamove::node_unknown);
  CHECK_FALSE(unknown.known_before);

  const us::page_facts there = decide(anonymous, private_page, {}, false, 1);
  CHECK(there.status == 1);
  CHECK(there.what == treatment::settled);
  us::rule_context force;
  force.force = true;
  CHECK(decide(anonymous, private_page, force, false, 1).what == treatment::copy);
}

TEST_CASE("page rules: which pages move, and how", "[userspace][rules-plan]") {
  const mapping anonymous = make_mapping(base, 4, "rw-p");
  const us::page_facts copy = decide(anonymous, private_page);
  CHECK(copy.status == 1);
  CHECK(copy.what == treatment::copy);
  CHECK(copy.node == 0);
  CHECK(copy.known_before);

  CHECK(decide(anonymous, bit::present).status == -EACCES);  // shared copy-on-write
  const mapping shared = make_mapping(base, 4, "rw-s", "/data/file");
  const std::uint64_t cached = private_page | bit::file_or_shared;
  CHECK(decide(shared, cached).status == -EACCES);
  us::rule_context move_all;
  move_all.move_all = true;
  const us::page_facts refault = decide(shared, cached, move_all);
  CHECK(refault.status == 1);
  CHECK(refault.what == treatment::refault);
  CHECK(decide(shared, cached, move_all, false, 0, true).status == -EINVAL);
  CHECK(decide(make_mapping(base, 4, "---s", "/data/file"), cached, move_all).status == -EBUSY);

  CHECK(decide(make_mapping(base, 4, "rw-p", "[stack]"), private_page).status == -EBUSY);
  CHECK(decide(make_mapping(base, 4, "rw-p", "", "rd wr lo"), private_page).status == -EPERM);
  us::rule_context refused;
  refused.refused.stack = {base, base + page};
  CHECK(decide(anonymous, private_page, refused).status == -EBUSY);
  refused.refused.stack = {0, 0};
  refused.refused.internal[1] = {base, base + page};
  CHECK(decide(anonymous, private_page, refused).status == -EBUSY);
}
