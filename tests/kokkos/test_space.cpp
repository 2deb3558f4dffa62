// NumaSpace on any machine: construction errors, Views placed before Kokkos touches them,
// kernels, deep copies, mirrors, subviews, unmanaged Views, kokkos_malloc, Kokkos Tools, and
// migrate/locate/bytes_per_node on Views. Pages are checked with the kernel's own query.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <string>
#include <system_error>
#include <vector>

#include "kokkos_support.hpp"
#include "support/child.hpp"

using namespace numamove_test;
using numamove::placement;

namespace {

int construction_error(const placement& where) {
  try {
    NumaSpace space(where);
  } catch (const std::system_error& e) {
    return e.code().value();
  }
  return 0;
}

}  // namespace

TEST_CASE("NumaSpace validates its placement when constructed", "[kokkos][errors]") {
  for (const int node : numamove_test::nonexistent_nodes()) {
    INFO("node " << node);
    CHECK(construction_error(placement::on_node(node)) == ENODEV);
    CHECK(construction_error(placement::interleave({home, node})) == ENODEV);
  }
  for (const int node : numamove_test::memoryless_nodes())
    CHECK(construction_error(placement::on_node(node)) == ENODEV);
  CHECK(construction_error(placement::interleave({})) == EINVAL);
  CHECK(construction_error(placement::on_node(home)) == 0);
  CHECK(construction_error(placement::first_touch()) == 0);
}

TEST_CASE("a node outside the cpuset is EACCES when the space is constructed",
          "[kokkos][errors][multinode]") {
  const std::vector<int> nodes = numamove_test::memory_nodes();
  const std::string why = numamove_test::cpuset_unavailable();
  NUMAMOVE_SKIP_UNLESS(why.empty(), "cpuset", why);
  numamove_test::cpuset_cgroup group(std::to_string(nodes.front()));
  REQUIRE(group.error() == "");
  // In a child, with no Kokkos and no OpenMP: only the constructor's checks.
  CHECK(in_child([&] {
          if (group.enter() != 0) return 100;
          return construction_error(placement::on_node(nodes.back()));
        }) == EACCES);
}

TEST_CASE("every page of a View is placed before Kokkos touches it", "[kokkos]") {
  const std::size_t rows = 64;
  for (const placement& where :
       {placement::on_node(home), placement::interleave({home}), placement::first_touch()}) {
    INFO("placement " << static_cast<int>(where.kind));
    const NumaSpace space(where);
    grid a(Kokkos::view_alloc(space, "a"), rows, row_length());
    // Kokkos wrote its 128-byte header in front of the data, on the allocation's first page.
    CHECK(reinterpret_cast<std::uintptr_t>(a.data()) % page() == 128);
    CHECK(a.label() == "a");
    const std::vector<int> nodes = kernel_nodes_of(a);
    if (where.kind == placement::policy::first_touch)  // wherever the initializing threads run
      CHECK(std::none_of(nodes.begin(), nodes.end(), [](int status) { return status < 0; }));
    else
      CHECK(nodes == std::vector<int>(pages_of(a), home));
    CHECK(numamove::kokkos::space_of(a) == space);
    double sum = 1;
    Kokkos::parallel_reduce(
        "sum", Kokkos::RangePolicy<NumaSpace::execution_space>(0, rows),
        KOKKOS_LAMBDA(const int i, double& s) { s += a(i, 0); }, sum);
    CHECK(sum == 0.0);  // initialized by Kokkos
  }
}

TEST_CASE("an uninitialized View in a placed space is placed too (bound, not yet touched)",
          "[kokkos]") {
  grid a(Kokkos::view_alloc(NumaSpace(placement::on_node(home)), "a", Kokkos::WithoutInitializing),
         16, row_length());
  // Only the header's page was written; the rest stays untouched until the program writes it
  // (numamove's locate: the kernel's query says -EFAULT for those on Linux 4.3 to 6.11).
  const std::vector<int> nodes = numamove::kokkos::locate(a);
  CHECK(nodes.front() == home);
  CHECK(std::vector<int>(nodes.begin() + 1, nodes.end()) ==
        std::vector<int>(nodes.size() - 1, -ENOENT));
  Kokkos::parallel_for(
      "touch", Kokkos::RangePolicy<NumaSpace::execution_space>(0, 16), KOKKOS_LAMBDA(const int i) {
        for (std::size_t j = 0; j < a.extent(1); ++j) a(i, j) = i;
      });
  CHECK(kernel_nodes_of(a) == std::vector<int>(nodes.size(), home));
}

