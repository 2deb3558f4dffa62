// Helpers for the userspace migrator's tests (tests/unit/test_userspace_*.cpp and
// tests/multinode/test_userspace_*.cpp): calls with the migrator's options, and the scenario of
// every kind of page the per-page rules tell apart.
#pragma once

#include <sys/mman.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <numamove/numamove.hpp>

#include "support/catch.hpp"
#include "support/child.hpp"
#include "support/pages.hpp"
#include "support/patterns.hpp"

namespace numamove_test {

using numamove::detail::userspace::relocation_options;

/// The userspace path's move_pages with explicit options, over pages[i] = first + i pages.
inline long move(char* first, std::size_t count, int node, std::vector<int>& status,
                 int flags = MPOL_MF_MOVE, relocation_options options = {}) {
  std::vector<void*> pages = page_addresses(first, count);
  std::vector<int> nodes(count, node);
  status.assign(count, 1000);
  return numamove::detail::userspace::move_pages(0, count, pages.data(), nodes.data(),
                                                 status.data(), flags, options);
}

/// Forced move to `node` (the whole copy path even when the pages are there already).
inline long force_move(char* first, std::size_t count, int node, std::vector<int>& status,
                       int flags = MPOL_MF_MOVE) {
  relocation_options options;
  options.force = true;
  return move(first, count, node, status, flags, options);
}

/// The userspace path's query of one page.
inline int query(const void* page) {
  void* address = const_cast<void*>(page);
  int status = 1000;
  if (numamove::move_pages(0, 1, &address, nullptr, &status, 0, numamove::backend::userspace) != 0)
    return 2000;
  return status;
}

/// Makes the huge-page-aligned block `m` (one huge page) a block THP may back with one hole:
/// fill()ed with huge pages off, page `hole` dropped, then MADV_HUGEPAGE. The advice wakes
/// khugepaged, which may collapse the block (the hole then holds zeros) in the pass it starts
/// at once; its next pass comes scan_sleep_millisecs (10 s) later. So the block is looked at
/// after 200 ms, and made again, up to 5 times, while it was collapsed. False when every block
/// was.
inline bool huge_block_with_hole(const aligned_mapping& m, std::size_t hole) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (::madvise(m.data, m.bytes, MADV_NOHUGEPAGE) != 0 ||
        ::madvise(m.data, m.bytes, MADV_DONTNEED) != 0)
      return false;
    fill(m.data, m.bytes);
    if (::madvise(m.data + hole * page(), page(), MADV_DONTNEED) != 0 ||
        ::madvise(m.data, m.bytes, MADV_HUGEPAGE) != 0)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (!present(m.data + hole * page()) && anon_huge_bytes(m.data) == 0) return true;
  }
  return false;
}

/// The page frames and protections of `pages` pages from `first`, to compare after a move.
struct snapshot {
  std::vector<std::uint64_t> frames;
  std::vector<std::string> perms;
  snapshot(const char* first, std::size_t pages) {
    for (std::size_t p = 0; p < pages; ++p) {
      frames.push_back(pfn(first + p * page()));
      perms.push_back(perms_of(first + p * page()));
    }
  }
};

/// Checks page p of the pages `before` took from `first`: moved (a new frame) or left as it was
/// (the same frame), with the same protection either way. Frames are compared where readable.
inline void check_page(const snapshot& before, const char* first, std::size_t p, bool moved) {
  INFO("page " << p << (moved ? " should have moved" : " should be as it was"));
  const std::uint64_t now = pfn(first + p * page());
  if (before.frames[p] != 0) CHECK((now != before.frames[p]) == moved);
  CHECK(perms_of(first + p * page()) == before.perms[p]);
}

/// The start of the [vvar] mapping, which has VM_IO | VM_PFNMAP (smaps "io pf"), or nullptr.
inline void* vvar_page() {
  std::ifstream in("/proc/self/maps");
  for (std::string line; std::getline(in, line);)
    if (line.find("[vvar]") != std::string::npos)
      return reinterpret_cast<void*>(std::strtoull(line.c_str(), nullptr, 16));
  return nullptr;
}

