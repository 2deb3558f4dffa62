// Stopping the process's other threads while the userspace migrator copies pages and puts the
// copies in place. The kernel's own migration holds the mmap lock, so a concurrent munmap,
// mprotect, madvise or mremap happens wholly before or wholly after it; a userspace migrator has
// no such lock. The fence gives the same outcome: every other thread of the process is parked
// in a signal handler (so it is between two instructions, not inside a system call), the
// migrator looks at the address space again, copies and commits, and then lets them go. What
// the program did before the stop is what the migrator sees; what it does after, it does to the
// moved pages.
//
// The signal is a real-time one that nothing else in the process handles (the highest free one
// from SIGRTMAX down), sent with a stop number (rt_tgsigqueueinfo), so that a signal that
// arrives after its stop was given up does nothing. numamove's own workers block it and are not
// stopped: they do the copying. Everything the handler touches lives in a mapping of its own.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/userspace/fence.hpp is internal: include a public numamove header"
#endif

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <utility>

#include "../linux/fd.hpp"
#include "../linux/proc.hpp"
#include "../linux/syscalls.hpp"
#include "../sanitizers.hpp"
#include "futex.hpp"
#include "own_mappings.hpp"

namespace numamove::detail::userspace {

namespace fencing {

/// numamove worker threads that can be registered at once (they are never stopped).
inline constexpr int worker_capacity = 1024;

struct state {
  std::atomic<std::uint32_t> stop{0};      ///< number of the stop in progress or last made
  std::atomic<std::uint32_t> released{0};  ///< number of the last stop whose threads may go
  std::atomic<std::uint64_t> parked{0};    ///< stop << 32 | threads parked for that stop
  std::atomic<int> signal{0};              ///< the signal in use, 0 before the first stop
  std::atomic<int> worker_slots{0};        ///< workers[0 .. worker_slots) may be in use
  std::atomic<pid_t> workers[worker_capacity] = {};
};

inline std::atomic<state*> state_pointer{nullptr};

/// The fence's state, mapped on first use; nullptr (errno set) when it cannot be mapped.
inline state* shared_state() noexcept {
  state* s = state_pointer.load(std::memory_order_acquire);
  if (s != nullptr) return s;
  void* memory = map_own(sizeof(state), PROT_READ | PROT_WRITE);
  if (memory == MAP_FAILED) return nullptr;
  state* made = new (memory) state;
  if (state_pointer.compare_exchange_strong(s, made, std::memory_order_acq_rel)) return made;
  ::munmap(memory, sizeof(state));
  return s;
}

/// The handler: counts this thread as parked for its stop and sleeps until the stop is over.
/// A signal of a stop that is over (given up, or released) returns at once.
inline void park(int, siginfo_t* info, void*) noexcept {
  const int saved_errno = errno;
  state* s = state_pointer.load(std::memory_order_acquire);
  const auto stop = static_cast<std::uint32_t>(info->si_value.sival_int);
  if (s != nullptr && info->si_code == SI_QUEUE && info->si_pid == ::getpid()) {
    std::uint64_t word = s->parked.load(std::memory_order_acquire);
    bool counted = false;
    while (!counted && word >> 32 == stop)
      counted = s->parked.compare_exchange_weak(word, word + 1, std::memory_order_acq_rel);
    if (counted) {
      for (std::uint32_t seen = s->released.load(std::memory_order_acquire);
           static_cast<std::int32_t>(seen - stop) < 0;
           seen = s->released.load(std::memory_order_acquire))
        futex_wait(s->released, seen);
    }
  }
  errno = saved_errno;
}

/// Picks and installs the signal, unless ours is still installed. Returns it, or 0 when every
/// real-time signal has another handler.
inline int installed_signal(state& s) noexcept {
  const int current = s.signal.load(std::memory_order_acquire);
  struct sigaction found {};
  if (current != 0 && ::sigaction(current, nullptr, &found) == 0 &&
      (found.sa_flags & SA_SIGINFO) != 0 && found.sa_sigaction == &park)
    return current;
  for (int sig = SIGRTMAX; sig >= SIGRTMIN; --sig) {
    if (::sigaction(sig, nullptr, &found) != 0 || (found.sa_flags & SA_SIGINFO) != 0 ||
        found.sa_handler != SIG_DFL)
      continue;
    struct sigaction mine {};
    mine.sa_sigaction = &park;
    mine.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    ::sigfillset(&mine.sa_mask);  // a parked thread runs none of the program's handlers
    if (::sigaction(sig, &mine, nullptr) != 0) continue;
    s.signal.store(sig, std::memory_order_release);
    return sig;
  }
  return 0;
}

#ifdef NUMAMOVE_DETAIL_THREAD_SANITIZER
/// True when thread `tid` blocks `sig` (SigBlk of /proc/self/task/<tid>/status). Allocates
/// nothing.
inline bool blocks_signal(pid_t tid, int sig) noexcept {
  const unique_fd status = open_thread_status(tid);
  if (!status) return false;
  char text[4096];
  const ssize_t got = ::read(status.get(), text, sizeof text - 1);
  if (got <= 0) return false;
  text[got] = '\0';
  const char* field = std::strstr(text, "\nSigBlk:");
  if (field == nullptr) return false;
  const unsigned long long mask = std::strtoull(field + 9, nullptr, 16);
  return ((mask >> (sig - 1)) & 1u) != 0;
}
#endif

/// Threads the fence does not wait for besides numamove's workers: under ThreadSanitizer, the
/// sanitizer's own background thread, which blocks every signal and never touches the
/// program's memory (a program thread that blocks the signal is not stopped there either).
inline bool runtime_thread(pid_t tid, int sig) noexcept {
#ifdef NUMAMOVE_DETAIL_THREAD_SANITIZER
  return blocks_signal(tid, sig);
#else
  (void)tid;
  (void)sig;
  return false;
#endif
}

}  // namespace fencing

/// Registers the calling thread as a numamove worker, which no stop waits for (workers block
/// the signal). Returns the slot for unregister_fence_worker, or -1 when the table is full or
/// cannot be mapped: a stop then waits for that worker in vain and gives up (EBUSY).
inline int register_fence_worker() noexcept {
  fencing::state* s = fencing::shared_state();
  if (s == nullptr) return -1;
  const pid_t self = this_thread_id();
  for (int i = 0; i < fencing::worker_capacity; ++i) {
    pid_t expected = 0;
    if (!s->workers[i].compare_exchange_strong(expected, self)) continue;
    int used = s->worker_slots.load();
    while (used <= i && !s->worker_slots.compare_exchange_weak(used, i + 1)) {
    }
    return i;
  }
  return -1;
}

inline void unregister_fence_worker(int slot) noexcept {
  fencing::state* s = fencing::state_pointer.load(std::memory_order_acquire);
  if (s != nullptr && slot >= 0) s->workers[slot].store(0, std::memory_order_release);
}

/// Threads of the process now (/proc/self/status), at least 1.
inline std::size_t count_threads() {
  const std::string threads = status_field(read_proc(0, "status"), "Threads");
  const unsigned long long count = std::strtoull(threads.c_str(), nullptr, 10);
  return count == 0 ? 1 : static_cast<std::size_t>(count);
}

/// [begin, end) of the fence's state once it exists, else {0, 0}: the migrator refuses to move
/// these pages, which the handler writes.
inline std::pair<std::uintptr_t, std::uintptr_t> fence_state_extent() noexcept {
  const auto at =
      reinterpret_cast<std::uintptr_t>(fencing::state_pointer.load(std::memory_order_acquire));
  return {at, at == 0 ? 0 : at + sizeof(fencing::state)};
}

/// Stops the other threads of the process (all but the caller and numamove's workers) until
/// resume(). One stop at a time per process: the caller serializes (migrator.hpp). Allocates
/// nothing: `tids` is scratch room for `capacity` thread ids, made before the stop.
class thread_fence {
 public:
  /// How long stop() waits for a thread to park before giving up.
  static constexpr long patience_ms = 2000;

