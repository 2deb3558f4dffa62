// allocator<T>: page-aligned, placed before first touch, usable by standard containers.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <list>
#include <map>
#include <system_error>
#include <thread>
#include <vector>

#include <numamove/numamove.hpp>

#include "support/catch.hpp"
#include "support/pages.hpp"
#include "support/seccomp_child.hpp"

using numamove_test::home;

namespace {

// The policy mbind left on the mapping holding `address`, as the kernel reports it.
std::pair<int, unsigned long> policy_at(const void* address) {
  int mode = -1;
  unsigned long mask[2] = {0, 0};
  numamove::detail::sys_get_mempolicy(&mode, mask, 128, const_cast<void*>(address),
                                      numamove::detail::mpol_f_addr);
  return {mode, mask[0]};
}

const numamove::allocator<char> on_home(numamove::placement::on_node(home));

// Fresh pages are not there until touched; a reused mapping's are.
bool untouched(const char* data, std::size_t bytes) {
  return !numamove_test::present(data) && !numamove_test::present(data + bytes - 1);
}
}  // namespace

TEST_CASE("on_node binds the pages before first touch", "[allocator]") {
  numamove::vector<double> v(100000,
                             numamove::allocator<double>(numamove::placement::on_node(home)));
  CHECK(reinterpret_cast<std::uintptr_t>(v.data()) % numamove_test::page() == 0);
  CHECK(policy_at(v.data()) ==
        std::pair<int, unsigned long>{numamove::detail::mpol_bind, 1UL << home});
  for (const int node : numamove::locate(v.data(), v.size())) CHECK(node == home);
}

TEST_CASE("interleave sets the interleave policy over its nodes", "[allocator]") {
  numamove::allocator<int> a(numamove::placement::interleave(numamove::topology::system().nodes()));
  int* p = a.allocate(4096);
  CHECK(policy_at(p).first == numamove::detail::mpol_interleave);
  p[0] = 1;
  a.deallocate(p, 4096);
}

TEST_CASE("first touch leaves the default policy", "[allocator]") {
  numamove::vector<int> v(1000);
  CHECK(policy_at(v.data()).first == numamove::detail::mpol_default);
}

TEST_CASE("an unknown node is an error at construction", "[allocator][errors]") {
  const auto code_of = [](const numamove::placement& where) {
    try {
      numamove::allocator<int> a(where);
    } catch (const std::system_error& e) {
      return e.code().value();
    }
    return 0;
  };
  CHECK(code_of(numamove::placement::on_node(numamove::topology::system().nodes().back() + 1)) ==
        ENODEV);
  CHECK(code_of(numamove::placement::on_node(-3)) == ENODEV);
  CHECK(code_of(numamove::placement::interleave({home, 1000})) == ENODEV);
  CHECK(code_of(numamove::placement::interleave({})) == EINVAL);
  CHECK(code_of(numamove::placement::on_node(home)) == 0);
}

TEST_CASE("allocation failure is std::bad_alloc", "[allocator][errors]") {
  numamove::allocator<std::uint64_t> a;
  CHECK_THROWS_AS(a.allocate(std::size_t{1} << 61), std::bad_array_new_length);
  CHECK_THROWS_AS(a.allocate(std::size_t{1} << 56), std::bad_alloc);
}

TEST_CASE("works with node-based containers through rebinding", "[allocator]") {
  using pair_allocator = numamove::allocator<std::pair<const int, int>>;
  std::map<int, int, std::less<int>, pair_allocator> m{
      pair_allocator(numamove::placement::on_node(home))};
  for (int i = 0; i < 100; ++i) m[i] = i * i;
  CHECK(m.at(9) == 81);
  std::list<int, numamove::allocator<int>> l(10, 4);
  CHECK(l.back() == 4);
}

TEST_CASE("allocators compare equal when their placements are", "[allocator]") {
  const numamove::allocator<int> a(numamove::placement::on_node(home));
  const numamove::allocator<double> b(numamove::placement::on_node(home));
  const numamove::allocator<int> c;
  CHECK(a == b);
  CHECK(a != c);
  CHECK(numamove::allocator<int>(b) == a);
}

// Each case that frees into the cache uses a length of pages no other case frees, so that what
// it takes back is what it freed.

TEST_CASE("a freed on_node allocation is reused: same pages, bound, on the node",
          "[allocator][cache]") {
  const std::size_t pages = 7;
  char* first = numamove::allocator<char>(on_home).allocate(pages * numamove_test::page());
  std::memset(first, 1, pages * numamove_test::page());
  numamove::allocator<char>(on_home).deallocate(first, pages * numamove_test::page());

  numamove::vector<char> v(pages * numamove_test::page(), 2, on_home);
  CHECK(v.data() == first);
  CHECK(policy_at(v.data()) ==
        std::pair<int, unsigned long>{numamove::detail::mpol_bind, 1UL << home});
  CHECK(numamove_test::kernel_query(v.data(), pages) == std::vector<int>(pages, home));
  CHECK(std::count(v.begin(), v.end(), 2) == static_cast<std::ptrdiff_t>(v.size()));
}

