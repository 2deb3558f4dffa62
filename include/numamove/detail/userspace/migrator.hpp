// The userspace migrator's move_pages: the kernel's call-level checks in the kernel's order,
// the caller's arrays read and written without faulting, then the pages examined (page_rules.hpp)
// and moved (relocation.hpp).
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/userspace/migrator.hpp is internal: include a public numamove header"
#endif

#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_set>
#include <vector>

#include "../../capabilities.hpp"
#include "../call_checks.hpp"
#include "../linux/proc.hpp"
#include "../sanitizers.hpp"
#include "caller_memory.hpp"
#include "page_rules.hpp"
#include "relocation.hpp"
#include "../linux/syscalls.hpp"

namespace numamove::detail::userspace {

/// Per entry, what migrate() counts besides the status.
enum class entry_outcome : unsigned char {
  other,               ///< not moved by this call (see the status)
  moved,               ///< moved by this call from a node it was verified on
  moved_from_unknown,  ///< moved by this call; where it was before could not be learned
  already_there,       ///< was on the target before the call and stayed
};

/// The checks of a target node, in the kernel's order (ENODEV, EACCES), then the userspace
/// path's own: EHOSTUNREACH when it cannot place pages there (mbind refused and no CPU of the
/// node that a thread of this process may be pinned to). 0 when pages may go there.
inline int check_reachable_node(int node) {
  if (const int error = check_target_node(node)) return error;
  return capabilities::of_this_process().can_place_on(node) ? 0 : EHOSTUNREACH;
}

/// Where each entry's page is and what it is (nodes == nullptr), over the pages of entries
/// [0, count) of process `pid`. Returns 0 or a call-level errno.
inline int query_entries(int pid, const std::vector<void*>& addresses, std::size_t count,
                         std::vector<int>& status) {
  std::vector<std::uintptr_t> distinct(count);
  for (std::size_t i = 0; i < count; ++i)
    distinct[i] = reinterpret_cast<std::uintptr_t>(addresses[i]) / page_size() * page_size();
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  const examination e = examine(pid, distinct, {}, 0, false);
  if (e.error != 0) return e.error;
  for (std::size_t i = 0; i < count; ++i) {
    const std::uintptr_t page =
        reinterpret_cast<std::uintptr_t>(addresses[i]) / page_size() * page_size();
    status[i] =
        e.pages[static_cast<std::size_t>(std::lower_bound(distinct.begin(), distinct.end(), page) -
                                         distinct.begin())]
            .status;
  }
  return 0;
}

/// One userspace move at a time in the process. Two calls over the same pages would each commit
/// copies taken before the other's commit, and each call stops the threads of the process,
/// the other call's among them. fork() waits for the move in flight (pthread_atfork), so that a
/// child never starts with half of one.
inline std::mutex& relocation_lock() {
  static std::mutex lock;
  static const int registered =
      ::pthread_atfork([] { relocation_lock().lock(); }, [] { relocation_lock().unlock(); },
                       [] { relocation_lock().unlock(); });
  (void)registered;
  return lock;
}

/// Takes relocation_lock(). A thread waiting for it must still park when the call holding it
/// stops the threads: ThreadSanitizer runs a signal handler of a thread blocked in
/// pthread_mutex_lock only after the lock is taken (a deadlock with the stop), so there the
/// wait sleeps between tries, in nanosleep, where TSan runs handlers at once.
inline std::unique_lock<std::mutex> take_relocation_lock() {
#ifdef NUMAMOVE_DETAIL_THREAD_SANITIZER
  std::unique_lock<std::mutex> held(relocation_lock(), std::try_to_lock);
  for (const timespec pause{0, 100 * 1000}; !held.owns_lock(); held.try_lock())
    ::nanosleep(&pause, nullptr);
  return held;
#else
  return std::unique_lock<std::mutex>(relocation_lock());
#endif
}

/// Moves entries [0, count) of this process. A page named again by a later entry is moved
/// again (the kernel moves entries in order); each stretch of entries with distinct pages is
/// one round of examination and relocation.
inline int move_entries(const std::vector<void*>& addresses, const std::vector<int>& targets,
                        std::size_t count, int flags, const relocation_options& options,
                        std::vector<int>& status, std::vector<entry_outcome>* outcomes) {
  const auto page_of = [&](std::size_t i) {
    return reinterpret_cast<std::uintptr_t>(addresses[i]) / page_size() * page_size();
  };
  for (std::size_t begin = 0; begin < count;) {
    // Ascending pages to the end (what migrate() passes) are distinct and sorted already.
    std::size_t end = begin + 1;
    while (end < count && page_of(end) > page_of(end - 1)) ++end;
    const bool ascending = end == count;
    if (!ascending) {
      std::unordered_set<std::uintptr_t> seen;
      for (end = begin; end < count && seen.insert(page_of(end)).second;) ++end;
    }
    std::vector<std::size_t> order(end - begin);
    for (std::size_t k = 0; k < order.size(); ++k) order[k] = begin + k;
    if (!ascending)
      std::sort(order.begin(), order.end(),
                [&](std::size_t a, std::size_t b) { return page_of(a) < page_of(b); });
    std::vector<std::uintptr_t> pages(order.size());
    std::vector<int> nodes(order.size());
    for (std::size_t k = 0; k < order.size(); ++k) {
      pages[k] = page_of(order[k]);
      nodes[k] = targets[order[k]];
    }
    const std::unique_lock<std::mutex> one_at_a_time = take_relocation_lock();
    examination e = examine(0, pages, nodes, flags, options.force);
    if (e.error != 0) return e.error;
    relocate(e, options);
    for (std::size_t k = 0; k < order.size(); ++k) {
      const page_facts& p = e.pages[k];
      status[order[k]] = p.status;
      if (outcomes != nullptr)
        (*outcomes)[order[k]] =
            p.moved ? (p.known_before ? entry_outcome::moved : entry_outcome::moved_from_unknown)
            : p.status == p.target ? entry_outcome::already_there
                                   : entry_outcome::other;
    }
    begin = end;
  }
  return 0;
}

/// move_pages(2) on the userspace path, with the options of migrate(). The contract is
/// numamove::move_pages' (move_pages.hpp); `outcomes`, when given, gets one entry per entry
/// processed. Every status of the entries processed is written, and the call returns 0 or -1
/// (it never returns a positive count: pages that did not move say why in their status).
inline long move_pages(int pid, unsigned long count, void** pages, const int* nodes, int* status,
                       int flags, const relocation_options& options,
                       std::vector<entry_outcome>* outcomes = nullptr) {
  const auto fail = [](int error) {
    errno = error;
    return -1L;
  };
  if (const int error = check_flags(flags)) return fail(error);
  const bool self = pid == 0 || pid == ::getpid();
  if (pid < 0) return fail(ESRCH);              // kill() would take it for a process group
  if (!self && ::kill(pid, 0) != 0) return -1;  // ESRCH, or EPERM for another user's process
  if (count == 0) return 0;
  // Another process's pages can only be moved by the kernel; userspace can only look.
  if (!self && nodes != nullptr) return fail(EOPNOTSUPP);

  const std::size_t n = count;
  std::vector<void*> addresses;
  std::vector<int> targets;
  const std::size_t readable_pages = read_caller_array(pages, n, addresses);
  const std::size_t readable_nodes = nodes != nullptr ? read_caller_array(nodes, n, targets) : n;
  const std::size_t writable = writable_prefix(status, n);

  // Entry by entry as the kernel goes: the first bad one ends the call, after the entries
  // before it have been handled.
  std::size_t limit = 0;
  int error = 0;
  std::map<int, int> checked;
  for (; limit < n && error == 0; ++limit) {
    if (limit >= readable_pages || limit >= readable_nodes)
      error = EFAULT;
    else if (nodes != nullptr) {
      const auto found = checked.find(targets[limit]);
      error = found != checked.end()
                  ? found->second
                  : (checked[targets[limit]] = check_reachable_node(targets[limit]));
    }
    if (error == 0 && limit >= writable) error = EFAULT;
    if (error != 0) break;
  }

  std::vector<int> result(limit, -EFAULT);
  if (outcomes != nullptr) outcomes->assign(limit, entry_outcome::other);
  const int failure =
      nodes == nullptr ? query_entries(pid, addresses, limit, result)
                       : move_entries(addresses, targets, limit, flags, options, result, outcomes);
  if (failure != 0) return fail(failure);
  if (copy_to_caller(status, result.data(), limit * sizeof(int)) != limit * sizeof(int))
    return fail(EFAULT);
  return error != 0 ? fail(error) : 0;
}

}  // namespace numamove::detail::userspace
