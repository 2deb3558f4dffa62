// numamove::migrate_async: what migrate() gives for the same call, through a future; requests
// done in order on one mover thread; a fork()ed child with a mover of its own; an exit that
// neither hangs nor crashes; and no write lost, the caller's own included, while pages move.
// Each case runs in a child of its own: the mover stays for the life of its process, and under
// ThreadSanitizer a test process with threads could not start threads in later children.
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <future>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#define NUMAMOVE_PUBLIC_INCLUDE  // this test looks at an internal piece
#include <numamove/capabilities.hpp>
#include <numamove/detail/sanitizers.hpp>
#include <numamove/migrate_async.hpp>
#include <numamove/topology.hpp>

#include "support/catch.hpp"
#include "support/pages.hpp"
#include "support/child.hpp"
#include "support/futures.hpp"

namespace {

using namespace std::chrono_literals;

using numamove_test::await;
using numamove_test::home;
using numamove_test::mapping;
using numamove_test::page;
using numamove_test::threads_of_process;

/// Runs body() (which returns "" or what went wrong) in a fork()ed child; returns what it
/// said, or how it ended otherwise (an exception, a signal, an exit status, no end in 60 s).
template <class Body>
std::string in_child(Body body) {
  int pipe_ends[2];
  if (::pipe(pipe_ends) != 0) return "pipe() failed";
  std::fflush(nullptr);
  const pid_t child = ::fork();
  if (child < 0) return "fork() failed";
  if (child == 0) {
    ::close(pipe_ends[0]);
    std::string said;
    try {
      said = body();
    } catch (const std::exception& e) {
      said = std::string("threw: ") + e.what();
    }
    if (!said.empty() && ::write(pipe_ends[1], said.data(), said.size()) < 0) ::_exit(3);
    ::_exit(0);
  }
  ::close(pipe_ends[1]);
  std::string said;
  pollfd readable{pipe_ends[0], POLLIN, 0};
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  bool ended = false;  // the child closed its end: it has exited, or is exiting
  for (char buffer[256]; !ended && std::chrono::steady_clock::now() < deadline;) {
    if (::poll(&readable, 1, 100) <= 0) continue;
    const ssize_t got = ::read(pipe_ends[0], buffer, sizeof buffer);
    if (got > 0) said.append(buffer, static_cast<std::size_t>(got));
    ended = got <= 0;
  }
  ::close(pipe_ends[0]);
  if (!ended) ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  if (!ended) return said + " (the child did not end within 60 s)";
  if (WIFSIGNALED(status))
    return said + " (killed by signal " + std::to_string(WTERMSIG(status)) + ")";
  if (WEXITSTATUS(status) != 0)
    return said + " (exit status " + std::to_string(WEXITSTATUS(status)) + ")";
  return said;
}

/// "" when the two results are the same, field by field (the time aside), else the first
/// difference.
std::string differences(const numamove::migration_result& async,
                        const numamove::migration_result& sync) {
  std::ostringstream out;
  if (async.status != sync.status) out << "status differs; ";
  if (async.first_page != sync.first_page) out << "first_page differs; ";
  if (async.moved != sync.moved) out << "moved " << async.moved << " vs " << sync.moved << "; ";
  if (async.already_there != sync.already_there) out << "already_there differs; ";
  if (async.not_present != sync.not_present) out << "not_present differs; ";
  if (async.failed != sync.failed) out << "failed differs; ";
  if (async.node_unknown != sync.node_unknown) out << "node_unknown differs; ";
  if (async.error != sync.error)
    out << "error " << async.error.message() << " vs " << sync.error.message() << "; ";
  if (async.used != sync.used) out << "used differs; ";
  if (async.bytes != sync.bytes) out << "bytes differs; ";
  return out.str();
}

}  // namespace

