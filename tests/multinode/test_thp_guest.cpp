// Transparent huge pages between nodes: the kernel answers -EBUSY for addresses inside a THP
// whose head it has already taken, and migrate() must neither report those as failures nor
// leave any part of the huge page behind.
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <vector>

#include "guest_support.hpp"

using namespace numamove_test;

namespace {

constexpr std::size_t huge = huge_page_bytes;

// A 2 MiB-aligned region of `count` huge pages with MADV_HUGEPAGE, written (from a CPU of a
// node with memory) with fill(seed), so each is a THP where the kernel can make one.
struct thp_region {
  thp_region(std::size_t count, std::uint64_t seed)
      : mapped(count * huge, huge), data(mapped.data), bytes(mapped.bytes) {
    REQUIRE(mapped.raw != MAP_FAILED);
    advised = ::madvise(data, bytes, MADV_HUGEPAGE) == 0;
    const int cpu = cpu_of_a_memory_node();
    REQUIRE(cpu >= 0);
    pin_to_cpu pin(cpu);
    fill(data, bytes, seed);
  }
  aligned_mapping mapped;
  char* data;
  std::size_t bytes;
  bool advised = false;
};

std::string thp_unavailable(const thp_region& r) {
  if (!r.advised) return "madvise(MADV_HUGEPAGE) failed";
  const std::string mode = read_file("/sys/kernel/mm/transparent_hugepage/enabled");
  if (mode.empty()) return "no /sys/kernel/mm/transparent_hugepage";
  if (mode.find("[never]") != std::string::npos) return "THP disabled: " + mode;
  if (anon_huge_bytes(r.data) < r.bytes)
    return "the kernel backed " + std::to_string(anon_huge_bytes(r.data)) + " of " +
           std::to_string(r.bytes) + " bytes with huge pages";
  return "";
}

}  // namespace

TEST_CASE("move_pages() over every address of a THP: the head moves it, tails say -EBUSY",
          "[multinode][thp]") {
  const std::vector<int> nodes = memory_nodes();
  thp_region r(1, 81);
  const std::string why = thp_unavailable(r);
  NUMAMOVE_SKIP_UNLESS(why.empty(), "thp", why);
  const std::size_t pages = r.bytes / page();
  const int from = kernel_query(r.data, 1)[0];
  const int to = from == nodes.front() ? nodes.back() : nodes.front();
  INFO("THP on node " << from << ", moving to " << to);

  std::vector<void*> addresses(pages);
  for (std::size_t i = 0; i < pages; ++i) addresses[i] = r.data + i * page();
  std::vector<int> targets(pages, to);
  std::vector<int> status(pages, INT32_MIN);
  CHECK(numamove::move_pages(0, pages, addresses.data(), targets.data(), status.data(),
                             MPOL_MF_MOVE, numamove::backend::kernel) == 0);
  const auto busy = static_cast<std::size_t>(std::count(status.begin(), status.end(), -EBUSY));
  const auto there = static_cast<std::size_t>(std::count(status.begin(), status.end(), to));
  INFO(busy << " entries -EBUSY, " << there << " on node " << to);
  CHECK(status[0] == to);
  CHECK(busy >= 1);  // 6.1: the entry right after the head; later entries find the THP moved
  CHECK(busy + there == pages);
  CHECK(kernel_query(r.data, pages) == std::vector<int>(pages, to));
  CHECK(first_mismatch(r.data, r.bytes, 81) == SIZE_MAX);
}

TEST_CASE("migrate() of THPs moves every byte and reports no failure",
          "[multinode][thp][migrate]") {
  const std::vector<int> nodes = memory_nodes();
  thp_region r(2, 91);
  const std::string why = thp_unavailable(r);
  NUMAMOVE_SKIP_UNLESS(why.empty(), "thp", why);
  const std::size_t pages = r.bytes / page();
  const int busy_retries = GENERATE(0, 4);
  INFO("busy_retries " << busy_retries);
  for (std::size_t k = 1; k <= nodes.size(); ++k) {
    const int to = nodes[k % nodes.size()];
    const std::vector<int> before = kernel_query(r.data, pages);
    const auto already = static_cast<std::size_t>(std::count(before.begin(), before.end(), to));
    INFO("to node " << to << " (" << already << " pages there before)");
    numamove::migrate_options options;
    options.busy_retries = busy_retries;
    const numamove::migration_result m = numamove::migrate(r.data, r.bytes, to, options);
    CHECK(m);
    CHECK(m.failed == 0);
    CHECK(m.moved + m.already_there == pages);
    CHECK(m.already_there == already);
    CHECK(m.status == std::vector<int>(pages, to));
    CHECK(kernel_query(r.data, pages) == std::vector<int>(pages, to));
    CHECK(first_mismatch(r.data, r.bytes, 91) == SIZE_MAX);
  }
}