  thread_fence(pid_t* tids, std::size_t capacity) noexcept : tids_(tids), capacity_(capacity) {}
  thread_fence(const thread_fence&) = delete;
  thread_fence& operator=(const thread_fence&) = delete;
  ~thread_fence() { resume(); }

  /// Returns 0 once every other thread is parked; else resumes those that parked and returns
  /// EBUSY (a thread blocks the signal, is stopped by a debugger, or sleeps uninterruptibly for
  /// longer than patience_ms), EAGAIN (more threads than `capacity`), ENOSYS (no real-time
  /// signal is free), or the errno of opening /proc/self/task.
  int stop() noexcept {
    fencing::state* s = fencing::shared_state();
    if (s == nullptr) return errno;
    const int sig = fencing::installed_signal(*s);
    if (sig == 0) return ENOSYS;
    std::uint32_t number = s->stop.load(std::memory_order_relaxed) + 1;
    if (number == 0) number = 1;
    s->parked.store(static_cast<std::uint64_t>(number) << 32, std::memory_order_release);
    s->stop.store(number, std::memory_order_release);
    state_ = s;
    number_ = number;
    count_ = 0;
    const int error = signal_all(sig);
    if (error != 0) resume();
    return error;
  }

  /// Lets the stopped threads go (nothing when none are stopped).
  void resume() noexcept {
    if (state_ == nullptr) return;
    state_->released.store(number_, std::memory_order_release);
    futex_wake(state_->released);
    state_ = nullptr;
  }

