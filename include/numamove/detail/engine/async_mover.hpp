// The one thread behind migrate_async() and follow_async(): requests queue in the order they
// are made and run one at a time on a thread named "numamove mover", started by the first
// request and kept for the life of the process, so that no request pays a thread start. A
// fork()ed child gets a mover of its own; at exit the mover finishes the request it is running
// and is joined.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/engine/async_mover.hpp is internal: include a public numamove header"
#endif

#include <pthread.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "../../migration_result.hpp"

namespace numamove::detail {

class async_mover {
 public:
  using job = std::function<migration_result()>;

  /// The process's mover (a fork()ed child's own, once it has forked).
  static async_mover& shared() {
    static const int registered =
        ::pthread_atfork(nullptr, nullptr, [] { current() = new async_mover; });
    static const stop_at_exit stopper;
    (void)registered;
    (void)stopper;
    return *current();
  }

  /// Queues `work` behind every request queued before it and returns at once. The future holds
  /// what work() returns, or the exception it throws. Where the mover cannot run it (a thread
  /// cannot be started, or the mover has stopped at exit), work() runs on the calling thread
  /// before submit() returns. Requests still queued when the mover stops at exit are dropped:
  /// their futures hold std::future_error (broken_promise). Throws std::bad_alloc.
  std::future<migration_result> submit(job work) {
    request r{std::move(work), {}};
    std::future<migration_result> result = r.done.get_future();
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      if (!stopped_ && started()) {
        queue_.push_back(std::move(r));
        wake_.notify_one();
        return result;
      }
    }
    r.run_and_deliver();
    return result;
  }

  async_mover(const async_mover&) = delete;
  async_mover& operator=(const async_mover&) = delete;

 private:
  struct request {
    job work;
    std::promise<migration_result> done;

    void run_and_deliver() noexcept {
      try {
        done.set_value(work());
      } catch (...) {
        done.set_exception(std::current_exception());
      }
    }
  };

  // Stops the process's mover when static objects are destroyed (exit, or a return from main).
  struct stop_at_exit {
    ~stop_at_exit() { current()->stop(); }
  };

  async_mover() = default;
  // Never destroyed: a fork()ed child leaves its parent's in place (its thread, mutex and
  // queue belong to threads the child does not have).
  ~async_mover() = default;

  static async_mover*& current() {
    static async_mover* mover = new async_mover;
    return mover;
  }

  // Under mutex_: whether the thread runs, starting it if it does not yet.
  bool started() noexcept {
    if (thread_.joinable()) return true;
    try {
      thread_ = std::thread(&async_mover::serve, this);
    } catch (const std::system_error&) {
      return false;  // EAGAIN: the thread limit; the caller runs its request itself
    }
    ::pthread_setname_np(thread_.native_handle(), "numamove mover");
    return true;
  }

  void serve() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return stopped_ || !queue_.empty(); });
      if (stopped_) break;
      request next = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      next.run_and_deliver();
      lock.lock();
    }
    queue_.clear();
  }

  // Lets the request in flight finish, drops the queued ones and joins the thread. Later
  // requests run on their callers.
  void stop() {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      stopped_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<request> queue_;
  std::thread thread_;
  bool stopped_ = false;
};

}  // namespace numamove::detail
