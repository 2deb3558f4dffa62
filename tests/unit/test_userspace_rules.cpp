// The userspace migrator's per-page rules (docs/semantics.md), one row at a time, on this
// machine: moves to the node the pages are on with `force` run the whole copy path.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <numamove/numamove.hpp>

#include "support/catch.hpp"
#include "support/child.hpp"
#include "support/pages.hpp"
#include "support/patterns.hpp"
#include "support/seccomp_child.hpp"
#include "test_userspace_support.hpp"

using namespace numamove_test;
namespace us = numamove::detail::userspace;

namespace {

// A file on a disk-backed filesystem (the build tree's), removed on destruction.
struct scratch_file {
  explicit scratch_file(std::size_t pages) {
    std::string pattern =
        std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + "/numamove-us-XXXXXX";
    path.assign(pattern.begin(), pattern.end());
    path.push_back('\0');
    fd = ::mkstemp(path.data());
    if (fd >= 0 && ::ftruncate(fd, static_cast<off_t>(pages * page())) != 0) fd = -1;
  }
  ~scratch_file() {
    if (fd >= 0) ::close(fd);
    ::unlink(path.data());
  }
  scratch_file(const scratch_file&) = delete;
  scratch_file& operator=(const scratch_file&) = delete;
  bool on_memory_filesystem() const {
    numamove::detail::mapping m;
    m.path = path.data();
    return us::memory_backed_file(m);
  }
  std::vector<char> path;
  int fd = -1;
};

}  // namespace

TEST_CASE("userspace: no mapping and I/O or PFN mappings are -EFAULT", "[userspace][rules]") {
  void* gone = numamove_test::never_mapped();
  void* vvar = vvar_page();
  REQUIRE(vvar != nullptr);
  REQUIRE(smaps_of(vvar).find(" pf") != std::string::npos);
  std::vector<void*> pages{gone, vvar};
  std::vector<int> nodes{home, home};
  std::vector<int> status{1, 1};
  for (const int flags : {MPOL_MF_MOVE, MPOL_MF_MOVE_ALL}) {
    CHECK(us::move_pages(0, 2, pages.data(), nodes.data(), status.data(), flags, {true, true, 0}) ==
          0);
    CHECK(status == std::vector<int>{-EFAULT, -EFAULT});
  }
  CHECK(numamove::move_pages(0, 2, pages.data(), nullptr, status.data(), 0,
                             numamove::backend::userspace) == 0);
  CHECK(status == std::vector<int>{-EFAULT, -EFAULT});
}

TEST_CASE("userspace: pages never touched are -ENOENT and stay unallocated", "[userspace][rules]") {
  mapping m(6);
  m.touch(0, 1);
  m.touch(3, 1);
  m.touch(5, 1);
  std::vector<int> status;
  REQUIRE(force_move(m.data, 6, home, status) == 0);
  CHECK(status == std::vector<int>{home, -ENOENT, -ENOENT, home, -ENOENT, home});
  CHECK_FALSE(present(m.at_page(1)));
  CHECK_FALSE(present(m.at_page(2)));
  CHECK_FALSE(present(m.at_page(4)));
  CHECK(*m.at_page(3) == 1 + 3);
  CHECK(query(m.at_page(4)) == -ENOENT);
}

TEST_CASE("userspace: the zero page is -EFAULT and stays the zero page", "[userspace][rules]") {
  mapping m(3);
  m.touch(0, 1);
  m.touch(2, 1);
  (void)*reinterpret_cast<volatile char*>(m.at_page(1));  // maps the zero page
  const std::uint64_t zero_pfn = pfn(m.at_page(1));
  std::vector<int> status;
  REQUIRE(force_move(m.data, 3, home, status) == 0);
  CHECK(status == std::vector<int>{home, -EFAULT, home});
  CHECK(query(m.at_page(1)) == -EFAULT);
  CHECK(pfn(m.at_page(1)) == zero_pfn);
  CHECK((pagemap(m.at_page(1)) >> 56 & 1) == 0);  // not an exclusive page of ours
  SECTION("the huge zero page too") {
    aligned_mapping huge(numamove_test::huge_page_bytes, numamove_test::huge_page_bytes);
    ::madvise(huge.data, huge.bytes, MADV_HUGEPAGE);
    (void)*reinterpret_cast<volatile char*>(huge.data);
    if ((pagemap(huge.data) >> 61 & 1) == 0) {
      WARN("SKIPPED (no huge zero page here)");
      return;
    }
    REQUIRE(force_move(huge.data, 4, home, status) == 0);
    CHECK(status == std::vector<int>(4, -EFAULT));
    CHECK(query(huge.data) == -EFAULT);
  }
}

