// Threads that do the userspace migrator's work for one target node. Pinned to the node's CPUs,
// what they touch first is allocated there (the kernel's default local policy): they populate
// fresh pages and copy data into them. The migrator's caller sleeps while they work, so that
// nothing of the caller's runs while pages are write-protected.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/userspace/workers.hpp is internal: include a public numamove header"
#endif

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <new>
#include <system_error>
#include <vector>

#include "../../capabilities.hpp"
#include "../../placement.hpp"
#include "../linux/proc.hpp"
#include "fence.hpp"
#include "futex.hpp"
#include "own_mappings.hpp"
#include "../linux/syscalls.hpp"

namespace numamove::detail::userspace {

/// Pins the calling thread to `cpus`. Returns 0 or sched_setaffinity's errno (EINVAL when none
/// of them is allowed to this process).
inline int pin_to(const std::vector<int>& cpus) noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (const int cpu : cpus)
    if (cpu >= 0 && cpu < CPU_SETSIZE) CPU_SET(static_cast<std::size_t>(cpu), &set);
  return ::sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : errno;
}

/// A fixed set of threads that run one job at a time, all of them on it.
class worker_team {
 public:
  /// A job: called once per worker with the worker's index; must not throw.
  using job = void (*)(void* context, unsigned worker) noexcept;

  /// Starts max(1, count) threads, each pinned to `cpus` unless it is empty, with every
  /// asynchronous signal blocked (the program's handlers must not run on them). Returns once all
  /// have started. Throws std::system_error when the control page, a stack or a thread cannot
  /// be had (std::bad_alloc when memory for the bookkeeping cannot).
  worker_team(unsigned count, const std::vector<int>& cpus) : cpus_(cpus) {
    // What the workers write while the fence holds the program (the control block, their stacks)
    // lives in mappings made now, after the request was examined, so that no request can name
    // them: a stack from the C library's cache of exited threads could be one of the pages.
    void* page = map_own(sizeof(control), PROT_READ | PROT_WRITE);
    if (page == MAP_FAILED)
      throw std::system_error(errno, std::generic_category(), "numamove: worker control page");
    control_ = new (page) control;
    control_->cpus = &cpus_;
    const unsigned wanted = count == 0 ? 1 : count;
    threads_.reserve(wanted);
    sigset_t all;
    sigset_t saved;
    ::sigfillset(&all);
    for (const int sync : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS})
      ::sigdelset(&all, sync);
    ::pthread_sigmask(SIG_BLOCK, &all, &saved);
    int error = 0;
    for (unsigned i = 0; i < wanted && error == 0; ++i) error = start_thread(i);
    ::pthread_sigmask(SIG_SETMASK, &saved, nullptr);
    if (error != 0) {
      stop();
      throw std::system_error(error, std::generic_category(), "numamove: worker thread");
    }
    const auto started = static_cast<std::uint32_t>(threads_.size());
    for (std::uint32_t s = control_->started.load(); s != started; s = control_->started.load())
      futex_wait(control_->started, s);
  }

  worker_team(const worker_team&) = delete;
  worker_team& operator=(const worker_team&) = delete;
  ~worker_team() { stop(); }

  unsigned size() const noexcept { return static_cast<unsigned>(threads_.size()); }

  /// Calls each(begin, end) for every mapping the team made: its control page and the stacks.
  template <class Each>
  void for_each_mapping(Each&& each) const {
    const auto control_at = reinterpret_cast<std::uintptr_t>(control_);
    each(control_at, control_at + sizeof(control));
    for (const thread& t : threads_) {
      const auto stack_at = reinterpret_cast<std::uintptr_t>(t.stack);
      each(stack_at, stack_at + stack_size);
    }
  }

  /// True when every worker is pinned to the CPUs it was given (and some were given).
  bool pinned() const noexcept { return !cpus_.empty() && control_->pin_failures.load() == 0; }

  /// Starts fn(context, i) on worker i for every worker and returns; wait() waits for them.
  /// One job at a time. Allocates nothing.
  void start(job fn, void* context) noexcept {
    control_->fn.store(fn, std::memory_order_relaxed);
    control_->context.store(context, std::memory_order_relaxed);
    control_->pending.store(size(), std::memory_order_relaxed);
    control_->generation.fetch_add(1, std::memory_order_release);
    futex_wake(control_->generation);
  }

  /// Returns when every worker has returned from the job start() gave it. Allocates nothing.
  void wait() noexcept {
    for (std::uint32_t left = control_->pending.load(std::memory_order_acquire); left != 0;
         left = control_->pending.load(std::memory_order_acquire))
      futex_wait(control_->pending, left);
  }

  /// start() and wait().
  void run(job fn, void* context) noexcept {
    start(fn, context);
    wait();
  }

 private:
  /// Stack of a worker thread (its thread control block and TLS live at its top).
  static constexpr std::size_t stack_size = std::size_t{2} << 20;

  struct control {
    const std::vector<int>* cpus = nullptr;
    std::atomic<std::uint32_t> next_index{0};
    std::atomic<std::uint32_t> generation{0};
    std::atomic<std::uint32_t> pending{0};
    std::atomic<std::uint32_t> started{0};
    std::atomic<std::uint32_t> pin_failures{0};
    std::atomic<bool> stopping{false};
    std::atomic<job> fn{nullptr};
    std::atomic<void*> context{nullptr};
  };

  struct thread {
    pthread_t id;
    void* stack;
  };

  // Returns 0 or an errno.
  int start_thread(unsigned) noexcept {
    void* stack = map_own(stack_size, PROT_READ | PROT_WRITE, MAP_STACK);
    if (stack == MAP_FAILED) return errno;
    pthread_attr_t attr;
    int error = ::pthread_attr_init(&attr);
    if (error == 0) error = ::pthread_attr_setstack(&attr, stack, stack_size);
    pthread_t id{};
    if (error == 0) error = ::pthread_create(&id, &attr, &worker_team::entry, control_);
    ::pthread_attr_destroy(&attr);
    if (error != 0) {
      ::munmap(stack, stack_size);
      return error;
    }
    threads_.push_back(thread{id, stack});  // reserved: cannot throw
    return 0;
  }

  static void* entry(void* context) noexcept {
    auto* c = static_cast<control*>(context);
    work(c, c->next_index.fetch_add(1));
    return nullptr;
  }

  static void work(control* c, unsigned index) noexcept {
    const std::vector<int>* cpus = c->cpus;
    if (!cpus->empty() && pin_to(*cpus) != 0) c->pin_failures.fetch_add(1);
    // Workers copy while the fence holds the program's threads; they are never stopped.
    const int fence_slot = register_fence_worker();
    std::uint32_t seen = c->generation.load(std::memory_order_acquire);
    c->started.fetch_add(1);
    futex_wake(c->started);
    while (!c->stopping.load(std::memory_order_acquire)) {
      std::uint32_t now = c->generation.load(std::memory_order_acquire);
      while (now == seen) {
        futex_wait(c->generation, seen);
        now = c->generation.load(std::memory_order_acquire);
      }
      seen = now;
      if (c->stopping.load(std::memory_order_acquire)) break;
      c->fn.load(std::memory_order_relaxed)(c->context.load(std::memory_order_relaxed), index);
      if (c->pending.fetch_sub(1, std::memory_order_acq_rel) == 1) futex_wake(c->pending);
    }
    unregister_fence_worker(fence_slot);
  }

  void stop() noexcept {
    control_->stopping.store(true, std::memory_order_release);
    control_->generation.fetch_add(1, std::memory_order_release);
    futex_wake(control_->generation);
    for (const thread& t : threads_) {
      ::pthread_join(t.id, nullptr);
      ::munmap(t.stack, stack_size);
    }
    threads_.clear();
    control_->~control();
    ::munmap(control_, sizeof(control));
  }

  std::vector<int> cpus_;
  control* control_ = nullptr;
  std::vector<thread> threads_;
};