TEST_CASE("migrate_async: the future holds what migrate() returns for the same call", "[async]") {
  CHECK(in_child([]() -> std::string {
          mapping m(4);
          std::memset(m.data, 7, 2 * page());  // pages 2 and 3 are never touched
          // On home first: the move compared first must leave the pages where they were.
          if (!numamove::migrate(m.data, m.bytes, home)) return "could not start on home";
          std::string wrong;
          const auto compare = [&](const char* what, auto* data, std::size_t count, int node,
                                   const numamove::migrate_options& options) {
            const std::string d =
                differences(await(numamove::migrate_async(data, count, node, options)),
                            numamove::migrate(data, count, node, options));
            if (!d.empty()) wrong += std::string(what) + ": " + d;
          };
          numamove::migrate_options options;
          compare("home", m.data, m.bytes, home, options);
          for (const int bad : {-1, numamove::topology::system().nodes().back() + 1, 4096})
            compare("ENODEV", m.data, m.bytes, bad, options);
          compare("nothing", m.data, 0, home, options);
          compare("no mapping", reinterpret_cast<char*>(3 * page()), 2 * page(), home, options);
          compare("wraps", reinterpret_cast<std::uint64_t*>(UINTPTR_MAX - 64), 1000, home, options);
          options.flags = MPOL_MF_MOVE | 8;
          compare("EINVAL flags", m.data, m.bytes, home, options);
          options = {};
          options.path = numamove::backend::kernel;
          options.force = true;
          compare("EINVAL force", m.data, m.bytes, home, options);
          options.path = numamove::backend::userspace;
          compare("forced move", m.data, m.bytes, home, options);

          // The error codes themselves, and the data left as it was, at the same addresses.
          const numamove::migration_result bad_node = numamove::migrate_async(m.data, 1, -1).get();
          if (bad_node.error != std::errc::no_such_device) wrong += "bad node is not ENODEV; ";
          const numamove::migration_result wrapped =
              numamove::migrate_async(reinterpret_cast<std::uint64_t*>(4096), SIZE_MAX / 4, home)
                  .get();
          if (wrapped.error != std::errc::bad_address) wrong += "a wrapping range is not EFAULT; ";
          const numamove::migration_result moved =
              await(numamove::migrate_async(m.data, m.bytes, home, options));
          if (moved.moved != 2 || moved.not_present != 2 || moved.first_page != m.data)
            wrong += "forced move: moved " + std::to_string(moved.moved) + ", not present " +
                     std::to_string(moved.not_present) + "; ";
          for (std::size_t i = 0; i < 2 * page(); ++i)
            if (m.data[i] != 7) return wrong + "contents changed";
          std::vector<double> v(5000, 1.5);
          const double* before = v.data();
          wrong += differences(await(numamove::migrate_async(v, home, options)),
                               numamove::migrate(v, home, options));
          if (v.data() != before || v[4999] != 1.5) wrong += "vector changed; ";
          return wrong;
        }) == "");
}

TEST_CASE("migrate_async: requests are done in order on one thread, started once", "[async]") {
  CHECK(in_child([]() -> std::string {
          // A forked child probes its capabilities again, at its first migrate, on a thread it
          // joins; a joined thread may still be listed in /proc/self/task for a moment (CI saw
          // one counted). Probe first, and wait until only this thread is left.
          numamove::capabilities::of_this_process();
          for (int i = 0; i < 500 && threads_of_process() != 1; ++i)
            std::this_thread::sleep_for(10ms);
          numamove::detail::async_mover& mover = numamove::detail::async_mover::shared();
          const pid_t caller = numamove::detail::this_thread_id();
          std::vector<int> order;  // written by the mover only; read once every future is ready
          std::vector<pid_t> ran_on;
          std::vector<std::future<numamove::migration_result>> done;
          done.push_back(mover.submit([] { return numamove::migration_result{}; }));
          done.back().wait();
          const std::size_t threads =
              threads_of_process();  // the mover's, started by the first request
          for (int i = 0; i < 200; ++i)
            done.push_back(mover.submit([&order, &ran_on, i] {
              order.push_back(i);
              ran_on.push_back(numamove::detail::this_thread_id());
              return numamove::migration_result{};
            }));
          done.back().wait();
          for (auto& f : done)
            if (f.wait_for(0s) != std::future_status::ready)
              return "an earlier request is not done";
          for (int i = 0; i < 200; ++i)
            if (order[static_cast<std::size_t>(i)] != i)
              return "out of order at " + std::to_string(i);
          for (const pid_t tid : ran_on)
            if (tid != ran_on.front() || tid == caller) return "not all on the one mover";
          if (threads_of_process() != threads) return "a thread more";
          for (int i = 0; i < 20; ++i) numamove::migrate_async(&i, 1, home).get();
          return threads_of_process() == threads ? "" : "a later request started a thread";
        }) == "");
}

