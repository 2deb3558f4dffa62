// allocator<T>: page-aligned, placed before first touch, usable by standard containers.
#include <cerrno>
#include <cstdint>
#include <list>
#include <map>
#include <system_error>
#include <vector>

#include <numamove/numamove.hpp>

#include "support/catch.hpp"
#include "support/pages.hpp"

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
