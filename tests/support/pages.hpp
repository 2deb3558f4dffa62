// Test helpers: fresh mappings in known states, and the kernel's own view of their pages (raw
// move_pages(2), /proc/self/pagemap, /proc/self/smaps), read without numamove: a test must not
// check the library with the library's own readers.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <numamove/topology.hpp>

namespace numamove_test {

inline std::size_t page() {
  return static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

/// The node the one-node tests move pages to: the lowest node with memory, where pages already are.
inline const int home = numamove::topology::system().nodes().front();

constexpr std::size_t huge_page_bytes = std::size_t{2} << 20;

/// An address (with a few pages after it) that no mapping holds: below vm.mmap_min_addr, where
/// mmap never places anything, unlike a munmapped address, which another thread may map again.
inline char* never_mapped() {
  return reinterpret_cast<char*>(3 * page());
}

// ------------------------------------------------------------------------ mappings ---------

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
  /// Writes `value` + i into every byte of page i, for pages [first, first + count).
  void touch(std::size_t first, std::size_t count, char value = 1) const {
    for (std::size_t i = first; i < first + count; ++i)
      std::memset(at_page(i), value + static_cast<char>(i), page());
  }

  std::size_t bytes;
  char* data;
};

/// An anonymous private mapping of `bytes` whose start is aligned to `alignment` (a huge page
/// size, say), unmapped on destruction. `raw` is MAP_FAILED when mmap failed.
struct aligned_mapping {
  aligned_mapping(std::size_t size, std::size_t alignment, int prot = PROT_READ | PROT_WRITE)
      : bytes(size),
        raw_bytes(size + alignment),
        raw(static_cast<char*>(
            ::mmap(nullptr, raw_bytes, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))),
        data(reinterpret_cast<char*>((reinterpret_cast<std::uintptr_t>(raw) + alignment - 1) /
                                     alignment * alignment)) {}
  ~aligned_mapping() { ::munmap(raw, raw_bytes); }
  aligned_mapping(const aligned_mapping&) = delete;
  aligned_mapping& operator=(const aligned_mapping&) = delete;

  std::size_t bytes;
  std::size_t raw_bytes;
  char* raw;
  char* data;
};

// ------------------------------------------------------------- raw move_pages(2) -----------

/// The pages array of a move_pages(2) call over `pages` consecutive pages from `first`.
inline std::vector<void*> page_addresses(const void* first, std::size_t pages) {
  std::vector<void*> addresses(pages);
  for (std::size_t i = 0; i < pages; ++i)
    addresses[i] = const_cast<char*>(static_cast<const char*>(first)) + i * page();
  return addresses;
}

/// Where the kernel says each page of [first, first + pages * page()) of process `pid` is: raw
/// move_pages(2) in query mode, bypassing numamove. A call that fails shows as 2000 in every
/// entry (neither a node nor a -errno).
inline std::vector<int> kernel_query(const void* first, std::size_t pages, int pid = 0) {
  std::vector<void*> addresses = page_addresses(first, pages);
  std::vector<int> status(pages, 1000);
  if (::syscall(SYS_move_pages, pid, pages, addresses.data(), nullptr, status.data(), 0) != 0)
    status.assign(pages, 2000);
  return status;
}

/// Raw move_pages(2) of every page of [first, first + pages * page()) of process `pid` to
/// `node`. Returns the call's result (-1 and errno on failure), statuses in `status`.
inline long kernel_move(void* first, std::size_t pages, int node, std::vector<int>& status,
                        int flags = 0, int pid = 0) {
  std::vector<void*> addresses = page_addresses(first, pages);
  std::vector<int> nodes(pages, node);
  status.assign(pages, INT32_MIN);
  return ::syscall(SYS_move_pages, pid, pages, addresses.data(), nodes.data(), status.data(),
                   flags);
}

// ------------------------------------------------------------------------ /proc --------------

/// The raw /proc/self/pagemap entry of the page holding `address`, or 0 when it cannot be read.
inline std::uint64_t pagemap(const void* address) {
  std::uint64_t entry = 0;
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  const auto at = reinterpret_cast<std::uintptr_t>(address) / page() * sizeof entry;
  if (::pread(fd, &entry, sizeof entry, static_cast<off_t>(at)) !=
      static_cast<ssize_t>(sizeof entry))
    entry = 0;
  ::close(fd);
  return entry;
}

/// Bit 63 of the pagemap entry: is the page at `address` present?
inline bool present(const void* address) {
  return (pagemap(address) >> 63 & 1) != 0;
}

/// The page frame number of the page holding `address` (0 without CAP_SYS_ADMIN): a page that
/// was really moved has a new one.
inline std::uint64_t pfn(const void* address) {
  return pagemap(address) & ((1ULL << 55) - 1);
}

/// The smaps record (header line and fields) of the mapping holding `address`, or "".
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
    if ((words >> std::hex >> start >> dash >> end) && dash == '-' &&
        line.find(':') > line.find(' ')) {
      if (inside) break;
      inside = at >= start && at < end;
    }
    if (inside) record += line + "\n";
  }
  return record;
}

/// "rw-p"-style permissions of the mapping holding `address`, or "".
inline std::string perms_of(const void* address) {
  const std::string record = smaps_of(address);
  const std::size_t space = record.find(' ');
  return space == std::string::npos ? std::string{} : record.substr(space + 1, 4);
}

/// Bytes of the mapping holding `address` that THPs back (smaps AnonHugePages).
inline std::size_t anon_huge_bytes(const void* address) {
  const std::string record = smaps_of(address);
  const std::size_t at = record.find("AnonHugePages:");
  if (at == std::string::npos) return 0;
  return static_cast<std::size_t>(std::strtoull(record.c_str() + at + 14, nullptr, 10)) * 1024;
}

}  // namespace numamove_test
