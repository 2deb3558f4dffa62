// Test helpers: fresh mappings in known states, and the kernel's own view of where pages are.
#pragma once

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <vector>

#include <numamove/topology.hpp>

namespace numamove_test {

inline std::size_t page() { return static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)); }

/// The node the one-node tests move pages to: the lowest node with memory, where pages already are.
inline const int home = numamove::topology::system().nodes().front();

constexpr std::size_t huge_page_bytes = std::size_t{2} << 20;

/// An address (with a few pages after it) that no mapping holds: below vm.mmap_min_addr, where
/// mmap never places anything, unlike a munmapped address, which another thread may map again.
inline char* never_mapped() { return reinterpret_cast<char*>(3 * page()); }

/// An anonymous private mapping of `pages` pages, unmapped when it goes out of scope.
struct mapping {
  explicit mapping(std::size_t pages, int extra_flags = 0)
      : bytes(pages * page()),
        data(static_cast<char*>(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0))) {}
  ~mapping() { ::munmap(data, bytes); }
  mapping(const mapping&) = delete;
  mapping& operator=(const mapping&) = delete;

  char* at_page(std::size_t i) const { return data + i * page(); }
  void touch(std::size_t first, std::size_t count, char value = 1) const {
    for (std::size_t i = first; i < first + count; ++i) std::memset(at_page(i), value + static_cast<char>(i), page());
  }

  std::size_t bytes;
  char* data;
};

/// Where the kernel says each page is: raw move_pages(2) in query mode, bypassing numamove.
inline std::vector<int> kernel_query(const void* first, std::size_t pages, int pid = 0) {
  std::vector<void*> addresses(pages);
  for (std::size_t i = 0; i < pages; ++i) addresses[i] = const_cast<char*>(static_cast<const char*>(first)) + i * page();
  std::vector<int> status(pages, 1000);
  if (::syscall(SYS_move_pages, pid, pages, addresses.data(), nullptr, status.data(), 0) != 0) status.assign(pages, 2000);
  return status;
}

}  // namespace numamove_test
