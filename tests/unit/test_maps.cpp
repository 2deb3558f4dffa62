// Reading the process's mappings (detail/linux/maps.hpp): read_mapping_at(), which stops reading
// smaps at the mapping it looks for, gives the same mapping, with the same smaps fields, as
// reading the whole file.
#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <ios>
#include <optional>
#include <vector>

#include <numamove/numamove.hpp>

#include "support/catch.hpp"

namespace detail = numamove::detail;

namespace {

void require_same(const std::optional<detail::mapping>& one, const detail::mapping* whole) {
  REQUIRE(one.has_value() == (whole != nullptr));
  if (whole == nullptr) return;
  CHECK(one->start == whole->start);
  CHECK(one->end == whole->end);
  CHECK(one->perms == whole->perms);
  CHECK(one->path == whole->path);
  CHECK(one->kernel_page_size == whole->kernel_page_size);
  CHECK(one->vm_flags == whole->vm_flags);
}

}  // namespace

TEST_CASE("read_mapping_at gives the mapping that the whole of smaps gives", "[maps]") {
  // Many small mappings of alternating protection (the kernel cannot merge them): smaps is then
  // far longer than one read, and records cross the reads' boundaries. The first and the last
  // are read-only, so that no read-write mapping the process makes meanwhile (a sanitizer's
  // allocator, say) merges with them and moves their bounds between the two reads.
  const std::size_t page = detail::page_size();
  constexpr std::size_t count = 1025;
  char* const area = static_cast<char*>(
      ::mmap(nullptr, count * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  REQUIRE(area != MAP_FAILED);
  for (std::size_t i = 0; i < count; i += 2)
    REQUIRE(::mprotect(area + i * page, page, PROT_READ) == 0);
  REQUIRE(::madvise(area + 101 * page, page, MADV_NOHUGEPAGE) == 0);  // a flag only smaps shows
  REQUIRE(::munmap(area + 200 * page, page) == 0);                    // a hole

  const std::vector<detail::mapping> maps = detail::read_mappings(0);
  std::vector<std::uintptr_t> addresses = {
      reinterpret_cast<std::uintptr_t>(area),                       // the first of the many
      reinterpret_cast<std::uintptr_t>(area + 101 * page + 17),     // inside, with "nh"
      reinterpret_cast<std::uintptr_t>(area + 102 * page - 1),      // its last byte
      reinterpret_cast<std::uintptr_t>(area + 200 * page),          // the hole: no mapping
      reinterpret_cast<std::uintptr_t>(area + (count - 1) * page),  // the last of the many
      std::uintptr_t{4096},                                         // below every mapping
  };
  // Near the end of smaps, a mapping that never changes: the vDSO, where there is one.
  for (const detail::mapping& m : maps)
    if (m.path == "[vdso]") addresses.push_back(m.start);
  for (const std::uintptr_t address : addresses) {
    INFO("address 0x" << std::hex << address);
    require_same(detail::read_mapping_at(0, address), detail::find_mapping(maps, address));
  }
  const std::optional<detail::mapping> advised =
      detail::read_mapping_at(0, reinterpret_cast<std::uintptr_t>(area + 101 * page));
  REQUIRE(advised);
  CHECK(advised->has_flag("nh"));
  CHECK_FALSE(detail::read_mapping_at(0, reinterpret_cast<std::uintptr_t>(area + 200 * page)));
  REQUIRE(::munmap(area, count * page) == 0);
}
