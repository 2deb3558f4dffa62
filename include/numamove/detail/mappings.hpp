// A process's mappings (from /proc/<pid>/smaps) and page table bits (from /proc/<pid>/pagemap):
// what numamove needs to know about memory without any NUMA system call.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "procfs.hpp"

namespace numamove::detail {

/// "self" for 0 (move_pages' convention for the calling process), else the pid.
inline std::string proc_dir(int pid) {
  return pid == 0 ? std::string("/proc/self") : "/proc/" + std::to_string(pid);
}

/// One mapping as smaps describes it.
struct mapping {
  std::uintptr_t start = 0;
  std::uintptr_t end = 0;
  std::string perms;              // "rw-p"
  std::string path;               // file, "[heap]", or empty for anonymous memory
  std::size_t kernel_page_size = 0;  // bytes; larger than the base page for hugetlb mappings
  std::size_t anon_huge_bytes = 0;   // AnonHugePages: bytes currently backed by THPs
  std::string vm_flags;              // "rd wr mr mw me ac ..." as in smaps

  bool has_flag(const char* two_letters) const {
    std::istringstream words(vm_flags);
    for (std::string word; words >> word;)
      if (word == two_letters) return true;
    return false;
  }
  bool shared() const { return perms.size() > 3 && perms[3] == 's'; }
};

/// All mappings of process `pid`, ascending by address; empty when smaps cannot be read.
inline std::vector<mapping> read_mappings(int pid) {
  std::vector<mapping> maps;
  std::istringstream text(read_text(proc_dir(pid) + "/smaps"));
  for (std::string line; std::getline(text, line);) {
    unsigned long long start = 0;
    unsigned long long end = 0;
    char perms[8] = {};
    int path_at = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx %7s %*s %*s %*s %n", &start, &end, perms, &path_at) >= 3 &&
        line.find(':') > line.find(' ')) {
      mapping m;
      m.start = static_cast<std::uintptr_t>(start);
      m.end = static_cast<std::uintptr_t>(end);
      m.perms = perms;
      if (path_at > 0 && static_cast<std::size_t>(path_at) < line.size()) m.path = line.substr(static_cast<std::size_t>(path_at));
      maps.push_back(std::move(m));
      continue;
    }
    if (maps.empty()) continue;
    unsigned long long kb = 0;
    if (std::sscanf(line.c_str(), "KernelPageSize: %llu kB", &kb) == 1)
      maps.back().kernel_page_size = static_cast<std::size_t>(kb) * 1024;
    else if (std::sscanf(line.c_str(), "AnonHugePages: %llu kB", &kb) == 1)
      maps.back().anon_huge_bytes = static_cast<std::size_t>(kb) * 1024;
    else if (line.rfind("VmFlags:", 0) == 0)
      maps.back().vm_flags = line.substr(8);
  }
  return maps;
}

/// The mapping holding `address`, or nullptr.
inline const mapping* find_mapping(const std::vector<mapping>& maps, std::uintptr_t address) {
  const auto after = std::upper_bound(maps.begin(), maps.end(), address,
                                      [](std::uintptr_t a, const mapping& m) { return a < m.start; });
  if (after == maps.begin()) return nullptr;
  const mapping& m = *(after - 1);
  return address < m.end ? &m : nullptr;
}

/// Bits of a /proc/<pid>/pagemap entry (Documentation/admin-guide/mm/pagemap.rst).
namespace pagemap_bit {
inline constexpr std::uint64_t soft_dirty = 1ULL << 55;
inline constexpr std::uint64_t exclusive = 1ULL << 56;
inline constexpr std::uint64_t file_or_shared = 1ULL << 61;
inline constexpr std::uint64_t swapped = 1ULL << 62;
inline constexpr std::uint64_t present = 1ULL << 63;
}  // namespace pagemap_bit

/// Reads the pagemap entries of `count` base pages starting at page-aligned `first`.
/// Returns false (errno set) when the file cannot be read; entries of unmapped pages are 0.
inline bool read_pagemap(int pid, std::uintptr_t first, std::size_t count, std::vector<std::uint64_t>& out) {
  out.assign(count, 0);
  const int fd = ::open((proc_dir(pid) + "/pagemap").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const std::size_t bytes = count * sizeof(std::uint64_t);
  const off_t offset = static_cast<off_t>(first / page_size() * sizeof(std::uint64_t));
  std::size_t done = 0;
  while (done < bytes) {
    const ssize_t got = ::pread(fd, reinterpret_cast<char*>(out.data()) + done, bytes - done,
                                offset + static_cast<off_t>(done));
    if (got <= 0) break;
    done += static_cast<std::size_t>(got);
  }
  const int saved = errno;
  ::close(fd);
  errno = saved;
  return done == bytes;
}

}  // namespace numamove::detail