TEST_CASE("userspace: pages already on the target are not moved unless forced",
          "[userspace][rules]") {
  mapping m(4);
  m.touch(0, 4);
  const std::uint64_t before = pfn(m.data);
  std::vector<int> status;
  REQUIRE(move(m.data, 4, home, status) == 0);
  CHECK(status == std::vector<int>(4, home));
  CHECK(pfn(m.data) == before);
  REQUIRE(force_move(m.data, 4, home, status) == 0);
  CHECK(status == std::vector<int>(4, home));
  if (before != 0) CHECK(pfn(m.data) != before);
  CHECK(*m.at_page(2) == 1 + 2);
}

TEST_CASE("userspace: mlocked pages and pages kept from fork for a device are -EPERM",
          "[userspace][rules]") {
  mapping m(3);
  m.touch(0, 3);
  SECTION("mlock (VmFlags lo)") {
    REQUIRE(::mlock(m.at_page(1), page()) == 0);
    if (smaps_of(m.at_page(1)).find(" lo") == std::string::npos) {
      WARN("SKIPPED (mlock did not lock: sanitizers make it a no-op)");
      return;
    }
  }
  SECTION("MADV_DONTFORK, as RDMA registration sets (VmFlags dc)") {
    REQUIRE(::madvise(m.at_page(1), page(), MADV_DONTFORK) == 0);
  }
  const std::uint64_t before = pfn(m.at_page(1));
  std::vector<int> status;
  for (const int flags : {MPOL_MF_MOVE, MPOL_MF_MOVE_ALL}) {
    REQUIRE(force_move(m.data, 3, home, status, flags) == 0);
    CHECK(status == std::vector<int>{home, -EPERM, home});
  }
  CHECK(pfn(m.at_page(1)) == before);
  CHECK(*m.at_page(1) == 1 + 1);
  ::munlock(m.data, m.bytes);
}

TEST_CASE("userspace: private pages shared copy-on-write with a child need MPOL_MF_MOVE_ALL",
          "[userspace][rules]") {
  mapping m(2);
  m.touch(0, 2, 20);
  held_child child([] {});
  REQUIRE(child.pid() > 0);
  REQUIRE((pagemap(m.data) >> 56 & 1) == 0);  // shared now
  std::vector<int> status;
  REQUIRE(force_move(m.data, 2, home, status) == 0);
  CHECK(status == std::vector<int>{-EACCES, -EACCES});
  CHECK((pagemap(m.data) >> 56 & 1) == 0);
  REQUIRE(force_move(m.data, 2, home, status, MPOL_MF_MOVE_ALL) == 0);
  CHECK(status == std::vector<int>{home, home});
  // The copy broke the sharing early: the parent's page is its own, with the same contents.
  CHECK((pagemap(m.data) >> 56 & 1) == 1);
  CHECK(*m.data == 20);
  CHECK(*m.at_page(1) == 21);
}

TEST_CASE("userspace: the child's view of copy-on-write pages stays its own",
          "[userspace][rules]") {
  mapping m(1);
  m.touch(0, 1, 30);
  // The child reads its page once the parent has moved its own and written to it.
  seccomp_child child(
      [&](child_channel& channel) { return channel.wait_for_parent() && *m.data == 30 ? 0 : 1; },
      child_options{numa_filter::none});
  std::vector<int> status;
  REQUIRE(force_move(m.data, 1, home, status, MPOL_MF_MOVE_ALL) == 0);
  CHECK(status == std::vector<int>{home});
  *m.data = 77;  // the parent's own page now
  child.proceed();
  CHECK(child.release() == 0);
}

