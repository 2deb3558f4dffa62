// The threads that move slices of a kernel-path migration: started once, reused by every later
// call, shared by callers that run at once, and made anew in a fork()ed child. Each case runs in
// a child of its own: the workers stay for the life of their process, and a test process with
// threads could not start threads in the children of the later cases under ThreadSanitizer.
#include <dirent.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#define NUMAMOVE_PUBLIC_INCLUDE  // this test looks at an internal piece
#include <numamove/detail/sanitizers.hpp>
#include <numamove/numamove.hpp>

#include "support/catch.hpp"
#include "support/child.hpp"

namespace {

using numamove::detail::kernel_workers;
using numamove_test::in_child;
using numamove_test::threads_of_process;

/// As many tasks as there are threads to run them at once: one per CPU, at most 4.
unsigned together() {
  const unsigned cpus = std::thread::hardware_concurrency();
  return cpus < 2 ? 1 : cpus < 4 ? cpus : 4;
}

/// Runs `n` tasks that each wait until all `n` have started (so that each is on its own thread),
/// and returns the thread ids that ran them.
std::set<long> run_together(unsigned n) {
  std::atomic<unsigned> started{0};
  std::mutex lock;
  std::set<long> ids;
  kernel_workers::shared().run(n, [&](unsigned) {
    started.fetch_add(1);
    while (started.load() < n) std::this_thread::yield();
    const std::lock_guard<std::mutex> hold(lock);
    ids.insert(::syscall(SYS_gettid));
  });
  return ids;
}

}  // namespace

TEST_CASE("kernel workers: every task runs once, on threads started once and reused", "[workers]") {
  CHECK(in_child([] {
          const std::set<long> first = run_together(together());
          if (first.size() != together()) return 1;
          if (first.count(::syscall(SYS_gettid)) != 1) return 2;  // the caller takes a task
          const std::size_t threads = threads_of_process();
          for (int round = 0; round < 20; ++round)
            if (run_together(together()) != first) return 3;
          if (threads_of_process() != threads) return 4;
          // More tasks than threads: each runs once, and no thread more is started.
          std::vector<std::atomic<int>> runs(1000);
          kernel_workers::shared().run(1000, [&](unsigned i) { runs[i].fetch_add(1); });
          for (const auto& r : runs)
            if (r.load() != 1) return 5;
          return threads_of_process() == threads ? 0 : 6;
        }) == 0);
}

TEST_CASE("kernel workers: callers that run at once each get all of their tasks done",
          "[workers]") {
  CHECK(in_child([] {
          std::vector<std::thread> callers;
          std::atomic<int> wrong{0};
          for (int c = 0; c < 4; ++c)
            callers.emplace_back([&] {
              for (int round = 0; round < 50; ++round) {
                std::vector<std::atomic<int>> runs(8);
                kernel_workers::shared().run(8, [&](unsigned i) { runs[i].fetch_add(1); });
                for (const auto& r : runs)
                  if (r.load() != 1) wrong.fetch_add(1);
              }
            });
          for (std::thread& t : callers) t.join();
          return wrong.load() == 0 ? 0 : 1;
        }) == 0);
}

TEST_CASE("kernel workers: a fork()ed child makes its own", "[workers]") {
#ifdef NUMAMOVE_DETAIL_THREAD_SANITIZER
  WARN("SKIPPED (ThreadSanitizer does not support starting threads after a multi-threaded fork)");
  return;
#endif
  CHECK(in_child([] {
          run_together(together());  // this process has workers
          // The grandchild would wait forever on threads it does not have.
          return in_child([] { return run_together(together()).size() == together() ? 0 : 1; });
        }) == 0);
}
