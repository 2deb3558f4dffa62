// Reads and writes of the caller's arrays (pages, nodes, status) that cannot crash, so that an
// unreadable array is EFAULT as in the kernel: process_vm_readv/writev on this process, or a
// pipe where those are refused (write(2) from and read(2) into a bad address fail with EFAULT
// instead of faulting). Both stop at the first page that cannot be accessed, as the kernel's
// copy_from_user does.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/userspace/caller_memory.hpp is internal: include a public numamove header"
#endif

#include <fcntl.h>
#include <limits.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../linux/fd.hpp"
#include "../linux/proc.hpp"
#include "../linux/syscalls.hpp"

namespace numamove::detail::userspace {

/// The pipe way, page piece by page piece; returns the bytes moved before the first bad page.
inline std::size_t transfer_by_pipe(bool to_caller, char* local, char* caller,
                                    std::size_t bytes) noexcept {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return 0;
  const unique_fd out(fds[0]);
  const unique_fd in(fds[1]);
  std::size_t done = 0;
  char drain[256];
  while (done < bytes) {
    const auto at = reinterpret_cast<std::uintptr_t>(caller + done);
    const std::size_t piece = std::min(bytes - done, page_size() - at % page_size());
    const char* from = to_caller ? local + done : caller + done;
    char* into = to_caller ? caller + done : local + done;
    if (::write(in.get(), from, piece) != static_cast<ssize_t>(piece)) break;
    const ssize_t got = ::read(out.get(), into, piece);
    if (got != static_cast<ssize_t>(piece)) {
      while (::read(out.get(), drain, sizeof drain) == static_cast<ssize_t>(sizeof drain)) {
      }
      break;
    }
    done += piece;
  }
  return done;
}

/// Moves `bytes` between our buffer `local` and caller memory `caller`; returns how many leading
/// bytes could be moved (all of them unless a page of `caller` is inaccessible).
inline std::size_t transfer(bool to_caller, void* local, const void* caller,
                            std::size_t bytes) noexcept {
  auto* mine = static_cast<char*>(local);
  auto* theirs = const_cast<char*>(static_cast<const char*>(caller));
  constexpr std::size_t batch = 512;  // remote pieces per call, well under IOV_MAX
  iovec pieces[batch];
  std::size_t done = 0;
  while (done < bytes) {
    std::size_t count = 0;
    std::size_t length = 0;
    while (count < batch && done + length < bytes) {
      const auto at = reinterpret_cast<std::uintptr_t>(theirs + done + length);
      const std::size_t piece = std::min(bytes - done - length, page_size() - at % page_size());
      pieces[count++] = iovec{theirs + done + length, piece};
      length += piece;
    }
    iovec own{mine + done, length};
    // Partial transfers stop at an iovec boundary, so one piece per page gives an exact prefix.
    const ssize_t moved = to_caller ? ::process_vm_writev(::getpid(), &own, 1, pieces, count, 0)
                                    : ::process_vm_readv(::getpid(), &own, 1, pieces, count, 0);
    if (moved < 0 && errno == EFAULT) return done;
    if (moved < 0)
      return done + transfer_by_pipe(to_caller, mine + done, theirs + done, bytes - done);
    done += static_cast<std::size_t>(moved);
    if (static_cast<std::size_t>(moved) < length) return done;
  }
  return done;
}

/// Copies up to `bytes` from caller memory at `from` into `to`; returns the readable prefix.
inline std::size_t copy_from_caller(void* to, const void* from, std::size_t bytes) noexcept {
  return bytes == 0 ? 0 : transfer(false, to, from, bytes);
}

/// Copies `bytes` from `from` into caller memory at `to`; returns the writable prefix.
inline std::size_t copy_to_caller(void* to, const void* from, std::size_t bytes) noexcept {
  return bytes == 0 ? 0 : transfer(true, const_cast<void*>(from), to, bytes);
}

/// Reads `count` elements of a caller array into `out`; returns how many leading elements were
/// readable (an element that straddles a bad page counts as unreadable).
template <class T>
std::size_t read_caller_array(const T* array, std::size_t count, std::vector<T>& out) {
  out.assign(count, T{});
  return copy_from_caller(out.data(), array, count * sizeof(T)) / sizeof(T);
}

/// How many leading elements of the caller's array `array` can be written: read, then written
/// back unchanged.
template <class T>
std::size_t writable_prefix(T* array, std::size_t count) {
  std::vector<T> values;
  const std::size_t readable = read_caller_array(array, count, values);
  return copy_to_caller(array, values.data(), readable * sizeof(T)) / sizeof(T);
}

}  // namespace numamove::detail::userspace
