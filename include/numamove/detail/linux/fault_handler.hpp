// Routing of SIGSEGV faults in registered address ranges to callbacks: the machinery behind the
// userspace migrator's write protection (a writer waits until its page has moved) and the base
// for next-touch placement. Everything the signal handler touches is a lock-free atomic, so the
// handler is async-signal-safe. The table it writes lives in a mapping of its own, not in the
// program's data segment: a program may write-protect (migrate) a global array that shares a
// page with the library's globals, and the handler must never fault.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/linux/fault_handler.hpp is internal: include a public numamove header"
#endif

#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>

namespace numamove::detail {

// Called from the SIGSEGV handler, in signal context (must be async-signal-safe), for a fault
// at `address` inside a registered range. Returns true when it resolved the fault (the access
// is retried), false to pass the fault on to the previous handler.
using fault_callback = bool (*)(void* address, bool is_write, void* context) noexcept;

namespace fault_routing {

/// Ranges that can be registered at once.
inline constexpr int capacity = 256;

enum slot_state : int { free_slot = 0, filling = 1, active = 2, retiring = 3 };

struct slot {
  std::atomic<int> state{free_slot};
  std::atomic<int> running{0};  // handlers between their check of `state` and their return
  std::atomic<std::uintptr_t> begin{0};
  std::atomic<std::uintptr_t> end{0};
  std::atomic<fault_callback> callback{nullptr};
  std::atomic<void*> context{nullptr};
};

/// Ranges unregistered lately, for faults raised before and handled after their unregistration.
inline constexpr unsigned retired_capacity = 64;

struct retired_range {
  std::atomic<std::uintptr_t> begin{0};
  std::atomic<std::uintptr_t> end{0};
  std::atomic<unsigned> retirement{0};  // 1 + the count of unregistrations before this one
};

struct table {
  slot slots[capacity];
  retired_range retired[retired_capacity];
  std::atomic<unsigned> next_retired{0};
  std::atomic<int> used{0};             // slots[0 .. used) may be in use
  std::atomic<bool> installing{false};  // serializes sigaction() calls of register_fault_range
  // The handler that was in place before ours, double-buffered: a reinstall writes the slot the
  // handler is not reading, then flips `current_previous`.
  struct sigaction previous[2] = {};
  std::atomic<int> current_previous{0};
};

// Created by the first registration and never freed; constant-initialized, so the handler may
// read it before any constructor has run.
inline std::atomic<table*> table_pointer{nullptr};

/// The table, mapped on first use. Returns nullptr (errno set) when it cannot be mapped.
inline table* routing_table() noexcept {
  table* t = table_pointer.load(std::memory_order_acquire);
  if (t != nullptr) return t;
  void* memory =
      ::mmap(nullptr, sizeof(table), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) return nullptr;
  table* made = new (memory) table;
  if (table_pointer.compare_exchange_strong(t, made, std::memory_order_acq_rel)) return made;
  ::munmap(memory, sizeof(table));  // another thread was first
  return t;
}

/// [begin, end) of the routing table once it exists, else {0, 0}: the userspace migrator refuses
/// to move these pages, which the handler writes.
inline std::pair<std::uintptr_t, std::uintptr_t> routing_table_extent() noexcept {
  const auto at = reinterpret_cast<std::uintptr_t>(table_pointer.load(std::memory_order_acquire));
  return {at, at == 0 ? 0 : at + sizeof(table)};
}

// The fault this thread's handler is passing on, while it does: the signal context it hands to
// the previous handler and how deep in the stack that call is. Our handler entered again with
// that same context, deeper in the stack, means the chain of handlers loops back to us (a
// handler installed after ours chains to it, and we chain to that one): every handler in the
// loop has declined the fault. A previous handler that leaves by siglongjmp never returns to
// clear it; a fault after that has another context, or a shallower frame, and is a new fault.
// Initial-exec TLS needs no allocation, so reading it in signal context is safe.
inline thread_local const void* passing_on_context __attribute__((tls_model("initial-exec"))) =
    nullptr;
inline thread_local std::uintptr_t passing_on_depth __attribute__((tls_model("initial-exec"))) = 0;

/// Whether the fault with signal context `machine_context`, whose handler frame is at `depth`,
/// is one this thread is passing on already.
inline bool passed_on_already(const void* machine_context, std::uintptr_t depth) noexcept {
  return passing_on_context == machine_context && depth < passing_on_depth;
}

// The address this thread last retried as a stale fault and the retirement that made it stale
// (see handle_fault): a fault that happens again there, with no newer retirement of the address,
// goes on to the previous handler instead of looping. A later retirement of the same address (the
// range moved again) makes a stale fault there new.
inline thread_local std::uintptr_t retried_stale __attribute__((tls_model("initial-exec"))) = 0;
inline thread_local unsigned retried_stale_retirement __attribute__((tls_model("initial-exec"))) =
    0;

/// Whether the faulting access was a write, from the machine context the kernel saved.
/// Architectures without a decoder here report every fault as a write.
inline bool fault_is_write(const void* machine_context) noexcept {
#if defined(__x86_64__)
  // Page-fault error code, bit 1: the access was a write.
  return (static_cast<const ucontext_t*>(machine_context)->uc_mcontext.gregs[REG_ERR] & 2) != 0;
#elif defined(__aarch64__)
  // The ESR record in the signal frame; WnR (bit 6) is set for writes.
  const auto* at = reinterpret_cast<const unsigned char*>(
      static_cast<const ucontext_t*>(machine_context)->uc_mcontext.__reserved);
  for (;;) {
    std::uint32_t magic = 0;
    std::uint32_t size = 0;
    __builtin_memcpy(&magic, at, 4);
    __builtin_memcpy(&size, at + 4, 4);
    if (magic == 0 || size == 0) return true;
    if (magic == 0x45535201) {  // ESR_MAGIC
      std::uint64_t esr = 0;
      __builtin_memcpy(&esr, at + 8, 8);
      return (esr >> 6 & 1) != 0;
    }
    at += size;
  }
#else
  (void)machine_context;
  return true;
#endif
}

/// Hands the fault to the handler that was installed before ours, as the kernel would have.
inline void pass_on(const table& routes, int sig, siginfo_t* info, void* machine_context,
                    bool loops) noexcept {
  const struct sigaction& previous =
      routes.previous[routes.current_previous.load(std::memory_order_acquire)];
  const bool no_handler = previous.sa_handler == SIG_DFL || previous.sa_handler == SIG_IGN;
  if (loops || no_handler) {
    // A SIGSEGV that kill() sent to a program that ignores it stays ignored.
    if (!loops && previous.sa_handler == SIG_IGN && info->si_code <= 0) return;
    // The default action: with SIG_DFL in place the faulting instruction faults again when
    // this handler returns and the kernel terminates the process (a fault cannot be ignored);
    // a sent signal is sent again, pending until the handler returns.
    struct sigaction fallback {};
    fallback.sa_handler = SIG_DFL;
    sigemptyset(&fallback.sa_mask);
    ::sigaction(sig, &fallback, nullptr);
    if (info->si_code <= 0) ::raise(sig);
    return;
  }
  // The mask the kernel would have set for that handler: its sa_mask, and the signal itself
  // unless it asked for SA_NODEFER.
  sigset_t saved;
  sigset_t during = previous.sa_mask;
  if ((previous.sa_flags & SA_NODEFER) == 0) ::sigaddset(&during, sig);
  ::pthread_sigmask(SIG_BLOCK, &during, &saved);
  if ((previous.sa_flags & SA_NODEFER) != 0) {
    sigset_t self;
    ::sigemptyset(&self);
    ::sigaddset(&self, sig);
    ::pthread_sigmask(SIG_UNBLOCK, &self, nullptr);
  }
  const void* outer_context = passing_on_context;
  const std::uintptr_t outer_depth = passing_on_depth;
  char frame = 0;
  passing_on_context = machine_context;
  passing_on_depth = reinterpret_cast<std::uintptr_t>(&frame);
  if ((previous.sa_flags & SA_SIGINFO) != 0)
    previous.sa_sigaction(sig, info, machine_context);
  else
    previous.sa_handler(sig);
  passing_on_context = outer_context;
  passing_on_depth = outer_depth;
  ::pthread_sigmask(SIG_SETMASK, &saved, nullptr);
}

inline void handle_fault(int sig, siginfo_t* info, void* machine_context) noexcept {
  const int saved_errno = errno;
  table& routes = *table_pointer.load(
      std::memory_order_acquire);  // the handler is installed after the table exists
  char frame = 0;
  const bool loops = passed_on_already(machine_context, reinterpret_cast<std::uintptr_t>(&frame));
  // Faults raised by the MMU have si_code > 0; a SIGSEGV sent with kill() is never ours.
  if (info->si_code > 0 && !loops) {
    const auto address = reinterpret_cast<std::uintptr_t>(info->si_addr);
    const bool is_write = fault_is_write(machine_context);
    const int used = routes.used.load(std::memory_order_acquire);
    for (int i = 0; i < used; ++i) {
      slot& s = routes.slots[i];
      // Acquire: a slot seen retiring or free has its range in `retired` already.
      if (s.state.load(std::memory_order_acquire) != active) continue;
      // Announce before checking, so that unregister_fault_range either sees us running or we
      // see its retirement (both sequentially consistent).
      s.running.fetch_add(1);
      bool resolved = false;
      if (s.state.load() == active && address >= s.begin.load(std::memory_order_relaxed) &&
          address < s.end.load(std::memory_order_relaxed)) {
        resolved = s.callback.load(std::memory_order_relaxed)(
            info->si_addr, is_write, s.context.load(std::memory_order_relaxed));
      }
      s.running.fetch_sub(1, std::memory_order_release);
      if (resolved) {
        retried_stale = 0;
        errno = saved_errno;
        return;
      }
    }
    // A fault the kernel raised while its range was registered can reach this handler after the
    // range was unregistered (the thread was not scheduled in between): its cause (say, a write
    // protection) is gone, so it is retried, once per retirement of the range; faulting again at
    // the same address with no newer retirement, it goes on.
    unsigned newest = 0;
    for (const retired_range& r : routes.retired) {
      // Read like a seqlock: an entry rewritten meanwhile is skipped.
      const unsigned retirement = r.retirement.load(std::memory_order_acquire);
      const bool inside = address >= r.begin.load(std::memory_order_relaxed) &&
                          address < r.end.load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (inside && retirement > newest &&
          r.retirement.load(std::memory_order_relaxed) == retirement)
        newest = retirement;
    }
    if (newest != 0 && !(retried_stale == address && retried_stale_retirement == newest)) {
      retried_stale = address;
      retried_stale_retirement = newest;
      errno = saved_errno;
      return;
    }
    retried_stale = 0;
  }
  pass_on(routes, sig, info, machine_context, loops);
  errno = saved_errno;
}

/// Makes handle_fault the SIGSEGV handler unless it already is, keeping the one it replaces as
/// the previous handler. Checked at every registration because programs (and test frameworks)
/// install and restore their own handlers. Returns 0 or sigaction's errno.
inline int ensure_installed(table& routes) noexcept {
  while (routes.installing.exchange(true, std::memory_order_acquire)) ::sched_yield();
  struct sigaction found {};
  int error = ::sigaction(SIGSEGV, nullptr, &found) == 0 ? 0 : errno;
  const bool ours = (found.sa_flags & SA_SIGINFO) != 0 && found.sa_sigaction == &handle_fault;
  if (error == 0 && !ours) {
    const int spare = 1 - routes.current_previous.load(std::memory_order_relaxed);
    routes.previous[spare] = found;
    routes.current_previous.store(spare, std::memory_order_release);
    struct sigaction mine {};
    mine.sa_sigaction = &handle_fault;
    mine.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigemptyset(&mine.sa_mask);
    if (::sigaction(SIGSEGV, &mine, nullptr) != 0) error = errno;
  }
  routes.installing.store(false, std::memory_order_release);
  return error;
}

}  // namespace fault_routing

// Registers [begin, begin + length): faults there go to `callback`. Installs the handler on
// first use, chaining to the one it found. Returns an id >= 0, or -1 with errno (ENOSPC when
// the table is full).
//
// Also -1 with EINVAL for a null callback, an empty range or one that wraps around, and with
// mmap's or sigaction's errno when the table or the handler cannot be set up. Overlapping ranges
// are allowed: their callbacks are asked in id order until one resolves the fault. Every
// registration reinstalls the handler if the program replaced it meanwhile (the replacement becomes
// the previous handler); a program that replaces it while a range is registered must chain to it.
inline int register_fault_range(void* begin, std::size_t length, fault_callback callback,
                                void* context) noexcept {
  using namespace fault_routing;
  const auto first = reinterpret_cast<std::uintptr_t>(begin);
  if (callback == nullptr || length == 0 || first + length < first) {
    errno = EINVAL;
    return -1;
  }
  table* routes = routing_table();
  if (routes == nullptr) return -1;
  if (const int error = ensure_installed(*routes)) {
    errno = error;
    return -1;
  }
  for (int i = 0; i < capacity; ++i) {
    slot& s = routes->slots[i];
    int expected = free_slot;
    if (!s.state.compare_exchange_strong(expected, filling)) continue;
    s.begin.store(first, std::memory_order_relaxed);
    s.end.store(first + length, std::memory_order_relaxed);
    s.callback.store(callback, std::memory_order_relaxed);
    s.context.store(context, std::memory_order_relaxed);
    int used = routes->used.load();
    while (used <= i && !routes->used.compare_exchange_weak(used, i + 1)) {
    }
    s.state.store(active);  // publishes the fields above
    return i;
  }
  errno = ENOSPC;
  return -1;
}

// Stops routing faults of range `id`; returns once no handler is running its callback.
//
// Ids that are not registered are ignored. Must not be called from the range's own callback,
// nor while a callback waits for something only the caller would do after this call. A fault
// raised in the range before this call whose handler runs only after it (the thread was not
// scheduled in between) is retried once rather than passed on: the ranges of the last 64
// unregistrations are remembered for that. So a callback's range must no longer fault for the
// callback's reasons when it is unregistered (remove the protection first).
inline void unregister_fault_range(int id) noexcept {
  using namespace fault_routing;
  table* routes = fault_routing::table_pointer.load(std::memory_order_acquire);
  if (routes == nullptr || id < 0 || id >= capacity) return;
  slot& s = routes->slots[id];
  if (s.state.load() != active) return;
  // Remembered as retired before the slot stops answering, so that a handler that finds the
  // slot retiring finds the range in `retired`. The retirement number is written last: a
  // handler that reads it sees the range it belongs to.
  const unsigned retirement = routes->next_retired.fetch_add(1) + 1;
  retired_range& r = routes->retired[(retirement - 1) % retired_capacity];
  r.retirement.store(0, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  r.begin.store(s.begin.load(std::memory_order_relaxed), std::memory_order_relaxed);
  r.end.store(s.end.load(std::memory_order_relaxed), std::memory_order_relaxed);
  r.retirement.store(retirement, std::memory_order_release);
  int expected = active;
  if (!s.state.compare_exchange_strong(expected, retiring)) return;
  while (s.running.load() != 0) ::sched_yield();
  s.state.store(free_slot, std::memory_order_release);
}

}  // namespace numamove::detail
