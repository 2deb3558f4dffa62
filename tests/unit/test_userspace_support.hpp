// Helpers for the userspace migrator's tests (tests/unit/test_userspace_*.cpp and
// tests/multinode/test_userspace_*.cpp): calls with the migrator's options, and what the kernel
// and /proc say about a page, read without numamove.
#pragma once

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <numamove/numamove.hpp>

#include "support/held_child.hpp"
#include "support/pages.hpp"

namespace numamove_us {

using numamove::detail::userspace::relocation_options;

/// The userspace path's move_pages with explicit options, over pages[i] = first + i pages.
inline long move(char* first, std::size_t count, int node, std::vector<int>& status, int flags = MPOL_MF_MOVE,
                 relocation_options options = {}) {
  std::vector<void*> pages(count);
  std::vector<int> nodes(count, node);
  for (std::size_t i = 0; i < count; ++i) pages[i] = first + i * numamove_test::page();
  status.assign(count, 1000);
  return numamove::detail::userspace::move_pages(0, count, pages.data(), nodes.data(), status.data(), flags, options);
}

/// Forced move to `node` (the whole copy path even when the pages are there already).
inline long force_move(char* first, std::size_t count, int node, std::vector<int>& status, int flags = MPOL_MF_MOVE) {
  relocation_options options;
  options.force = true;
  return move(first, count, node, status, flags, options);
}

/// The userspace path's query of one page.
inline int query(const void* page) {
  void* address = const_cast<void*>(page);
  int status = 1000;
  if (numamove::move_pages(0, 1, &address, nullptr, &status, 0, numamove::backend::userspace) != 0) return 2000;
  return status;
}

/// The raw pagemap entry of the page holding `address`.
inline std::uint64_t pagemap(const void* address) {
  std::uint64_t entry = 0;
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  ::pread(fd, &entry, sizeof entry, static_cast<off_t>(reinterpret_cast<std::uintptr_t>(address) / numamove_test::page() * 8));
  ::close(fd);
  return entry;
}
inline bool present(const void* address) { return (pagemap(address) >> 63 & 1) != 0; }

/// The smaps record (header line and fields) of the mapping holding `address`.
inline std::string smaps_of(const void* address) {
  std::ifstream in("/proc/self/smaps");
  std::string record;
  bool inside = false;
  const auto at = reinterpret_cast<std::uintptr_t>(address);
  for (std::string line; std::getline(in, line);) {
    unsigned long long start = 0;
    unsigned long long end = 0;
    char dash = 0;
    std::istringstream words(line);
    if ((words >> std::hex >> start >> dash >> end) && dash == '-' && line.find(':') > line.find(' ')) {
      if (inside) break;
      inside = at >= start && at < end;
    }
    if (inside) record += line + "\n";
  }
  return record;
}

/// "rw-p"-style permissions of the mapping holding `address`.
inline std::string perms_of(const void* address) {
  const std::string record = smaps_of(address);
  const std::size_t space = record.find(' ');
  return space == std::string::npos ? std::string{} : record.substr(space + 1, 4);
}

/// Bytes of the mapping holding `address` that THPs back (smaps AnonHugePages).
inline std::size_t anon_huge_bytes(const void* address) {
  const std::string record = smaps_of(address);
  const std::size_t at = record.find("AnonHugePages:");
  return at == std::string::npos ? 0 : std::strtoull(record.c_str() + at + 14, nullptr, 10) * 1024;
}

/// Runs `body` in a forked child and returns its exit status (128 + signal when killed).
template <class Body>
int in_child(Body body) {
  std::fflush(nullptr);
  const pid_t child = ::fork();
  if (child == 0) ::_exit(body());
  int status = 0;
  ::waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// Drops capability `cap` from the calling thread's effective set.
inline bool drop_effective(int cap) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (::syscall(SYS_capget, &header, data) != 0) return false;
  data[cap / 32].effective &= ~(1U << (cap % 32));
  return ::syscall(SYS_capset, &header, data) == 0;
}

/// A byte pattern that depends on the page and the offset, so swapped or stale pages show.
inline unsigned char pattern(std::size_t page, std::size_t offset, unsigned salt = 0) {
  return static_cast<unsigned char>(page * 131 + offset * 7 + salt + 1);
}
inline void fill_pattern(char* first, std::size_t pages, unsigned salt = 0) {
  for (std::size_t p = 0; p < pages; ++p)
    for (std::size_t o = 0; o < numamove_test::page(); ++o) first[p * numamove_test::page() + o] = static_cast<char>(pattern(p, o, salt));
}
/// True when page `p` of a range filled by fill_pattern(first, ...) still holds its pattern.
inline bool page_intact(const char* first, std::size_t p, unsigned salt = 0) {
  for (std::size_t o = 0; o < numamove_test::page(); ++o)
    if (static_cast<unsigned char>(first[p * numamove_test::page() + o]) != pattern(p, o, salt)) return false;
  return true;
}

/// Index of the first page whose contents differ from the pattern, or `pages`.
inline std::size_t first_bad_page(const char* first, std::size_t pages, unsigned salt = 0) {
  for (std::size_t p = 0; p < pages; ++p)
    for (std::size_t o = 0; o < numamove_test::page(); ++o)
      if (static_cast<unsigned char>(first[p * numamove_test::page() + o]) != pattern(p, o, salt)) return p;
  return pages;
}

/// A mapping of `bytes` whose start is aligned to `alignment`, unmapped on destruction.
struct aligned_mapping {
  aligned_mapping(std::size_t bytes_, std::size_t alignment, int prot = PROT_READ | PROT_WRITE) : bytes(bytes_) {
    raw_bytes = bytes + alignment;
    raw = static_cast<char*>(::mmap(nullptr, raw_bytes, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    data = reinterpret_cast<char*>((reinterpret_cast<std::uintptr_t>(raw) + alignment - 1) / alignment * alignment);
  }
  ~aligned_mapping() { ::munmap(raw, raw_bytes); }
  aligned_mapping(const aligned_mapping&) = delete;
  aligned_mapping& operator=(const aligned_mapping&) = delete;
  std::size_t bytes;
  std::size_t raw_bytes;
  char* raw;
  char* data;
};

/// The page frame number of the page holding `address` (0 without CAP_SYS_ADMIN): a page that
/// was really moved has a new one.
inline std::uint64_t pfn(const void* address) { return pagemap(address) & ((1ULL << 55) - 1); }

/// The start of the [vvar] mapping, which has VM_IO | VM_PFNMAP (smaps "io pf"), or nullptr.
inline void* vvar_page() {
  std::ifstream in("/proc/self/maps");
  for (std::string line; std::getline(in, line);)
    if (line.find("[vvar]") != std::string::npos) return reinterpret_cast<void*>(std::strtoull(line.c_str(), nullptr, 16));
  return nullptr;
}

/// The pages of every kind the per-page rules tell apart, in one process, for running the same
/// request through both backends. `shared_with_child` pages are copy-on-write shared with a
/// forked child that waits until the scenario is destroyed.
struct scenario {
  enum kind {
    touched, untouched, zero, unmapped, io, cow_shared, read_only, no_access, locked, dont_fork, shared_anonymous,
    huge_head, huge_tail,
  };
  static const char* name(kind k) {
    static const char* const names[] = {"touched", "untouched", "zero page", "unmapped", "io/pfnmap", "cow-shared",
                                        "read-only", "PROT_NONE", "mlocked", "MADV_DONTFORK", "MAP_SHARED anonymous",
                                        "THP head", "THP tail"};
    return names[k];
  }

  scenario() : huge(numamove_test::huge_page_bytes, numamove_test::huge_page_bytes) {
    const std::size_t page = numamove_test::page();
    area = static_cast<char*>(::mmap(nullptr, area_pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    shared = static_cast<char*>(::mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    gone = numamove_test::never_mapped();
    // Pages 0-1 touched, 2 untouched, 3 zero page, 4 read-only, 5 PROT_NONE, 6 mlocked,
    // 7 MADV_DONTFORK, 8 copy-on-write shared; the odd protections split the mapping.
    fill_pattern(area, area_pages);
    ::madvise(area + 2 * page, page, MADV_DONTNEED);
    ::madvise(area + 3 * page, page, MADV_DONTNEED);
    (void)*reinterpret_cast<volatile char*>(area + 3 * page);
    ::mprotect(area + 4 * page, page, PROT_READ);
    ::mprotect(area + 5 * page, page, PROT_NONE);
    // (Sanitizers make mlock a no-op that succeeds: check that the page is locked.)
    locked_ok = ::mlock(area + 6 * page, page) == 0 && smaps_of(area + 6 * page).find(" lo") != std::string::npos;
    ::madvise(area + 7 * page, page, MADV_DONTFORK);
    shared[0] = 9;
    std::memset(huge.data, 5, huge.bytes);
    ::madvise(huge.data, huge.bytes, MADV_HUGEPAGE);
    std::memset(huge.data, 6, huge.bytes);
    child.emplace([] {});
    // Everything but page 8 back to exclusive: write each of them once (copy-on-write breaks).
    for (const std::size_t p : {0, 1}) area[p * page] = static_cast<char>(pattern(p, 0));
    area[6 * page] = static_cast<char>(pattern(6, 0));
    for (const std::size_t p : {4, 5}) {
      ::mprotect(area + p * page, page, PROT_READ | PROT_WRITE);
      area[p * page] = static_cast<char>(pattern(p, 0));
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
    ::munlock(area + 6 * numamove_test::page(), numamove_test::page());
    ::munmap(area, area_pages * numamove_test::page());
    ::munmap(shared, numamove_test::page());
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
  std::optional<numamove_test::held_child> child;
  std::vector<void*> pages;
  std::vector<kind> kinds;
};

}  // namespace numamove_us
