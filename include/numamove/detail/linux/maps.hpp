// A process's mappings, from /proc/<pid>/smaps, maps and numa_maps: what numamove
// needs to know about memory without any NUMA system call.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/linux/maps.hpp is internal: include a public numamove header"
#endif

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "fd.hpp"
#include "proc.hpp"
#include "syscalls.hpp"

namespace numamove::detail {

/// One mapping as smaps describes it.
struct mapping {
  std::uintptr_t start = 0;
  std::uintptr_t end = 0;
  std::string perms;         // "rw-p"
  std::string path;          // file, "[heap]", or empty for anonymous memory
  std::uint64_t offset = 0;  // file offset of `start` (file mappings)
  std::uint64_t device = 0;  // major << 32 | minor of the file's device
  std::uint64_t inode = 0;
  std::size_t kernel_page_size = 0;  // bytes; larger than the base page for hugetlb mappings
  std::size_t anon_huge_bytes = 0;   // AnonHugePages: bytes currently backed by THPs
  std::string vm_flags;              // "rd wr mr mw me ac ..." as in smaps

  /// True when VmFlags has the two-letter flag (e.g. "lo"). Allocates nothing: called per page.
  bool has_flag(const char* two_letters) const {
    const std::size_t n = vm_flags.size();
    for (std::size_t i = 0; i + 1 < n; ++i)
      if (vm_flags[i] == two_letters[0] && vm_flags[i + 1] == two_letters[1] &&
          (i == 0 || vm_flags[i - 1] == ' ') && (i + 2 == n || vm_flags[i + 2] == ' '))
        return true;
    return false;
  }
  bool shared() const { return perms.size() > 3 && perms[3] == 's'; }
  /// PROT_* bits of perms.
  int protection() const {
    int prot = PROT_NONE;
    if (perms.size() > 2) {
      if (perms[0] == 'r') prot |= PROT_READ;
      if (perms[1] == 'w') prot |= PROT_WRITE;
      if (perms[2] == 'x') prot |= PROT_EXEC;
    }
    return prot;
  }
  /// Backed by a file or shmem object rather than anonymous memory: a path that is not one of
  /// the kernel's bracketed names ("[heap]", "[stack]", "[anon:name]", ...).
  bool file_backed() const { return !path.empty() && path[0] != '['; }
};

/// Which file read_mappings() reads: smaps has every field, but the kernel walks the page
/// tables of every mapping of the process to write it (a cost that grows with the process's
/// memory); maps has only the address range, protection, offset, device, inode and path.
enum class mapping_detail { smaps, maps };

/// Adds one line of smaps or maps to `maps`: a mapping's first line starts a mapping, a field
/// line (smaps) fills in the last one.
inline void add_mapping_line(const std::string& line, std::vector<mapping>& maps) {
  // Bytes of a "Name:   N kB" line of smaps whose name is `length` characters long.
  const auto kilobytes = [&](std::size_t length) {
    return static_cast<std::size_t>(std::strtoull(line.c_str() + length, nullptr, 10)) * 1024;
  };
  // A mapping's first line starts with its address in lowercase hex; smaps's field lines start
  // with a capitalised name. Telling them apart by the first character keeps sscanf to one call
  // per mapping (parsing dominated reading smaps).
  const char first = line.empty() ? ' ' : line[0];
  if ((first >= '0' && first <= '9') || (first >= 'a' && first <= 'f')) {
    unsigned long long start = 0;
    unsigned long long end = 0;
    char perms[8] = {};
    unsigned long long offset = 0;
    unsigned major = 0;
    unsigned minor = 0;
    unsigned long long inode = 0;
    int path_at = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &offset,
                    &major, &minor, &inode, &path_at) < 7)
      return;
    mapping m;
    m.start = static_cast<std::uintptr_t>(start);
    m.end = static_cast<std::uintptr_t>(end);
    m.perms = perms;
    m.offset = offset;
    m.device = static_cast<std::uint64_t>(major) << 32 | minor;
    m.inode = inode;
    if (path_at > 0 && static_cast<std::size_t>(path_at) < line.size())
      m.path = line.substr(static_cast<std::size_t>(path_at));
    maps.push_back(std::move(m));
    return;
  }
  if (maps.empty()) return;
  if (line.rfind("KernelPageSize:", 0) == 0)
    maps.back().kernel_page_size = kilobytes(15);
  else if (line.rfind("AnonHugePages:", 0) == 0)
    maps.back().anon_huge_bytes = kilobytes(14);
  else if (line.rfind("VmFlags:", 0) == 0)
    maps.back().vm_flags = line.substr(8);
}