TEST_CASE("deep_copy to and from HostSpace keeps contents and placement", "[kokkos]") {
  const std::size_t n = 4 * row_length() + 5;
  const NumaSpace space(placement::on_node(home));
  view<double*, NumaSpace> a(Kokkos::view_alloc(space, "a"), n);
  view<double*, Kokkos::HostSpace> h("h", n);
  fill_pattern(h, 3);
  Kokkos::deep_copy(a, h);
  CHECK(holds_pattern(a, 3));
  fill_pattern(h, 0);
  Kokkos::deep_copy(h, a);
  CHECK(holds_pattern(h, 3));
  // With an execution space instance: asynchronous, complete after a fence of that instance.
  const NumaSpace::execution_space exec;
  fill_pattern(h, 7);
  Kokkos::deep_copy(exec, a, h);
  exec.fence();
  CHECK(holds_pattern(a, 7));
  view<double*, NumaSpace> b(Kokkos::view_alloc(space, "b"), n);
  Kokkos::deep_copy(exec, b, a);
  exec.fence();
  CHECK(holds_pattern(b, 7));
  CHECK(kernel_nodes_of(a) == std::vector<int>(pages_of(a), home));
  CHECK(kernel_nodes_of(b) == std::vector<int>(pages_of(b), home));
}

TEST_CASE("a HostSpace View may hold a NumaSpace allocation, and says where it came from",
          "[kokkos]") {
  const NumaSpace space(placement::on_node(home));
  view<double*, NumaSpace> a(Kokkos::view_alloc(space, "a"), 1000);
  view<double*, Kokkos::HostSpace> h = a;
  CHECK(h.data() == a.data());
  CHECK(numamove::kokkos::space_of(h) == space);
  view<double*, Kokkos::HostSpace> plain("plain", 1000);
  CHECK_FALSE(numamove::kokkos::space_of(plain).has_value());
}

TEST_CASE(
    "create_mirror_view is the View itself; create_mirror keeps the placement only through "
    "numamove",
    "[kokkos][mirror]") {
  const NumaSpace space(placement::on_node(home));
  grid a(Kokkos::view_alloc(space, "a"), 8, row_length());
  fill_pattern(a, 11);
  auto same = Kokkos::create_mirror_view(a);
  CHECK(same.data() == a.data());

  auto mirror = numamove::kokkos::create_mirror(a);
  CHECK(mirror.data() != a.data());
  CHECK(numamove::kokkos::space_of(mirror) == space);
  CHECK(mirror.label() == "a_mirror");
  CHECK(mirror.extent(0) == 8);
  CHECK(mirror.extent(1) == row_length());
  CHECK(kernel_nodes_of(mirror) == std::vector<int>(pages_of(mirror), home));
  Kokkos::deep_copy(mirror, a);
  CHECK(holds_pattern(mirror, 11));
  auto uninitialized = numamove::kokkos::create_mirror(Kokkos::WithoutInitializing, a);
  CHECK(numamove::kokkos::space_of(uninitialized) == space);

  // The trap this namespace's create_mirror avoids: Kokkos' own allocates in a
  // default-constructed space, which places by first touch.
  auto kokkos_mirror = Kokkos::create_mirror(a);
  CHECK(numamove::kokkos::space_of(kokkos_mirror) == NumaSpace());
}

