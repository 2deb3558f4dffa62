// A failure halfway through a userspace move leaves every page not yet moved exactly where and
// as it was (same page frame, contents, protection, presence) and says so per page. Failures
// come from the migrator's test-only injection points (detail/userspace/fault_injection.hpp)
// and from a real RLIMIT_AS.
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <numamove/capabilities.hpp>
#include <numamove/numamove.hpp>

#include "support/catch.hpp"
#include "support/child.hpp"
#include "support/pages.hpp"
#include "support/patterns.hpp"
#include "test_userspace_support.hpp"

using namespace numamove_test;
namespace us = numamove::detail::userspace;

namespace {

// The anonymous PROT_NONE mappings of this process: what a leaked reservation would look like.
struct reservations {
  reservations() {
    std::ifstream in("/proc/self/maps");
    for (std::string line; std::getline(in, line);) {
      if (line.find(" ---p 00000000 00:00 0") == std::string::npos) continue;
      const std::size_t dash = line.find('-');
      ranges.emplace_back(std::stoull(line.substr(0, dash), nullptr, 16),
                          std::stoull(line.substr(dash + 1), nullptr, 16));
    }
  }
  // Those that are not part of a reservation that `before` had: new ones. A reservation split in
  // two (as AddressSanitizer's allocator splits its reserved space when it maps a part for a size
  // class used the first time) is not new; a leaked one, or one merged with a leaked neighbour, is.
  std::size_t added_since(const reservations& before) const {
    std::size_t added = 0;
    for (const auto& [begin, end] : ranges) {
      bool old = false;
      for (const auto& [b, e] : before.ranges) old = old || (b <= begin && end <= e);
      added += old ? 0 : 1;
    }
    return added;
  }
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> ranges;
};

}  // namespace

TEST_CASE("userspace: a chunk that fails halfway leaves it and the chunks after as they were",
          "[userspace][failure]") {
  // One run of three huge-page-sized chunks; the second chunk fails.
  aligned_mapping m(3 * huge_page_bytes, huge_page_bytes);
  REQUIRE(::madvise(m.data, m.bytes, MADV_NOHUGEPAGE) == 0);
  const std::size_t pages = m.bytes / page();
  const std::size_t per_chunk = huge_page_bytes / page();
  fill(m.data, pages * page());
  const auto point = us::failure_point::commit;
  relocation_options options;
  options.force = true;
  options.workers = 1;  // chunks in address order
  std::vector<int> status;
  // A first failing call does what happens once per process on this path, so that the
  // inaccessible mappings compared below are the measured call's. (Under AddressSanitizer the
  // first one leaves two that stay: a one-page guard below an 8 MiB mapping, as a thread stack
  // has, and a 7.9 MiB reservation among the runtime's mappings. Later ones leave none.)
  us::inject_failure(point, 1, ENOMEM);
  REQUIRE(move(m.data, pages, home, status, MPOL_MF_MOVE, options) == 0);
  const snapshot before(m.data, pages);
  const reservations leftovers;
  us::inject_failure(point, 1, ENOMEM);
  const long rc = move(m.data, pages, home, status, MPOL_MF_MOVE, options);
  us::clear_injected_failures();
  REQUIRE(rc == 0);
  for (std::size_t p = 0; p < pages; ++p) {
    const bool failed = p / per_chunk == 1;
    if (p % per_chunk == 0) {
      CHECK(status[p] == (failed ? -ENOMEM : home));
      check_page(before, m.data, p, !failed);
    }
  }
  CHECK(std::count(status.begin(), status.end(), -ENOMEM) == static_cast<long>(per_chunk));
  CHECK(first_bad_page(m.data, pages) == pages);
  CHECK(reservations().added_since(leftovers) == 0);
  // Still an ordinary, writable mapping everywhere.
  for (std::size_t c = 0; c < 3; ++c) m.data[c * huge_page_bytes + 1] = 'w';
}

TEST_CASE("userspace: when the other threads cannot be stopped every page stays as it was",
          "[userspace][failure]") {
  aligned_mapping m(3 * huge_page_bytes, huge_page_bytes);
  REQUIRE(::madvise(m.data, m.bytes, MADV_NOHUGEPAGE) == 0);
  const std::size_t pages = m.bytes / page();
  fill(m.data, pages * page());
  relocation_options options;
  options.force = true;
  std::vector<int> status;
  us::inject_failure(us::failure_point::stop, 1, EBUSY);  // a warm-up failing call, as above
  REQUIRE(move(m.data, pages, home, status, MPOL_MF_MOVE, options) == 0);
  const snapshot before(m.data, pages);
  const reservations leftovers;
  us::inject_failure(us::failure_point::stop, 0, EBUSY);
  const long rc = move(m.data, pages, home, status, MPOL_MF_MOVE, options);
  us::clear_injected_failures();
  REQUIRE(rc == 0);
  CHECK(std::count(status.begin(), status.end(), -EBUSY) == static_cast<long>(pages));
  for (std::size_t p = 0; p < pages; p += 97) check_page(before, m.data, p, false);
  CHECK(first_bad_page(m.data, pages) == pages);
  CHECK(reservations().added_since(leftovers) == 0);
  for (std::size_t c = 0; c < 3; ++c) m.data[c * huge_page_bytes + 1] = 'w';
}