TEST_CASE("migrate_async returns before the move is done; a destroyed future does not wait",
          "[async]") {
  CHECK(in_child([]() -> std::string {
          std::promise<void> gate;
          std::shared_future<void> opened = gate.get_future().share();
          numamove::detail::async_mover& mover = numamove::detail::async_mover::shared();
          std::future<numamove::migration_result> blocked = mover.submit([opened] {
            opened.wait();
            return numamove::migration_result{};
          });
          int x = 1;
          std::future<numamove::migration_result> queued = numamove::migrate_async(&x, 1, home);
          {
            std::future<numamove::migration_result> dropped = numamove::migrate_async(&x, 1, home);
          }
          if (blocked.wait_for(50ms) != std::future_status::timeout)
            return "ready before its move ran";
          if (queued.wait_for(0s) != std::future_status::timeout)
            return "a later request ran first";
          gate.set_value();
          const numamove::migration_result r = queued.get();
          return r && r.status == std::vector<int>{home} ? "" : "the queued request failed";
        }) == "");
}

TEST_CASE("migrate_async: an exit with requests queued neither hangs nor crashes", "[async]") {
  CHECK(in_child([]() -> std::string {
          static mapping m(256);  // made before the mover, so unmapped only once it has stopped
          std::memset(m.data, 1, m.bytes);
          numamove::migrate_options options;
          options.path = numamove::backend::userspace;
          options.force = true;
          std::vector<std::future<numamove::migration_result>> pending;
          for (int i = 0; i < 20; ++i)
            pending.push_back(numamove::migrate_async(m.data, m.bytes, home, options));
          std::exit(0);  // the in_child helper fails the case on a hang, a signal or another status
        }) == "");
}

TEST_CASE("migrate_async: a fork()ed child has a mover of its own", "[async]") {
#ifdef NUMAMOVE_DETAIL_THREAD_SANITIZER
  WARN("SKIPPED (ThreadSanitizer does not support starting threads after a multi-threaded fork)");
  return;
#endif
  CHECK(in_child([]() -> std::string {
          int x = 1;
          if (!numamove::migrate_async(&x, 1, home).get()) return "the parent's request failed";
          // The grandchild has no thread of its parent's: it must start its own mover.
          return in_child([&]() -> std::string {
            std::future<numamove::migration_result> f = numamove::migrate_async(&x, 1, home);
            if (f.wait_for(10s) != std::future_status::ready)
              return "the child's request never ran";
            return f.get() ? "" : "the child's request failed";
          });
        }) == "");
}