TEST_CASE("resize and realloc keep the space, the label and (resize) the contents",
          "[kokkos][resize]") {
  const NumaSpace space(placement::on_node(home));
  grid a(Kokkos::view_alloc(space, "field"), 4, row_length());
  fill_pattern(a, 5);
  const grid before = a;
  numamove::kokkos::resize(a, 9, row_length());
  CHECK(a.data() != before.data());
  CHECK(a.extent(0) == 9);
  CHECK(a.label() == "field");
  CHECK(numamove::kokkos::space_of(a) == space);
  CHECK(kernel_nodes_of(a) == std::vector<int>(pages_of(a), home));
  bool kept = true;
  bool zero = true;
  for (std::size_t i = 0; i < 9; ++i)
    for (std::size_t j = 0; j < row_length(); ++j) {
      if (i < 4)
        kept = kept && a(i, j) == before(i, j);
      else
        zero = zero && a(i, j) == 0.0;
    }
  CHECK(kept);
  CHECK(zero);
  numamove::kokkos::resize(Kokkos::WithoutInitializing, a, 2, 3);
  CHECK(a.extent(0) == 2);
  CHECK(a(1, 2) == before(1, 2));
  CHECK(numamove::kokkos::space_of(a) == space);

  numamove::kokkos::realloc(a, 6, row_length());
  CHECK(a.extent(0) == 6);
  CHECK(a.label() == "field");
  CHECK(a(5, 5) == 0.0);
  CHECK(numamove::kokkos::space_of(a) == space);
  numamove::kokkos::realloc(Kokkos::WithoutInitializing, a, 3, row_length());
  CHECK(numamove::kokkos::space_of(a) == space);

  // Kokkos' own resize falls back to a default-constructed space.
  Kokkos::resize(a, 7, row_length());
  CHECK(numamove::kokkos::space_of(a) == NumaSpace());
}

TEST_CASE(
    "subviews share their allocation's space; migrate, locate and bytes_per_node see their "
    "elements",
    "[kokkos][subview]") {
  const NumaSpace space(placement::on_node(home));
  const std::size_t rows = 16;
  grid a(Kokkos::view_alloc(space, "a"), rows, row_length());
  auto middle = Kokkos::subview(a, Kokkos::make_pair(4, 8), Kokkos::ALL);
  auto column = Kokkos::subview(a, Kokkos::ALL, 3);
  CHECK(numamove::kokkos::space_of(middle) == space);
  CHECK(numamove::kokkos::space_of(column) == space);

  // Rows 4..7 lie on pages 4 to 8: the data starts 128 bytes into page 0.
  CHECK(numamove::kokkos::locate(middle) == std::vector<int>(5, home));
  // A column has one element on each row's page (rows straddle two pages: the data starts 128
  // bytes into the first one), so 16 pages, 16 doubles.
  CHECK(numamove::kokkos::locate(column) == std::vector<int>(rows, home));
  CHECK(numamove::kokkos::bytes_per_node(column) ==
        std::map<int, std::size_t>{{home, rows * sizeof(double)}});
  CHECK(numamove::kokkos::bytes_per_node(middle) == std::map<int, std::size_t>{{home, 4 * page()}});
  const numamove::migration_result r = numamove::kokkos::migrate(column, home);
  CHECK(r);
  CHECK(r.status.size() == rows);
  CHECK(r.already_there == rows);
}

TEST_CASE("unmanaged Views: no space, but migrate, locate and bytes_per_node work", "[kokkos]") {
  numamove::vector<double> storage(3 * row_length(), 1.0,
                                   numamove::allocator<double>(placement::on_node(home)));
  view<double*, NumaSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>> u(storage.data(),
                                                                      storage.size());
  CHECK_FALSE(numamove::kokkos::space_of(u).has_value());
  CHECK(numamove::kokkos::locate(u) == std::vector<int>(3, home));
  CHECK(numamove::kokkos::bytes_per_node(u) == std::map<int, std::size_t>{{home, 3 * page()}});
  const numamove::migration_result r = numamove::kokkos::migrate(u, home);
  CHECK(r);
  CHECK(r.already_there == 3);
}

TEST_CASE("migrate of a View reports failures in its result, never throws", "[kokkos][errors]") {
  grid a(Kokkos::view_alloc(NumaSpace(placement::on_node(home)), "a"), 4, row_length());
  for (const int node : numamove_test::nonexistent_nodes()) {
    INFO("node " << node);
    numamove::migration_result r;
    CHECK_NOTHROW(r = numamove::kokkos::migrate(a, node));
    CHECK(r.error == std::error_code(ENODEV, std::generic_category()));
    CHECK_FALSE(r);
  }
  numamove::migrate_options bad;
  bad.flags = 0x80;
  const numamove::migration_result r = numamove::kokkos::migrate(a, home, bad);
  CHECK(r.error == std::error_code(EINVAL, std::generic_category()));
  CHECK(kernel_nodes_of(a) == std::vector<int>(pages_of(a), home));
}

