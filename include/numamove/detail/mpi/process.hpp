// A rank's whole process: a memory policy on every thread (set_mempolicy(2) is per thread, and
// MPI_Init has started threads already), the move of what it has touched (migrate_pages(2), or
// the userspace path where that is refused), and its private memory per node.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/mpi/process.hpp is internal: include a public numamove header"
#endif

#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <system_error>
#include <vector>

#include "../../migration_result.hpp"
#include "../../topology.hpp"
#include "../linux/maps.hpp"
#include "../engine/memory_policy.hpp"
#include "../engine/migration.hpp"
#include "../linux/proc.hpp"
#include "../linux/syscalls.hpp"
#include "affinity.hpp"

namespace numamove::detail::mpi {

// ------------------------------------------------------------ every thread's policy ------

/// One set_mempolicy(2) that every thread of the process makes for itself.
struct policy_request {
  int mode = mpol_default;
  const unsigned long* mask = nullptr;
  unsigned long maxnode = 0;
  std::atomic<int> answered{0};
  std::atomic<int> first_error{0};
};

inline std::atomic<policy_request*> pending_request{nullptr};

/// The signal handler: set_mempolicy is a plain system call, safe in signal context.
inline void answer_policy_request(int) noexcept {
  const int saved = errno;
  policy_request* request = pending_request.load(std::memory_order_acquire);
  if (request != nullptr) {
    if (sys_set_mempolicy(request->mode, request->mask, request->maxnode) != 0) {
      int none = 0;
      request->first_error.compare_exchange_strong(none, errno);
    }
    request->answered.fetch_add(1, std::memory_order_release);
  }
  errno = saved;
}

/// A real-time signal nobody handles, with answer_policy_request() installed on it for the rest
/// of the process's life (a late signal must not meet the default action, which terminates).
/// 0 when every real-time signal is taken.
inline int policy_signal() {
  static const int chosen = [] {
    for (int sig = SIGRTMAX; sig >= SIGRTMIN; --sig) {
      struct sigaction current {};
      if (::sigaction(sig, nullptr, &current) != 0 || current.sa_handler != SIG_DFL) continue;
      struct sigaction mine {};
      mine.sa_handler = answer_policy_request;
      mine.sa_flags = SA_RESTART;
      sigemptyset(&mine.sa_mask);
      if (::sigaction(sig, &mine, nullptr) == 0) return sig;
    }
    return 0;
  }();
  return chosen;
}

/// What set_policy_everywhere() reached.
struct threads_reached {
  std::size_t threads = 0;  // threads whose policy is now `mode`, the caller's included
  std::size_t missed = 0;   // threads that did not answer before the deadline
  int error = 0;            // the first errno of set_mempolicy(2) (EPERM, ENOSYS, EINVAL)
};

/// Makes every thread of the process call set_mempolicy(mode, nodes): the caller directly, the
/// others from a signal handler (tgkill), until no thread is left that has not answered (threads
/// a thread creates inherit its policy, so new ones found after a round are asked too). A thread
/// blocking the signal does not answer within `deadline` and counts as missed.
inline threads_reached set_policy_everywhere(
    int mode, const std::vector<int>& nodes,
    std::chrono::milliseconds deadline = std::chrono::seconds(5)) {
  static std::mutex one_at_a_time;
  const std::lock_guard<std::mutex> lock(one_at_a_time);
  const node_mask mask(nodes.empty() ? std::vector<int>{0} : nodes);
  const unsigned long* bits = nodes.empty() ? nullptr : mask.words.data();
  const unsigned long maxnode = nodes.empty() ? 0 : mask.maxnode;
  threads_reached reached;
  if (sys_set_mempolicy(mode, bits, maxnode) != 0) {
    reached.error = errno;
    return reached;  // refused here, refused everywhere: leave the other threads alone
  }
  reached.threads = 1;
  const int sig = policy_signal();
  const auto self = this_thread_id();
  policy_request request;
  request.mode = mode;
  request.mask = bits;
  request.maxnode = maxnode;
  pending_request.store(&request, std::memory_order_release);
  std::set<pid_t> asked{self};
  const auto give_up = std::chrono::steady_clock::now() + deadline;
  int sent = 0;
  for (bool found_new = true; found_new;) {
    found_new = false;
    for (const pid_t tid : thread_ids()) {
      if (!asked.insert(tid).second) continue;
      found_new = true;
      if (sig != 0 && ::syscall(SYS_tgkill, ::getpid(), tid, sig) == 0)
        ++sent;
      else if (sig == 0 || errno != ESRCH)
        ++reached.missed;
    }
    while (request.answered.load(std::memory_order_acquire) < sent &&
           std::chrono::steady_clock::now() < give_up) {
      const timespec pause{0, 200000};
      ::nanosleep(&pause, nullptr);
    }
  }
  pending_request.store(nullptr, std::memory_order_release);
  const int answered = request.answered.load(std::memory_order_acquire);
  reached.threads += static_cast<std::size_t>(answered);
  reached.missed += static_cast<std::size_t>(sent - std::min(answered, sent));
  if (reached.error == 0) reached.error = request.first_error.load();
  return reached;
}

// ------------------------------------------------------------- the process's memory ------

/// The mappings that hold a rank's own data: private, not backed by a file (anonymous memory,
/// the heap, stacks). Shared mappings (MPI's shared-memory segments, windows) belong to several
/// ranks and are not the rank's to move.
inline bool private_data(const mapping& m) {
  return !m.shared() && !m.file_backed();
}

/// Bytes of the process's private data per node, from /proc/self/numa_maps (empty where it
/// cannot be read).
inline std::map<int, std::size_t> private_bytes_per_node() {
  std::map<int, std::size_t> bytes;
  const std::vector<mapping> maps = read_mappings(0);
  for (const auto& [start, pages] : read_numa_maps(0)) {
    const mapping* m = find_mapping(maps, start);
    if (m == nullptr || !private_data(*m)) continue;
    const std::size_t page = m->kernel_page_size > 0 ? m->kernel_page_size : page_size();
    for (const auto& [node, count] : pages) bytes[node] += count * page;
  }
  return bytes;
}

/// A thread's stack: glibc puts a PROT_NONE guard page right below it. Stacks stay where they
/// are on the userspace path: a thread blocked in a system call that writes to its stack would
/// get EFAULT while the page is write-protected for the copy.
inline bool below_is_guard(const std::vector<mapping>& maps, std::size_t i) {
  return i > 0 && maps[i - 1].end == maps[i].start && maps[i - 1].protection() == PROT_NONE &&
         !maps[i - 1].file_backed();
}

/// What a move of the whole process did.
struct process_move {
  std::size_t not_moved = 0;  // pages left elsewhere
  std::map<int, std::size_t>
      statuses;  // the userspace path: how many pages failed with which status
  std::size_t moved_bytes = 0;
  backend used = backend::kernel;
  int error = 0;
};

/// The userspace path: every writable private data mapping but the stacks, through the
/// migration engine, its pages dealt over `targets` in page order.
inline process_move move_private_data_userspace(const std::vector<int>& targets,
                                                const migrate_options& options) {
  process_move done;
  done.used = backend::userspace;
  const std::vector<mapping> maps = read_mappings(0);
  const std::size_t page = page_size();
  for (std::size_t i = 0; i < maps.size(); ++i) {
    const mapping& m = maps[i];
    if (!private_data(m) || (m.protection() & PROT_WRITE) == 0 || m.path == "[stack]" ||
        below_is_guard(maps, i) || m.kernel_page_size > page || m.has_flag("io") ||
        m.has_flag("pf") || m.has_flag("dc"))
      continue;
    std::vector<void*> pages;
    std::vector<int> where;
    for (std::uintptr_t at = m.start; at < m.end; at += page) {
      where.push_back(targets[pages.size() % targets.size()]);
      pages.push_back(reinterpret_cast<void*>(at));
    }
    migrate_options userspace = options;
    userspace.path = backend::userspace;
    const migration_result r = migrate_pages(std::move(pages), where, userspace);
    done.moved_bytes += r.bytes;
    // Never touched (-ENOENT) and the zero page (-EFAULT) have nothing to move.
    for (const int status : r.status)
      if (status < 0 && status != -ENOENT && status != -EFAULT) {
        ++done.statuses[status];
        ++done.not_moved;
      }
    if (r.error && done.error == 0) done.error = r.error.value();
  }
  return done;
}

/// Moves the process's pages on `from` to `to` (the kernel pairs the nodes as migrate_pages(2)
/// says), through migrate_pages(2) where it works and the userspace path where it is refused
/// (EPERM, ENOSYS). With `from` empty nothing is asked.
inline process_move move_process(const std::vector<int>& from, const std::vector<int>& to,
                                 const migrate_options& options) {
  process_move done;
  done.used = path_for(options);
  if (from.empty() || to.empty()) return done;
  if (done.used == backend::kernel) {
    const node_mask old_nodes(from);
    node_mask new_nodes(to);
    new_nodes.words.resize(old_nodes.words.size() > new_nodes.words.size()
                               ? old_nodes.words.size()
                               : new_nodes.words.size());
    const unsigned long maxnode = std::max(old_nodes.maxnode, new_nodes.maxnode);
    std::vector<unsigned long> old_words = old_nodes.words;
    old_words.resize(new_nodes.words.size());
    const long left =
        ::syscall(SYS_migrate_pages, 0, maxnode, old_words.data(), new_nodes.words.data());
    if (left >= 0) {
      done.not_moved = static_cast<std::size_t>(left);
      return done;
    }
    done.error = errno;
    if (done.error != EPERM && done.error != ENOSYS) return done;
  }
  return move_private_data_userspace(to, options);
}

/// Bytes that left `nodes` between two counts.
inline std::size_t departed(const std::map<int, std::size_t>& before,
                            const std::map<int, std::size_t>& after,
                            const std::vector<int>& nodes) {
  std::size_t total = 0;
  for (const int n : nodes) {
    const auto b = before.find(n);
    const auto a = after.find(n);
    const std::size_t was = b == before.end() ? 0 : b->second;
    const std::size_t is = a == after.end() ? 0 : a->second;
    if (was > is) total += was - is;
  }
  return total;
}

}  // namespace numamove::detail::mpi