/// All mappings of process `pid`, ascending by address; empty when the file cannot be read.
inline std::vector<mapping> read_mappings(int pid, mapping_detail detail = mapping_detail::smaps) {
  std::vector<mapping> maps;
  std::istringstream text(
      read_text(proc_dir(pid) + (detail == mapping_detail::smaps ? "/smaps" : "/maps")));
  for (std::string line; std::getline(text, line);) add_mapping_line(line, maps);
  return maps;
}

/// The mapping of process `pid` that holds `address`, from smaps (every field) or maps, read
/// only as far as that mapping: the kernel writes smaps by walking each mapping's page tables
/// as it reaches its record, so the mappings above it (the shared libraries and the stack, above
/// anything mmap() placed) cost nothing; the mapping's own pages still do. std::nullopt when no
/// mapping holds `address` or the file cannot be read.
inline std::optional<mapping> read_mapping_at(int pid, std::uintptr_t address,
                                              mapping_detail detail = mapping_detail::smaps) {
  const std::string name = detail == mapping_detail::smaps ? "/smaps" : "/maps";
  const unique_fd file(::open((proc_dir(pid) + name).c_str(), O_RDONLY | O_CLOEXEC));
  if (!file) return std::nullopt;
  std::vector<mapping> found;  // the last mapping read, with its fields so far
  std::string text;
  char buffer[16384];
  bool past = false;  // a mapping starting above `address` has begun
  while (!past) {
    const ssize_t n = ::read(file.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
    std::size_t at = 0;
    for (std::size_t eol; !past && (eol = text.find('\n', at)) != std::string::npos; at = eol + 1) {
      add_mapping_line(text.substr(at, eol - at), found);
      if (found.empty()) continue;
      if (found.back().start > address) {
        past = true;
        found.pop_back();
      } else if (found.size() > 1) {
        found.erase(found.begin());  // ended below `address`
      }
    }
    text.erase(0, at);
  }
  if (found.empty() || address >= found.back().end) return std::nullopt;
  return std::move(found.back());
}

/// The mapping holding `address`, or nullptr.
inline const mapping* find_mapping(const std::vector<mapping>& maps, std::uintptr_t address) {
  const auto after =
      std::upper_bound(maps.begin(), maps.end(), address,
                       [](std::uintptr_t a, const mapping& m) { return a < m.start; });
  if (after == maps.begin()) return nullptr;
  const mapping& m = *(after - 1);
  return address < m.end ? &m : nullptr;
}

/// Pages per node of each mapping, from /proc/<pid>/numa_maps (keyed by mapping start).
/// The kernel counts the pages it finds mapped (not the zero page, not swapped pages).
/// Empty when the file cannot be read (kernels without CONFIG_NUMA have none).
inline std::map<std::uintptr_t, std::map<int, std::size_t>> read_numa_maps(int pid) {
  std::map<std::uintptr_t, std::map<int, std::size_t>> counts;
  std::istringstream text(read_text(proc_dir(pid) + "/numa_maps"));
  for (std::string line; std::getline(text, line);) {
    std::istringstream words(line);
    std::string start;
    if (!(words >> start)) continue;
    std::map<int, std::size_t>& nodes =
        counts[static_cast<std::uintptr_t>(std::strtoull(start.c_str(), nullptr, 16))];
    for (std::string word; words >> word;) {
      int node = -1;
      unsigned long long pages = 0;
      if (std::sscanf(word.c_str(), "N%d=%llu", &node, &pages) == 2 && node >= 0)
        nodes[node] += static_cast<std::size_t>(pages);
    }
  }
  return counts;
}

}  // namespace numamove::detail