TEST_CASE("a View that cannot be mapped throws a std::bad_alloc that says why",
          "[kokkos][errors]") {
  const NumaSpace space(placement::on_node(home));
  bool caught = false;
  try {
    view<double*, NumaSpace> huge(Kokkos::view_alloc(space, "huge"), std::size_t{1} << 60);
  } catch (const numamove::kokkos::allocation_failure& e) {
    caught = true;
    CHECK(e.code() == std::error_code(ENOMEM, std::generic_category()));
    CHECK(std::string(e.what()).find("\"huge\"") != std::string::npos);
  }
  CHECK(caught);
  CHECK_THROWS_AS(space.allocate(std::size_t{1} << 62), std::bad_alloc);
}

TEST_CASE("kokkos_malloc in a placed space; kokkos_realloc keeps the space", "[kokkos]") {
  const NumaSpace space(placement::on_node(home));
  using record = Kokkos::Impl::SharedAllocationRecord<NumaSpace, void>;
  void* p = numamove::kokkos::kokkos_malloc(space, "raw", 3 * page());
  REQUIRE(p != nullptr);
  std::memset(p, 1, 3 * page());
  CHECK(record::get_record(p)->space() == space);
  CHECK(numamove::locate(static_cast<char*>(p), 3 * page()) == std::vector<int>(4, home));
  p = Kokkos::kokkos_realloc<NumaSpace>(p, 8 * page());
  CHECK(record::get_record(p)->space() == space);
  CHECK(static_cast<unsigned char*>(p)[3 * page() - 1] == 1);
  Kokkos::kokkos_free<NumaSpace>(p);
  CHECK(numamove::kokkos::kokkos_malloc(space, "empty", 0) == nullptr);
}

namespace {

struct tools_event {
  std::string space;
  std::string label;
  const void* ptr;
  std::uint64_t size;
};
std::vector<tools_event> allocations;
std::vector<tools_event> deallocations;

// Other spaces' events (Kokkos' own scratch memory) are not NumaSpace's to check.
void on_allocate(Kokkos::Profiling::SpaceHandle handle, const char* label, const void* ptr,
                 std::uint64_t size) {
  if (std::string(handle.name) == NumaSpace::name())
    allocations.push_back({handle.name, label, ptr, size});
}
void on_deallocate(Kokkos::Profiling::SpaceHandle handle, const char* label, const void* ptr,
                   std::uint64_t size) {
  if (std::string(handle.name) == NumaSpace::name())
    deallocations.push_back({handle.name, label, ptr, size});
}

}  // namespace

TEST_CASE("Kokkos Tools see NumaSpace allocations and deallocations", "[kokkos][tools]") {
  allocations.clear();
  deallocations.clear();
  Kokkos::Tools::Experimental::set_allocate_data_callback(on_allocate);
  Kokkos::Tools::Experimental::set_deallocate_data_callback(on_deallocate);
  const void* header = nullptr;
  {
    view<double*, NumaSpace> a(Kokkos::view_alloc(NumaSpace(placement::on_node(home)), "watched"),
                               1000);
    header = reinterpret_cast<const char*>(a.data()) - 128;
  }
  Kokkos::Tools::Experimental::set_allocate_data_callback(nullptr);
  Kokkos::Tools::Experimental::set_deallocate_data_callback(nullptr);
  REQUIRE(allocations.size() == 1);
  CHECK(allocations[0].space == "NumaSpace");
  CHECK(allocations[0].label == "watched");
  CHECK(allocations[0].ptr == header);
  CHECK(allocations[0].size == 1000 * sizeof(double));
  REQUIRE(deallocations.size() == 1);
  CHECK(deallocations[0].space == "NumaSpace");
  CHECK(deallocations[0].label == "watched");
  CHECK(deallocations[0].ptr == header);
  CHECK(deallocations[0].size == 1000 * sizeof(double));
}

TEST_CASE("migrate, locate and bytes_per_node work on HostSpace Views", "[kokkos]") {
  view<double*, Kokkos::HostSpace> h("h", 64 * row_length());
  const numamove::migration_result r = numamove::kokkos::migrate(h, home);
  CHECK(r);
  CHECK(r.moved + r.already_there == pages_of(h));
  CHECK(kernel_nodes_of(h) == std::vector<int>(pages_of(h), home));
  CHECK(numamove::kokkos::locate(h) == kernel_nodes_of(h));
  CHECK(numamove::kokkos::bytes_per_node(h) ==
        std::map<int, std::size_t>{{home, h.span() * sizeof(double)}});
  CHECK(numamove::kokkos::migrate(h, home).already_there == pages_of(h));
}