 private:
  // Signals every thread not signalled yet, waits for them, and lists the threads again until
  // no new one appears (a thread may be creating another while it is signalled).
  int signal_all(int sig) noexcept {
    const pid_t self = this_thread_id();
    const unique_fd dir = open_proc(0, "task", O_RDONLY | O_DIRECTORY);
    if (!dir) return errno;
    int error = 0;
    for (bool found_new = true; found_new && error == 0;) {
      found_new = false;
      ::lseek(dir.get(), 0, SEEK_SET);
      alignas(8) char buffer[4096];
      for (long got;
           error == 0 && (got = ::syscall(SYS_getdents64, dir.get(), buffer, sizeof buffer)) > 0;) {
        for (long at = 0; at < got;) {
          const auto* entry = reinterpret_cast<const dirent64*>(buffer + at);
          at += entry->d_reclen;
          const pid_t tid = static_cast<pid_t>(std::atol(entry->d_name));
          if (tid <= 0 || tid == self || is_worker(tid) || signalled(tid) ||
              fencing::runtime_thread(tid, sig))
            continue;
          if (count_ == capacity_) {
            error = EAGAIN;
            break;
          }
          siginfo_t info{};
          info.si_signo = sig;
          info.si_code = SI_QUEUE;
          info.si_pid = ::getpid();
          info.si_uid = ::getuid();
          info.si_value.sival_int = static_cast<int>(number_);
          if (::syscall(SYS_rt_tgsigqueueinfo, ::getpid(), tid, sig, &info) != 0)
            continue;  // exited
          tids_[count_++] = tid;
          found_new = true;
        }
      }
      if (error == 0 && found_new) error = wait_parked();
    }
    return error;
  }

  // Waits until every signalled thread that is still alive has parked.
  int wait_parked() noexcept {
    const long started = now_us();
    long checked = started;
    for (const timespec pause{0, 20 * 1000};; ::nanosleep(&pause, nullptr)) {
      const auto parked =
          static_cast<std::size_t>(state_->parked.load(std::memory_order_acquire) & 0xffffffffu);
      if (parked == count_) return 0;
      const long now = now_us();
      // Every 5 ms: a thread that exited with the signal pending never parks; stop waiting for it.
      if (now - checked >= 5000) {
        checked = now;
        std::size_t alive = 0;
        for (std::size_t i = 0; i < count_; ++i)
          if (::syscall(SYS_tgkill, ::getpid(), tids_[i], 0) == 0) tids_[alive++] = tids_[i];
        count_ = alive;
      }
      if (now - started > patience_ms * 1000) return EBUSY;
    }
  }

  static long now_us() noexcept {
    timespec t{};
    ::clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000L + t.tv_nsec / 1000;
  }

  bool signalled(pid_t tid) const noexcept {
    for (std::size_t i = 0; i < count_; ++i)
      if (tids_[i] == tid) return true;
    return false;
  }

  static bool is_worker(pid_t tid) noexcept {
    const fencing::state* s = fencing::state_pointer.load(std::memory_order_acquire);
    const int used = s != nullptr ? s->worker_slots.load(std::memory_order_acquire) : 0;
    for (int i = 0; i < used; ++i)
      if (s->workers[i].load(std::memory_order_acquire) == tid) return true;
    return false;
  }

  pid_t* tids_;
  std::size_t capacity_;
  std::size_t count_ = 0;
  fencing::state* state_ = nullptr;
  std::uint32_t number_ = 0;
};

}  // namespace numamove::detail::userspace