TEST_CASE("a reused allocation is bound again whatever was done to it before it was freed",
          "[allocator][cache]") {
  // 9 pages are checked with one query, 100 are re-bound with mbind(MPOL_MF_MOVE).
  const std::size_t pages = GENERATE(std::size_t{9}, std::size_t{100});
  const std::size_t bytes = pages * numamove_test::page();
  INFO(pages << " pages");
  char* first = numamove::allocator<char>(on_home).allocate(bytes);
  std::memset(first, 3, bytes);
  // The user's own policy, then a forced move through the userspace path.
  REQUIRE(numamove::detail::sys_mbind(first, bytes, numamove::detail::mpol_default, nullptr, 0,
                                      0) == 0);
  numamove::migrate_options force;
  force.force = true;
  CHECK(!numamove::migrate(first, bytes, home, force).error);
  numamove::allocator<char>(on_home).deallocate(first, bytes);

  numamove::vector<char> v(bytes, 4, on_home);
  CHECK(v.data() == first);
  for (std::size_t i = 0; i < pages; ++i)
    CHECK(policy_at(v.data() + i * numamove_test::page()) ==
          std::pair<int, unsigned long>{numamove::detail::mpol_bind, 1UL << home});
  CHECK(numamove_test::kernel_query(v.data(), pages) == std::vector<int>(pages, home));
  CHECK(std::count(v.begin(), v.end(), 4) == static_cast<std::ptrdiff_t>(v.size()));
}

TEST_CASE("first_touch, interleave and allocations over 32 MiB are never reused",
          "[allocator][cache]") {
  const std::size_t page = numamove_test::page();
  const auto fresh_after_free = [](numamove::allocator<char> a, std::size_t bytes) {
    char* p = a.allocate(bytes);
    std::memset(p, 5, bytes);
    a.deallocate(p, bytes);
    numamove::allocator<char> again(a);
    p = again.allocate(bytes);
    const bool fresh = untouched(p, bytes);
    again.deallocate(p, bytes);
    return fresh;
  };
  CHECK(fresh_after_free(numamove::allocator<char>(), 11 * page));
  CHECK(fresh_after_free(numamove::allocator<char>(numamove::placement::interleave({home})),
                         11 * page));
  CHECK(fresh_after_free(on_home, (std::size_t{32} << 20) + page));
}

TEST_CASE("the cache keeps 32 MiB of freed allocations, the newest", "[allocator][cache]") {
  // Three of 12 MiB and 13 pages: the third freed pushes the first out.
  const std::size_t bytes = (std::size_t{12} << 20) + 13 * numamove_test::page();
  numamove::allocator<char> a(on_home);
  std::vector<char*> freed;
  for (int i = 0; i < 3; ++i) {
    freed.push_back(a.allocate(bytes));
    std::memset(freed.back(), 6, bytes);
  }
  for (char* p : freed) a.deallocate(p, bytes);
  char* newest = a.allocate(bytes);
  char* second = a.allocate(bytes);
  char* third = a.allocate(bytes);
  CHECK(newest == freed[2]);
  CHECK(second == freed[1]);
  CHECK(untouched(third, bytes));
  for (char* p : {newest, second, third}) a.deallocate(p, bytes);
}

TEST_CASE("threads allocating and freeing at once each get their own placed memory",
          "[allocator][cache]") {
  std::vector<int> failures(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &failures] {
      for (int round = 0; round < 200; ++round) {
        // Lengths shared between the threads, so that they take each other's mappings.
        const std::size_t count = (1 + static_cast<std::size_t>(round % 3)) * 1024;
        numamove::vector<int> v(count, t, numamove::allocator<int>(on_home));
        const bool placed = numamove::locate(v.data(), v.size()) ==
                            std::vector<int>(v.size() * sizeof(int) / numamove_test::page(), home);
        if (!placed || std::count(v.begin(), v.end(), t) != static_cast<std::ptrdiff_t>(count))
          ++failures[static_cast<std::size_t>(t)];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  CHECK(failures == std::vector<int>(4, 0));
}

TEST_CASE("a fork()ed child reusing an inherited mapping does not touch the parent's",
          "[allocator][cache]") {
  const std::size_t bytes = 15 * numamove_test::page();
  numamove::allocator<char> a(on_home);
  char* p = a.allocate(bytes);
  std::memset(p, 7, bytes);
  a.deallocate(p, bytes);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The child's copy of the cache hands it the same (copy-on-write) mapping.
    char* q = a.allocate(bytes);
    std::memset(q, 8, bytes);
    const bool placed = numamove::locate(q, bytes) == std::vector<int>(15, home);
    ::_exit(q == p && placed ? 0 : 1);
  }
  int status = -1;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(status == 0);
  char* again = a.allocate(bytes);
  CHECK(again == p);
  CHECK(std::count(again, again + bytes, 7) == static_cast<std::ptrdiff_t>(bytes));
  a.deallocate(again, bytes);
}

TEST_CASE("where mbind is refused, allocating again still places by first touch",
          "[allocator][cache][seccomp]") {
  constexpr std::size_t pages = 17;
  numamove_test::child_options options;
  options.filter = numamove_test::numa_filter::refuse_all;
  numamove_test::seccomp_child child(
      [&](numamove_test::child_channel& ch) {
        try {
          const numamove::allocator<char> a(numamove::placement::on_node(home));
          { numamove::vector<char> v(pages * numamove_test::page(), 9, a); }
          numamove::vector<char> v(pages * numamove_test::page(), 10, a);
          ch.send(0);
          ch.send(reinterpret_cast<std::intptr_t>(v.data()));
          ch.send(std::count(v.begin(), v.end(), 10) == static_cast<std::ptrdiff_t>(v.size()));
          ch.wait_for_parent();
        } catch (const std::system_error& e) {
          ch.send(e.code().value());
        }
        return 0;
      },
      options);
  const numamove_test::child_report& r = child.receive(3);
  INFO(r.describe());
  REQUIRE(r.values.size() == 3);
  CHECK(r.values[0] == 0);
  CHECK(r.values[2] == 1);
  // Placed by a pinned worker's touch: every page resident on the node.
  const char* data = reinterpret_cast<const char*>(static_cast<std::intptr_t>(r.values[1]));
  CHECK(numamove_test::kernel_query(data, pages, child.pid()) == std::vector<int>(pages, home));
  child.proceed();
  CHECK(child.release() == 0);
}
