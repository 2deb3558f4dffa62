// Threads that run the slices of a kernel-path migration, each slice its own move_pages(2)
// call (the kernel copies a page in the thread that asked for it). Kept for the life of the
// process: the first call that wants n threads starts them, every later call reuses them, so no
// call pays a thread start. A fork()ed child starts with none and makes its own.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/engine/kernel_workers.hpp is internal: include a public numamove header"
#endif

#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace numamove::detail {

class kernel_workers {
 public:
  /// The process's workers.
  static kernel_workers& shared() {
    static const int registered =
        ::pthread_atfork(nullptr, nullptr, [] { current() = new kernel_workers; });
    (void)registered;
    return *current();
  }

  /// Runs task(i) for every i in [0, n): i = 0 and whatever no worker has taken yet on the
  /// caller, the others on workers (at most one fewer than the machine has CPUs); returns when
  /// every task has returned. Several threads may
  /// call it at once. `task` must not throw. Where a worker cannot be started, the tasks run on
  /// the threads there are (the caller at least).
  template <class Task>
  void run(unsigned n, const Task& task) {
    if (n <= 1) {
      if (n == 1) task(0u);
      return;
    }
    batch b;
    b.count = n;
    b.context = &task;
    b.call = [](const void* context, unsigned i) { (*static_cast<const Task*>(context))(i); };
    unsigned helpers = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      const unsigned cpus = std::thread::hardware_concurrency();  // 0: unknown
      helpers = grow(cpus == 0 || n - 1 < cpus - 1 ? n - 1 : cpus - 1);
      for (unsigned k = 0; k < helpers; ++k) queue_.push_back(&b);
    }
    wake_.notify_all();
    b.work();
    std::unique_lock<std::mutex> lock(mutex_);
    // Every entry of the batch must have left the queue and its worker be done with it.
    done_.wait(lock, [&] { return b.released == helpers; });
  }

  kernel_workers(const kernel_workers&) = delete;
  kernel_workers& operator=(const kernel_workers&) = delete;

 private:
  struct batch {
    unsigned count = 0;
    const void* context = nullptr;
    void (*call)(const void*, unsigned) = nullptr;
    std::atomic<unsigned> next{0};
    unsigned released = 0;  // queue entries taken and finished (under mutex_)

    void work() {
      for (unsigned i = next.fetch_add(1); i < count; i = next.fetch_add(1)) call(context, i);
    }
  };

  kernel_workers() = default;
  // Never destroyed: a worker may still wait on the members when the process exits.
  ~kernel_workers() = default;

  static kernel_workers*& current() {
    static kernel_workers* workers = new kernel_workers;
    return workers;
  }

  // Under mutex_: starts threads until there are `wanted`, or none more can be started. Returns
  // how many of the wanted there are.
  unsigned grow(unsigned wanted) {
    try {
      for (; threads_ < wanted; ++threads_) std::thread(&kernel_workers::serve, this).detach();
    } catch (const std::system_error&) {
      // EAGAIN: the thread limit; the threads there are do the work.
    }
    return threads_ < wanted ? threads_ : wanted;
  }

  void serve() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return !queue_.empty(); });
      batch* b = queue_.front();
      queue_.pop_front();
      lock.unlock();
      b->work();
      lock.lock();
      ++b->released;
      done_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  std::deque<batch*> queue_;
  unsigned threads_ = 0;
};

}  // namespace numamove::detail