TEST_CASE("migrate_async: writers, the caller among them, lose no increment while pages move",
          "[async][concurrency]") {
  // Writer w increments its own counter in every page in turn (one writer per counter: no data
  // race); the caller, writer `writers`, writes while its own requests are queued and running.
  CHECK(in_child([]() -> std::string {
          constexpr std::size_t pages = 64;
          constexpr unsigned writers = 3;
          mapping m(pages);
          std::memset(m.data, 0, pages * page());
          const auto counter = [&](std::size_t p, unsigned w) {
            return reinterpret_cast<std::uint64_t*>(m.data + p * page() + w * 64);
          };
          std::atomic<bool> stop{false};
          std::atomic<unsigned> running{0};
          std::vector<std::uint64_t> written(writers + 1, 0);
          std::vector<std::thread> threads;
          for (unsigned w = 0; w < writers; ++w)
            threads.emplace_back([&, w] {
              running.fetch_add(1);
              std::uint64_t n = 0;
              for (std::size_t i = w; !stop.load(std::memory_order_relaxed); ++i, ++n)
                ++*counter(i % pages, w);
              written[w] = n;
            });
          while (running.load() != writers) std::this_thread::yield();
          numamove::migrate_options options;
          options.path = numamove::backend::userspace;
          options.force = true;
          std::string wrong;
          for (int round = 0; round < 30 && wrong.empty(); ++round) {
            std::future<numamove::migration_result> first =
                numamove::migrate_async(m.data, pages * page(), home, options);
            std::future<numamove::migration_result> second =
                numamove::migrate_async(m.data, pages * page(), home, options);
            for (std::size_t i = 0; second.wait_for(0s) != std::future_status::ready;
                 ++i, ++written[writers])
              ++*counter(i % pages, writers);
            for (numamove::migration_result r : {await(std::move(first)), await(std::move(second))})
              if (!r || r.moved != pages)
                wrong = "round " + std::to_string(round) + ": moved " + std::to_string(r.moved);
          }
          stop.store(true);
          for (std::thread& t : threads) t.join();
          for (unsigned w = 0; w <= writers; ++w) {
            std::uint64_t sum = 0;
            for (std::size_t p = 0; p < pages; ++p) sum += *counter(p, w);
            if (sum != written[w])
              wrong += "writer " + std::to_string(w) + " lost " + std::to_string(written[w] - sum) +
                       " increments; ";
          }
          return wrong;
        }) == "");
}

TEST_CASE("migrate_async moves pages between nodes as migrate() does; writers lose nothing",
          "[async][multinode]") {
  const std::vector<int> nodes = numamove::topology::system().nodes();
  REQUIRE(nodes.size() >= 2);
  CHECK(in_child([&]() -> std::string {
          constexpr std::size_t pages = 64;
          mapping m(pages);
          std::memset(m.data, 0, pages * page());
          const auto counter = [&](std::size_t p) {
            return reinterpret_cast<std::uint64_t*>(m.data + p * page());
          };
          if (!numamove::migrate(m.data, pages * page(), nodes[0]))
            return "the pages could not start on the first node";
          std::string wrong;
          std::uint64_t written = 0;
          for (int round = 0; round < 10 && wrong.empty(); ++round) {
            const int to = nodes[static_cast<std::size_t>(round % 2 == 0 ? 1 : 0)];
            std::future<numamove::migration_result> moving =
                numamove::migrate_async(m.data, pages * page(), to);
            for (std::size_t i = 0; moving.wait_for(0s) != std::future_status::ready;
                 ++i, ++written)
              ++*counter(i % pages);
            const numamove::migration_result r = moving.get();
            if (!r || r.moved != pages || r.status != std::vector<int>(pages, to))
              wrong = "round " + std::to_string(round) + ": moved " + std::to_string(r.moved);
            if (numamove::locate(m.data, pages * page()) != std::vector<int>(pages, to))
              wrong += " not on the target";
            wrong += differences(numamove::migrate_async(m.data, pages * page(), to).get(),
                                 numamove::migrate(m.data, pages * page(), to));
          }
          std::uint64_t sum = 0;
          for (std::size_t p = 0; p < pages; ++p) sum += *counter(p);
          if (sum != written) wrong += "lost " + std::to_string(written - sum) + " increments";
          return wrong;
        }) == "");
}
