// Freed allocator mappings kept for reuse: allocating again then costs what malloc's warm heap
// costs, not a fresh mapping's page faults.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/engine/mapping_cache.hpp is internal: include a public numamove header"
#endif

#include <sys/mman.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "../../placement.hpp"
#include "memory_policy.hpp"

namespace numamove::detail {

/// Freed on_node mappings, per node and length, up to max_bytes in all (the oldest are unmapped
/// first). Only on_node: reuse re-binds with mbind(MPOL_MF_MOVE), which moves back every page
/// the user migrated away and for on_node restores all that allocate promised; for interleave it
/// would bring pages back into the set but not into round-robin order, and first_touch pages
/// must be placed by their next toucher.
///
/// The lock is only ever tried: a thread that finds it busy maps or unmaps as without the cache,
/// and so does a fork()ed child whose parent had it locked in another thread. A child's cached
/// mappings are its own copy-on-write copies, so it may reuse them.
class mapping_cache {
 public:
  /// glibc's largest mmap threshold: malloc keeps freed blocks up to this size in its heap.
  static constexpr std::size_t max_bytes = std::size_t{32} << 20;

  static mapping_cache& instance() {
    // Never destroyed (vectors destroyed after it at exit still free into it), and reachable
    // through this pointer, so a leak checker does not report it.
    static mapping_cache* const cache = new mapping_cache;
    return *cache;
  }

  /// The most recently cached mapping of `length` bytes for `where` (on_node), bound and placed
  /// on its node again; nullptr when there is none, or when re-binding fails (the mapping is
  /// then unmapped; where mbind is refused the cache stops for good).
  void* take(std::size_t length, const placement& where) {
    if (refused_.load(std::memory_order_relaxed)) return nullptr;
    void* memory = nullptr;
    {
      std::unique_lock<std::mutex> hold(lock_, std::try_to_lock);
      if (!hold.owns_lock()) return nullptr;
      entry* newest = nullptr;
      for (entry& e : entries_) {
        if (e.memory != nullptr && e.length == length && e.node == where.nodes[0] &&
            (newest == nullptr || e.stamp > newest->stamp))
          newest = &e;
      }
      if (newest == nullptr) return nullptr;
      memory = newest->memory;
      bytes_ -= length;
      *newest = entry{};
    }
    // The user may have moved pages away, or changed the policy, before freeing. mbind with
    // MPOL_MF_MOVE binds again and moves them back (STRICT: a page that cannot be moved fails
    // the reuse rather than stay elsewhere); a small mapping found in place needs no move.
    const unsigned flags = length <= query_pages * page_size() && in_place(memory, length, where)
                               ? 0U
                               : static_cast<unsigned>(MPOL_MF_MOVE | mpol_mf_strict);
    int error = 0;
    try {
      error = bind_memory(memory, length, where, flags);
    } catch (...) {  // std::bad_alloc from the node mask: allocate throws it, the mapping goes
      ::munmap(memory, length);
      throw;
    }
    if (error == 0) return memory;
    if (error == EPERM || error == ENOSYS) refused_.store(true, std::memory_order_relaxed);
    ::munmap(memory, length);
    return nullptr;
  }

  /// Keeps [memory, memory + length), allocated for on_node(node), for take; unmaps it when it
  /// is larger than max_bytes, else the oldest mappings until it fits.
  void give(void* memory, std::size_t length, int node) noexcept {
    entry evicted[slots];
    std::size_t evicted_count = 0;
    bool kept = false;
    if (length <= max_bytes && !refused_.load(std::memory_order_relaxed)) {
      std::unique_lock<std::mutex> hold(lock_, std::try_to_lock);
      while (hold.owns_lock() && !kept) {
        entry* empty = nullptr;
        entry* oldest = nullptr;
        for (entry& e : entries_) {
          if (e.memory == nullptr)
            empty = empty == nullptr ? &e : empty;
          else if (oldest == nullptr || e.stamp < oldest->stamp)
            oldest = &e;
        }
        if (empty != nullptr && bytes_ + length <= max_bytes) {
          *empty = entry{memory, length, node, ++clock_};
          bytes_ += length;
          kept = true;
        } else {
          evicted[evicted_count++] = *oldest;
          bytes_ -= oldest->length;
          *oldest = entry{};
        }
      }
    }
    for (std::size_t i = 0; i < evicted_count; ++i) ::munmap(evicted[i].memory, evicted[i].length);
    if (!kept) ::munmap(memory, length);
  }

 private:
  struct entry {
    void* memory = nullptr;
    std::size_t length = 0;
    int node = -1;
    std::uint64_t stamp = 0;
  };
  static constexpr std::size_t slots = 64;
  // Up to this many pages one move_pages(2) query (~0.25 us a page) costs less than the fixed
  // ~20 us of mbind(MPOL_MF_MOVE), which first drains every CPU's page lists.
  static constexpr std::size_t query_pages = 64;

  /// True when every present page of the mapping is on the node of `where`, by one query.
  static bool in_place(void* memory, std::size_t length, const placement& where) noexcept {
    void* pages[query_pages];
    int status[query_pages];
    const std::size_t count = length / page_size();
    for (std::size_t i = 0; i < count; ++i) pages[i] = static_cast<char*>(memory) + i * page_size();
    if (sys_move_pages(0, count, pages, nullptr, status, 0) != 0) return false;
    for (std::size_t i = 0; i < count; ++i) {
      if (status[i] != where.nodes[0] && status[i] != -ENOENT) return false;
    }
    return true;
  }

  std::mutex lock_;
  std::atomic<bool> refused_{false};
  entry entries_[slots];
  std::size_t bytes_ = 0;
  std::uint64_t clock_ = 0;
};

}  // namespace numamove::detail