/// The pages of every kind the per-page rules tell apart, in one process, for running the same
/// request through both backends. `shared_with_child` pages are copy-on-write shared with a
/// forked child that waits until the scenario is destroyed.
struct scenario {
  enum kind {
    touched,
    untouched,
    zero,
    unmapped,
    io,
    cow_shared,
    read_only,
    no_access,
    locked,
    dont_fork,
    shared_anonymous,
    huge_head,
    huge_tail,
  };
  static const char* name(kind k) {
    static const char* const names[] = {"touched",
                                        "untouched",
                                        "zero page",
                                        "unmapped",
                                        "io/pfnmap",
                                        "cow-shared",
                                        "read-only",
                                        "PROT_NONE",
                                        "mlocked",
                                        "MADV_DONTFORK",
                                        "MAP_SHARED anonymous",
                                        "THP head",
                                        "THP tail"};
    return names[k];
  }

  scenario() : huge(huge_page_bytes, huge_page_bytes) {
    const std::size_t page = numamove_test::page();
    area = static_cast<char*>(::mmap(nullptr, area_pages * page, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    shared = static_cast<char*>(
        ::mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    gone = never_mapped();
    // Pages 0-1 touched, 2 untouched, 3 zero page, 4 read-only, 5 PROT_NONE, 6 mlocked,
    // 7 MADV_DONTFORK, 8 copy-on-write shared; the odd protections split the mapping.
    fill(area, area_pages * page);
    ::madvise(area + 2 * page, page, MADV_DONTNEED);
    ::madvise(area + 3 * page, page, MADV_DONTNEED);
    (void)*reinterpret_cast<volatile char*>(area + 3 * page);
    ::mprotect(area + 4 * page, page, PROT_READ);
    ::mprotect(area + 5 * page, page, PROT_NONE);
    // (Sanitizers make mlock a no-op that succeeds: check that the page is locked.)
    locked_ok = ::mlock(area + 6 * page, page) == 0 &&
                smaps_of(area + 6 * page).find(" lo") != std::string::npos;
    ::madvise(area + 7 * page, page, MADV_DONTFORK);
    shared[0] = 9;
    std::memset(huge.data, 5, huge.bytes);
    ::madvise(huge.data, huge.bytes, MADV_HUGEPAGE);
    std::memset(huge.data, 6, huge.bytes);
    child.emplace([] {});
    // Everything but page 8 back to exclusive: write each of them once, with the byte it holds
    // (copy-on-write breaks, the contents stay).
    const auto rewrite = [&](std::size_t p) {
      volatile char* first = area + p * page;
      *first = *first;
    };
    for (const std::size_t p : {0, 1, 6}) rewrite(p);
    for (const std::size_t p : {4, 5}) {
      ::mprotect(area + p * page, page, PROT_READ | PROT_WRITE);
      rewrite(p);
      ::mprotect(area + p * page, page, p == 4 ? PROT_READ : PROT_NONE);
    }
    huge.data[0] = 6;
    add(area, touched);
    add(area + page, touched);
    add(area + 2 * page, untouched);
    add(area + 3 * page, zero);
    add(gone, unmapped);
    if (void* v = vvar_page()) add(v, io);
    add(area + 8 * page, cow_shared);
    add(area + 4 * page, read_only);
    add(area + 5 * page, no_access);
    if (locked_ok) add(area + 6 * page, locked);
    add(area + 7 * page, dont_fork);
    add(shared, shared_anonymous);
    add(huge.data, huge_head);
    add(huge.data + page, huge_tail);
  }
  ~scenario() {
    child.reset();
    ::munlock(area + 6 * page(), page());
    ::munmap(area, area_pages * page());
    ::munmap(shared, page());
  }
  scenario(const scenario&) = delete;
  scenario& operator=(const scenario&) = delete;

  void add(void* page, kind k) {
    pages.push_back(page);
    kinds.push_back(k);
  }

  static constexpr std::size_t area_pages = 9;
  aligned_mapping huge;
  char* area = nullptr;
  char* shared = nullptr;
  char* gone = nullptr;
  bool locked_ok = false;
  std::optional<held_child> child;
  std::vector<void*> pages;
  std::vector<kind> kinds;
};

}  // namespace numamove_test
