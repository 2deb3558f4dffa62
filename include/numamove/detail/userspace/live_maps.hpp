// What the address space holds while the fence (fence.hpp) holds the other threads: the
// migrator reads /proc/self/maps again and commits a page only where the mapping it examined is
// still there, unchanged. Read and parsed into memory made before the stop: a stopped thread
// may hold the C library's malloc lock.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/userspace/live_maps.hpp is internal: include a public numamove header"
#endif

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../linux/fd.hpp"
#include "../linux/maps.hpp"
#include "../linux/proc.hpp"

namespace numamove::detail::userspace {

/// One line of /proc/self/maps, without its path.
struct live_mapping {
  std::uintptr_t start = 0;
  std::uintptr_t end = 0;
  std::uint64_t offset = 0;
  std::uint64_t device = 0;  // major << 32 | minor
  std::uint64_t inode = 0;
  char perms[4] = {};
};

/// A range of memory numamove itself mapped during the call (the arena, the workers' stacks,
/// the fresh mappings): if the program unmapped part of a request, one of these may now sit at
/// its addresses, and it is not the program's page.
struct own_range {
  std::uintptr_t begin = 0;
  std::uintptr_t end = 0;
};

/// Why a page is not committed, as its status: the kernel's answers for a page whose mapping
/// is gone (-EFAULT) or is another one now (-EBUSY).
enum class live_verdict : int { unchanged = 0, unmapped = -EFAULT, changed = -EBUSY };

/// /proc/self/maps as of read(), in caller-provided memory.
class live_maps {
 public:
  live_maps(char* text, std::size_t text_bytes, live_mapping* entries,
            std::size_t capacity) noexcept
      : text_(text), text_bytes_(text_bytes), entries_(entries), capacity_(capacity) {}

  /// Reads the file again. Returns 0; else, when it cannot be read, read(2)'s or open(2)'s
  /// errno, or EOVERFLOW when it does not fit the memory given (then every verdict is
  /// `changed`: nothing is committed that was not verified).
  int read() noexcept {
    count_ = 0;
    valid_ = false;
    std::size_t used = 0;
    {
      const unique_fd maps = open_proc(0, "maps");
      if (!maps) return errno;
      for (ssize_t got; used < text_bytes_ &&
                        (got = ::read(maps.get(), text_ + used, text_bytes_ - used)) != 0;) {
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return errno;
        used += static_cast<std::size_t>(got);
      }
    }
    if (used == text_bytes_) return EOVERFLOW;  // may have been cut short
    for (std::size_t at = 0; at < used;) {
      const char* line = text_ + at;
      const auto* newline = static_cast<const char*>(std::memchr(line, '\n', used - at));
      const std::size_t length =
          newline != nullptr ? static_cast<std::size_t>(newline - line) : used - at;
      if (count_ == capacity_) return EOVERFLOW;
      if (!parse(line, length, entries_[count_])) return EIO;
      ++count_;
      at += length + 1;
    }
    valid_ = true;
    return 0;
  }

  /// Whether the page at `address` is still in the mapping `examined` (same permissions, same
  /// file and offset) and not in one of `own` (sorted or not, `own_count` entries).
  live_verdict verdict(std::uintptr_t address, const mapping& examined, const own_range* own,
                       std::size_t own_count) const noexcept {
    if (!valid_) return live_verdict::changed;
    const live_mapping* now = find(address);
    if (now == nullptr) return live_verdict::unmapped;
    for (std::size_t i = 0; i < own_count; ++i)
      if (address >= own[i].begin && address < own[i].end) return live_verdict::unmapped;
    const bool same = std::memcmp(now->perms, examined.perms.data(), 4) == 0 &&
                      now->device == examined.device && now->inode == examined.inode &&
                      (examined.inode == 0 || now->offset + (address - now->start) ==
                                                  examined.offset + (address - examined.start));
    return same ? live_verdict::unchanged : live_verdict::changed;
  }

 private:
  const live_mapping* find(std::uintptr_t address) const noexcept {
    std::size_t low = 0;
    std::size_t high = count_;
    while (low < high) {
      const std::size_t middle = low + (high - low) / 2;
      if (entries_[middle].end <= address)
        low = middle + 1;
      else
        high = middle;
    }
    return low < count_ && entries_[low].start <= address ? &entries_[low] : nullptr;
  }

  // "start-end perms offset major:minor inode path"
  static bool parse(const char* line, std::size_t length, live_mapping& out) noexcept {
    const char* at = line;
    const char* end = line + length;
    const auto number = [&](int base, std::uint64_t& value) {
      const char* first = at;
      value = 0;
      for (; at < end; ++at) {
        const char c = *at;
        const int digit = c >= '0' && c <= '9'                 ? c - '0'
                          : base == 16 && c >= 'a' && c <= 'f' ? c - 'a' + 10
                                                               : -1;
        if (digit < 0) break;
        value = value * static_cast<std::uint64_t>(base) + static_cast<std::uint64_t>(digit);
      }
      return at > first;
    };
    const auto skip = [&](char c) { return at < end && *at++ == c; };
    std::uint64_t start = 0, stop = 0, major = 0, minor = 0;
    if (!number(16, start) || !skip('-') || !number(16, stop) || !skip(' ') || end - at < 5)
      return false;
    std::memcpy(out.perms, at, 4);
    at += 4;
    if (!skip(' ') || !number(16, out.offset) || !skip(' ') || !number(16, major) || !skip(':') ||
        !number(16, minor) || !skip(' ') || !number(10, out.inode))
      return false;
    out.start = static_cast<std::uintptr_t>(start);
    out.end = static_cast<std::uintptr_t>(stop);
    out.device = major << 32 | minor;
    return true;
  }

  char* text_;
  std::size_t text_bytes_;
  live_mapping* entries_;
  std::size_t capacity_;
  std::size_t count_ = 0;
  bool valid_ = false;
};

}  // namespace numamove::detail::userspace