TEST_CASE("userspace: a run that cannot be prepared or placed stays where it was",
          "[userspace][failure]") {
  // Three mappings, so three runs; the second one fails.
  // Each at the start of a huge-page block, so that each run is one chunk.
  aligned_mapping a(4 * page(), huge_page_bytes);
  aligned_mapping b(4 * page(), huge_page_bytes);
  aligned_mapping c(4 * page(), huge_page_bytes);
  for (aligned_mapping* m : {&a, &b, &c}) fill(m->data, 4 * page(), 5);
  std::vector<void*> pages;
  for (aligned_mapping* m : {&a, &b, &c})
    for (std::size_t p = 0; p < 4; ++p) pages.push_back(m->data + p * page());
  // Sorted by address the runs may come in any order of a, b, c: fail the one in the middle.
  std::vector<char*> by_address{a.data, b.data, c.data};
  std::sort(by_address.begin(), by_address.end());
  const snapshot before_middle(by_address[1], 4);
  const snapshot before_first(by_address[0], 4);
  const reservations leftovers;
  const auto point = GENERATE(us::failure_point::map_destination, us::failure_point::place);
  INFO("failure at " << (point == us::failure_point::place ? "place" : "map_destination"));
  us::inject_failure(point, 1, ENOMEM);
  std::vector<int> nodes(pages.size(), home);
  std::vector<int> status(pages.size(), 1000);
  const long rc = us::move_pages(0, pages.size(), pages.data(), nodes.data(), status.data(), 0,
                                 {true, true, 1});
  us::clear_injected_failures();
  REQUIRE(rc == 0);
  for (std::size_t i = 0; i < pages.size(); ++i) {
    const bool middle = static_cast<char*>(pages[i]) >= by_address[1] &&
                        static_cast<char*>(pages[i]) < by_address[1] + 4 * page();
    INFO("entry " << i);
    CHECK(status[i] == (middle ? -ENOMEM : home));
  }
  for (std::size_t p = 0; p < 4; ++p) {
    check_page(before_middle, by_address[1], p, false);
    check_page(before_first, by_address[0], p, true);
  }
  for (aligned_mapping* m : {&a, &b, &c}) CHECK(first_bad_page(m->data, 4, 5) == 4);
  CHECK(reservations().added_since(leftovers) == 0);
}

TEST_CASE("userspace: a real RLIMIT_AS: what fits moves, the rest stays and says -ENOMEM",
          "[userspace][failure]") {
  CHECK(in_child([] {
          // Probe and warm up before the limit: the probe runs a thread.
          numamove_test::mapping small(1);
          std::vector<int> status;
          small.touch(0, 1);
          if (force_move(small.data, 1, home, status) != 0) return 90;
          // 128 MiB with its first and last page touched: one run with holes, whose fresh
          // mapping cannot fit.
          const std::size_t big_pages = 32768;
          numamove_test::mapping big(big_pages);
          fill(big.data, page());
          fill(big.at_page(big_pages - 1), page(), 4);
          fill(small.data, page(), 9);
          const std::uint64_t big_frame = pfn(big.data);
          std::ifstream in("/proc/self/status");
          std::size_t vm_kb = 0;
          for (std::string line; std::getline(in, line);)
            if (line.rfind("VmSize:", 0) == 0) vm_kb = std::strtoull(line.c_str() + 7, nullptr, 10);
          // Room for a worker's stack, the arena and the small run's fresh pages, not the big
          // run's.
          const rlim_t limit = (vm_kb + 40 * 1024) * 1024;
          const rlimit cap{limit, limit};
          if (::setrlimit(RLIMIT_AS, &cap) != 0) return 91;
          std::vector<void*> pages{small.data};
          for (std::size_t p = 0; p < big_pages; ++p) pages.push_back(big.at_page(p));
          std::vector<int> nodes(pages.size(), home);
          status.assign(pages.size(), 1000);
          if (us::move_pages(0, pages.size(), pages.data(), nodes.data(), status.data(), 0,
                             {true, true, 1}) != 0)
            return 92;
          if (status[0] != home) return 93;
          if (status[1] != -ENOMEM || status[big_pages] != -ENOMEM || status[2] != -ENOENT)
            return 94;
          if (big_frame != 0 && pfn(big.data) != big_frame) return 95;
          if (first_bad_page(big.data, 1) != 1 ||
              first_bad_page(big.at_page(big_pages - 1), 1, 4) != 1 ||
              first_bad_page(small.data, 1, 9) != 1)
            return 96;
          if (present(big.at_page(1))) return 97;
          return 0;
        }) == 0);
}