TEST_CASE("userspace: MPOL_MF_MOVE_ALL without CAP_SYS_NICE is EPERM, as in the kernel",
          "[userspace][rules][errors]") {
  mapping m(1);
  m.touch(0, 1);
  CHECK(in_child([&] {
          if (drop_capability(CAP_SYS_NICE) != 0) return 90;
          numamove::capabilities::refresh();
          std::vector<int> status;
          errno = 0;
          if (move(m.data, 1, home, status, MPOL_MF_MOVE_ALL) != -1 || errno != EPERM) return 91;
          void* p = m.data;
          int s = 0;
          errno = 0;
          if (numamove::move_pages(0, 1, &p, nullptr, &s, MPOL_MF_MOVE_ALL,
                                   numamove::backend::userspace) != -1 ||
              errno != EPERM)
            return 92;
          return move(m.data, 1, home, status, MPOL_MF_MOVE) == 0 ? 0 : 93;
        }) == 0);
}

TEST_CASE("userspace: shared memory without backing store is -EACCES, and -EINVAL with MOVE_ALL",
          "[userspace][rules]") {
  char* memory = nullptr;
  SECTION("MAP_SHARED | MAP_ANONYMOUS") {
    memory = static_cast<char*>(
        ::mmap(nullptr, 2 * page(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  }
  SECTION("memfd") {
    const int fd = ::memfd_create("numamove-test", MFD_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, static_cast<off_t>(2 * page())) == 0);
    memory =
        static_cast<char*>(::mmap(nullptr, 2 * page(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    ::close(fd);
  }
  SECTION("a tmpfs file") {
    char path[] = "/dev/shm/numamove-us-XXXXXX";
    const int fd = ::mkstemp(path);
    if (fd < 0) {
      WARN("SKIPPED (no /dev/shm to make a tmpfs file in)");
      return;
    }
    ::unlink(path);
    REQUIRE(::ftruncate(fd, static_cast<off_t>(2 * page())) == 0);
    memory =
        static_cast<char*>(::mmap(nullptr, 2 * page(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    ::close(fd);
  }
  REQUIRE(memory != nullptr);  // Catch2 may run the case once more without entering a section
  REQUIRE(memory != MAP_FAILED);
  memory[0] = 4;
  memory[page()] = 5;
  std::vector<int> status;
  REQUIRE(force_move(memory, 2, home, status) == 0);
  CHECK(status == std::vector<int>{-EACCES, -EACCES});
  REQUIRE(force_move(memory, 2, home, status, MPOL_MF_MOVE_ALL) == 0);
  CHECK(status == std::vector<int>{-EINVAL, -EINVAL});
  CHECK(memory[0] == 4);
  CHECK(memory[page()] == 5);
  CHECK(query(memory) == home);
  ::munmap(memory, 2 * page());
}

TEST_CASE("userspace: shared file pages: -EACCES, or written back and relocated with MOVE_ALL",
          "[userspace][rules][file]") {
  scratch_file file(4);
  REQUIRE(file.fd >= 0);
  if (file.on_memory_filesystem()) {
    WARN("SKIPPED (no disk filesystem under TMPDIR): file pages need one");
    return;
  }
  char* m = static_cast<char*>(
      ::mmap(nullptr, 4 * page(), PROT_READ | PROT_WRITE, MAP_SHARED, file.fd, 0));
  REQUIRE(m != MAP_FAILED);
  fill(m, 3 * page());  // pages 0-2 dirty, page 3 never touched
  std::vector<int> status;
  REQUIRE(force_move(m, 4, home, status) == 0);
  CHECK(status == std::vector<int>{-EACCES, -EACCES, -EACCES, -ENOENT});

  SECTION("relocated: written back, dropped, faulted in again") {
    const std::uint64_t before = pfn(m);
    REQUIRE(force_move(m, 4, home, status, MPOL_MF_MOVE_ALL) == 0);
    CHECK(status == std::vector<int>{home, home, home, -ENOENT});
    CHECK(first_bad_page(m, 3) == 3);
    CHECK(present(m));
    CHECK_FALSE(present(m + 3 * page()));
    if (before != 0) CHECK(pfn(m) != before);
    // The file has the data: it was written back before the page left the cache.
    std::vector<char> on_disk(3 * page());
    REQUIRE(::pread(file.fd, on_disk.data(), on_disk.size(), 0) ==
            static_cast<ssize_t>(on_disk.size()));
    CHECK(first_bad_page(on_disk.data(), 3) == 3);
    m[5] = 'w';  // still writable, through the same mapping
    CHECK(m[5] == 'w');
  }
  SECTION("a writeback failure is -EIO and leaves the pages as they were") {
    const std::uint64_t before = pfn(m);
    us::inject_failure(us::failure_point::writeback, 0, EIO);
    REQUIRE(force_move(m, 1, home, status, MPOL_MF_MOVE_ALL) == 0);
    us::clear_injected_failures();
    CHECK(status == std::vector<int>{-EIO});
    CHECK(pfn(m) == before);
    CHECK(first_bad_page(m, 3) == 3);
  }
  SECTION("mapped by another process too: -EBUSY, the sharing is never broken") {
    held_child child([&] {
      char* theirs = static_cast<char*>(::mmap(nullptr, page(), PROT_READ, MAP_SHARED, file.fd, 0));
      (void)*reinterpret_cast<volatile char*>(theirs);
    });
    const std::uint64_t before = pfn(m);
    REQUIRE(force_move(m, 2, home, status, MPOL_MF_MOVE_ALL) == 0);
    CHECK(status == std::vector<int>{-EBUSY, home});
    CHECK(pfn(m) == before);
  }
  ::munmap(m, 4 * page());
}

TEST_CASE(
    "userspace: refaulted file pages leave their unmapped neighbours unmapped wherever the mapping "
    "starts",
    "[userspace][rules][file]") {
  // A read fault maps up to 15 cached neighbours, in a window that starts at the mapping's start
  // when the 64 KiB-aligned one would begin before it. Every start of the mapping within 64 KiB,
  // with the moved pages ending on a 64 KiB boundary: the untouched pages after them stay unmapped.
  constexpr std::size_t window = 16;
  const aligned_mapping reserved(huge_page_bytes, huge_page_bytes, PROT_NONE);
  REQUIRE(reserved.raw != MAP_FAILED);
  char* base = reserved.data + 4 * window * page();  // 64 KiB-aligned, inside one huge page
  for (std::size_t start = 0; start < window; ++start) {
    scratch_file file(2 * window);
    REQUIRE(file.fd >= 0);
    if (file.on_memory_filesystem()) {
      WARN("SKIPPED (no disk filesystem under TMPDIR): file pages need one");
      break;
    }
    char* m =
        static_cast<char*>(::mmap(base + start * page(), 2 * window * page(),
                                  PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, file.fd, 0));
    REQUIRE(m == base + start * page());
    const std::size_t moved = window - start;  // pages [0, moved) end on the 64 KiB boundary
    fill(m, moved * page());
    std::vector<int> status;
    REQUIRE(force_move(m, moved, home, status, MPOL_MF_MOVE_ALL) == 0);
    INFO("mapping starts " << start << " pages after a 64 KiB boundary");
    CHECK(status == std::vector<int>(moved, home));
    CHECK(first_bad_page(m, moved) == moved);
    std::size_t mapped_after = 0;
    for (std::size_t j = moved; j < 2 * window; ++j)
      mapped_after += present(m + j * page()) ? 1 : 0;
    CHECK(mapped_after == 0);
    ::mmap(m, 2 * window * page(), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  }
}

TEST_CASE(
    "userspace: private file pages: read ones relocated through the cache, written ones copied",
    "[userspace][rules][file]") {
  scratch_file file(3);
  REQUIRE(file.fd >= 0);
  if (file.on_memory_filesystem()) {
    WARN("SKIPPED (no disk filesystem under TMPDIR): file pages need one");
    return;
  }
  std::vector<char> contents(3 * page());
  fill(contents.data(), 3 * page(), 7);
  REQUIRE(::pwrite(file.fd, contents.data(), contents.size(), 0) ==
          static_cast<ssize_t>(contents.size()));
  REQUIRE(::fsync(file.fd) == 0);
  char* m = static_cast<char*>(
      ::mmap(nullptr, 3 * page(), PROT_READ | PROT_WRITE, MAP_PRIVATE, file.fd, 0));
  REQUIRE(m != MAP_FAILED);
  (void)*reinterpret_cast<volatile char*>(m);  // page 0: the page-cache page, read
  m[page()] = contents[page()];                // page 1: written, a private copy
  REQUIRE((pagemap(m) >> 61 & 1) == 1);
  REQUIRE((pagemap(m + page()) >> 61 & 1) == 0);
  const std::uint64_t before = pfn(m + page());
  std::vector<int> status;
  SECTION("MPOL_MF_MOVE moves both, as the kernel does for pages mapped by this process only") {
    REQUIRE(force_move(m, 3, home, status) == 0);
    CHECK(status[0] == home);
    CHECK(status[1] == home);
    CHECK((status[2] == home || status[2] == -ENOENT));  // fault-around may have mapped it
    CHECK(first_bad_page(m, 3, 7) == 3);                 // page 2 reads the file, as before
    if (before != 0) CHECK(pfn(m + page()) != before);
    CHECK((pagemap(m) >> 61 & 1) == 1);  // still the file's page, not a copy
  }
  SECTION("a page-cache page another process maps too is -EACCES, -EBUSY with MOVE_ALL") {
    held_child child([&] {
      char* theirs =
          static_cast<char*>(::mmap(nullptr, page(), PROT_READ, MAP_PRIVATE, file.fd, 0));
      (void)*reinterpret_cast<volatile char*>(theirs);
    });
    m[page()] = contents[page()];  // the fork shared our private copy: make it ours again
    REQUIRE(force_move(m, 2, home, status) == 0);
    CHECK(status == std::vector<int>{-EACCES, home});
    REQUIRE(force_move(m, 2, home, status, MPOL_MF_MOVE_ALL) == 0);
    CHECK(status == std::vector<int>{-EBUSY, home});
  }
  ::munmap(m, 3 * page());
}

TEST_CASE("userspace: the calling thread's own stack is -EBUSY", "[userspace][rules]") {
  volatile char on_stack[64] = {};
  on_stack[0] = 1;
  void* address = const_cast<char*>(&on_stack[0]);
  int node = home;
  int status = 1000;
  REQUIRE(us::move_pages(0, 1, &address, &node, &status, MPOL_MF_MOVE, {true, true, 0}) == 0);
  CHECK(status == -EBUSY);
  CHECK(on_stack[0] == 1);
}

TEST_CASE("userspace: swapped-out pages are -ENOENT and stay in the swap", "[userspace][rules]") {
  std::ifstream meminfo("/proc/meminfo");
  std::string text((std::istreambuf_iterator<char>(meminfo)), std::istreambuf_iterator<char>());
  const std::size_t at = text.find("SwapTotal:");
  if (at == std::string::npos || std::strtoull(text.c_str() + at + 10, nullptr, 10) == 0) {
    WARN("SKIPPED (no swap here): a swapped-out page needs swap");
    return;
  }
  mapping m(3);
  m.touch(0, 3);
  REQUIRE(::madvise(m.at_page(1), page(), MADV_PAGEOUT) == 0);
  if ((pagemap(m.at_page(1)) >> 62 & 1) == 0) {
    WARN("SKIPPED (MADV_PAGEOUT did not swap the page out)");
    return;
  }
  std::vector<int> status;
  REQUIRE(force_move(m.data, 3, home, status) == 0);
  CHECK(status == std::vector<int>{home, -ENOENT, home});
  CHECK((pagemap(m.at_page(1)) >> 62 & 1) == 1);
  CHECK(*m.at_page(1) == 1 + 1);
}

TEST_CASE("userspace: the query reports node, -ENOENT and -EFAULT as the kernel does",
          "[userspace][rules][locate]") {
  mapping m(4);
  m.touch(0, 1);
  m.touch(2, 1);
  (void)*reinterpret_cast<volatile char*>(m.at_page(3));
  void* gone = numamove_test::never_mapped();
  std::vector<void*> pages{m.data + 17,  m.at_page(1), m.at_page(2) + page() - 1,
                           m.at_page(3), gone,         m.data};
  std::vector<int> status(pages.size(), 99);
  REQUIRE(numamove::move_pages(0, pages.size(), pages.data(), nullptr, status.data(), 0,
                               numamove::backend::userspace) == 0);
  CHECK(status == std::vector<int>{home, -ENOENT, home, -EFAULT, -EFAULT, home});
  std::vector<int> kernel(pages.size(), 99);
  REQUIRE(numamove::move_pages(0, pages.size(), pages.data(), nullptr, kernel.data(), 0,
                               numamove::backend::kernel) == 0);
  CHECK(status == kernel);
}

TEST_CASE("userspace: every kind of page, statuses next to the kernel's",
          "[userspace][rules][equivalence]") {
  // One process, both backends, the same request; only the documented differences may differ.
  const auto run = [](numamove::backend path, int flags) {
    scenario s;
    std::vector<int> nodes(s.pages.size(), home);
    std::vector<int> status(s.pages.size(), 1000);
    const long rc = numamove::move_pages(0, s.pages.size(), s.pages.data(), nodes.data(),
                                         status.data(), flags, path);
    return std::make_pair(rc, std::make_pair(status, s.kinds));
  };
  for (const int flags : {MPOL_MF_MOVE, MPOL_MF_MOVE_ALL}) {
    const auto kernel = run(numamove::backend::kernel, flags);
    const auto userspace = run(numamove::backend::userspace, flags);
    REQUIRE(kernel.first == 0);
    REQUIRE(userspace.first == 0);
    const std::vector<scenario::kind>& kinds = kernel.second.second;
    REQUIRE(kinds == userspace.second.second);
    // Every page that can be anywhere is on the target already: the rules that differ
    // (docs/semantics.md) never come into play, and the statuses are the same. The guest runs
    // the same scenario with moves between nodes (tests/multinode/test_userspace_guest.cpp).
    for (std::size_t i = 0; i < kinds.size(); ++i) {
      INFO(scenario::name(kinds[i]) << ", flags " << flags);
      CHECK(userspace.second.first[i] == kernel.second.first[i]);
    }
  }
}

TEST_CASE("userspace: the zero page is told apart without PFNs (no CAP_SYS_ADMIN)",
          "[userspace][rules]") {
  mapping m(3);
  CHECK(in_child([&] {
          // The child's own pages (the parent's would be shared with it copy-on-write).
          m.touch(0, 1);
          (void)*reinterpret_cast<volatile char*>(m.at_page(1));  // the zero page
          std::memset(m.at_page(2), 0, page());  // written, all zeros: a page of its own
          if (drop_capability(CAP_SYS_ADMIN) != 0) return 90;
          const numamove::capabilities& here = numamove::capabilities::refresh();
          if (here.pagemap_pfns) return 91;
          // PAGEMAP_SCAN where the kernel has it (6.7+), else the move_pages query, else contents.
          std::vector<int> status;
          if (force_move(m.data, 3, home, status) != 0) return 92;
          if (status != std::vector<int>{home, -EFAULT, home}) return 93;
          return query(m.at_page(1)) == -EFAULT && query(m.at_page(2)) == home ? 0 : 94;
        }) == 0);
}