/// Faults in every page of [begin, end) for writing from the calling thread, so that they are
/// allocated by its policy (local: its node). MADV_POPULATE_WRITE where the kernel has it (5.14+),
/// else one write per page. Writes only zeros into fresh memory. Returns 0 or an errno.
inline int populate(std::uintptr_t begin, std::uintptr_t end) noexcept {
  if (begin >= end) return 0;
#ifdef MADV_POPULATE_WRITE
  if (::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE) == 0) return 0;
  if (errno != EINVAL) return errno;
#endif
  for (std::uintptr_t page = begin; page < end; page += page_size())
    *reinterpret_cast<volatile char*>(page) = 0;
  return 0;
}

/// Places the fresh, untouched pages of [memory, memory + length) as `where` says without mbind:
/// each page is touched first by a thread pinned to the CPUs of its node (every page is then
/// resident). Interleaved memory is kept on base pages (a huge page would take its neighbours'
/// pages to one node). Returns 0; EHOSTUNREACH when a node has no CPU this process may be pinned
/// to; an errno from mmap, thread creation or pinning.
inline int place_by_first_touch(void* memory, std::size_t length, const placement& where) {
  if (where.kind == placement::policy::first_touch || where.nodes.empty()) return 0;
  const capabilities& here = capabilities::of_this_process();
  for (const int node : where.nodes) {
    const capabilities::node_access* n = here.find(node);
    if (n == nullptr || !n->pinnable) return EHOSTUNREACH;
  }
  struct span {
    std::uintptr_t begin, end;
    std::size_t stride, first;
  };
  const auto begin = reinterpret_cast<std::uintptr_t>(memory);
  const std::size_t nodes = where.nodes.size();
  if (nodes > 1) ::madvise(memory, length, MADV_NOHUGEPAGE);
  try {
    for (std::size_t k = 0; k < nodes; ++k) {
      span s{begin, begin + length, nodes, k};
      worker_team team(1, here.find(where.nodes[k])->cpus);
      if (!team.pinned()) return EHOSTUNREACH;
      team.run(
          [](void* context, unsigned) noexcept {
            const span& part = *static_cast<const span*>(context);
            if (part.stride == 1) {
              populate(part.begin, part.end);
              return;
            }
            for (std::uintptr_t page = part.begin + part.first * page_size(); page < part.end;
                 page += part.stride * page_size())
              *reinterpret_cast<volatile char*>(page) = 0;
          },
          &s);
    }
  } catch (const std::system_error& e) {
    return e.code().value();
  }
  return 0;
}

}  // namespace numamove::detail::userspace
