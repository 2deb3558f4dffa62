// detail/fault_handler.hpp: faults in registered ranges go to their callbacks, everything else
// to the handler that was there before, and unregistering waits for running callbacks.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#define NUMAMOVE_PUBLIC_INCLUDE  // this test looks at an internal piece
#include <numamove/detail/linux/fault_handler.hpp>

#include "support/catch.hpp"
#include "support/child.hpp"
#include "support/pages.hpp"

using numamove::detail::register_fault_range;
using numamove::detail::unregister_fault_range;
using numamove_test::page;

namespace {

void* page_of(void* address) {
  return reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(address) / page() * page());
}

struct callback_log {
  std::atomic<int> calls{0};
  std::atomic<bool> last_write{false};
  bool resolve = true;
  std::atomic<bool> block{false};
  std::atomic<bool> entered{false};
};

bool unprotect_page(void* address, bool is_write, void* context) noexcept {
  auto& log = *static_cast<callback_log*>(context);
  log.calls.fetch_add(1);
  log.last_write.store(is_write);
  log.entered.store(true);
  while (log.block.load()) ::sched_yield();
  if (!log.resolve) return false;
  return ::mprotect(page_of(address), page(), PROT_READ | PROT_WRITE) == 0;
}

std::atomic<int> previous_calls{0};
void previous_handler(int, siginfo_t* info, void*) {
  previous_calls.fetch_add(1);
  ::mprotect(page_of(info->si_addr), page(), PROT_READ | PROT_WRITE);
}

// Installs previous_handler for SIGSEGV for the scope; restores what was there.
struct previous_handler_scope {
  previous_handler_scope() {
    struct sigaction mine {};
    mine.sa_sigaction = &previous_handler;
    mine.sa_flags = SA_SIGINFO;
    sigemptyset(&mine.sa_mask);
    ::sigaction(SIGSEGV, &mine, &saved);
    previous_calls.store(0);
  }
  ~previous_handler_scope() { ::sigaction(SIGSEGV, &saved, nullptr); }
  previous_handler_scope(const previous_handler_scope&) = delete;
  previous_handler_scope& operator=(const previous_handler_scope&) = delete;
  struct sigaction saved {};
};

char* fresh_page(int prot) {
  return static_cast<char*>(::mmap(nullptr, page(), prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
}

}  // namespace

TEST_CASE("fault handler: a fault in a registered range goes to its callback",
          "[userspace][fault_handler]") {
  callback_log log;
  char* p = fresh_page(PROT_READ);
  const int id = register_fault_range(p, page(), &unprotect_page, &log);
  REQUIRE(id >= 0);
  p[7] = 'a';  // resolved by the callback, then retried
  CHECK(p[7] == 'a');
  CHECK(log.calls == 1);
  CHECK(log.last_write);
  REQUIRE(::mprotect(p, page(), PROT_NONE) == 0);
  CHECK(*reinterpret_cast<volatile char*>(p + 7) == 'a');
  CHECK(log.calls == 2);
  CHECK_FALSE(log.last_write);
  unregister_fault_range(id);
  ::munmap(p, page());
}

TEST_CASE("fault handler: declined faults and faults elsewhere go to the previous handler",
          "[userspace][fault_handler]") {
  previous_handler_scope previous;
  callback_log log;
  log.resolve = false;
  char* inside = fresh_page(PROT_READ);
  char* outside = fresh_page(PROT_READ);
  const int id = register_fault_range(inside, page(), &unprotect_page, &log);
  REQUIRE(id >= 0);
  // (A fault at an address that a range unregistered lately covered is retried once first,
  // so the callback may be asked twice: fresh_page may return an address an earlier test used.)
  inside[1] = 'i';
  CHECK(inside[1] == 'i');
  const int asked = log.calls;
  CHECK(asked >= 1);
  CHECK(previous_calls == 1);
  outside[1] = 'o';
  CHECK(outside[1] == 'o');
  CHECK(log.calls == asked);
  CHECK(previous_calls == 2);
  unregister_fault_range(id);
  REQUIRE(::mprotect(inside, page(), PROT_READ) == 0);
  inside[2] =
      'j';  // no longer routed to the callback: retried once (just unregistered), then passed on
  CHECK(log.calls == asked);
  CHECK(previous_calls == 3);
  ::munmap(inside, page());
  ::munmap(outside, page());
}

TEST_CASE("fault handler: a handler installed later is chained to by the next registration",
          "[userspace][fault_handler]") {
  callback_log log;
  char* p = fresh_page(PROT_READ);
  unregister_fault_range(
      register_fault_range(p, page(), &unprotect_page, &log));  // ours is installed
  previous_handler_scope replaced;                              // the program replaces it
  const int id = register_fault_range(p, page(), &unprotect_page, &log);
  REQUIRE(id >= 0);
  char* outside = fresh_page(PROT_READ);
  outside[0] = 1;
  CHECK(previous_calls == 1);
  p[0] = 1;
  CHECK(log.calls == 1);
  CHECK(previous_calls == 1);
  unregister_fault_range(id);
  ::munmap(p, page());
  ::munmap(outside, page());
}

TEST_CASE("fault handler: with no handler before it, a declined fault kills as SIGSEGV does",
          "[userspace][fault_handler]") {
  const int code = numamove_test::in_child([] {
    ::signal(SIGSEGV, SIG_DFL);
    static callback_log log;
    log.resolve = false;
    char* p = fresh_page(PROT_READ);
    if (register_fault_range(p, page(), &unprotect_page, &log) < 0) return 90;
    p[0] = 1;
    return 91;
  });
  CHECK(code == 128 + SIGSEGV);
}

TEST_CASE("fault handler: bad ranges are EINVAL, a full table is ENOSPC",
          "[userspace][fault_handler][errors]") {
  callback_log log;
  char* p = fresh_page(PROT_READ | PROT_WRITE);
  errno = 0;
  CHECK(register_fault_range(p, page(), nullptr, &log) == -1);
  CHECK(errno == EINVAL);
  errno = 0;
  CHECK(register_fault_range(p, 0, &unprotect_page, &log) == -1);
  CHECK(errno == EINVAL);
  errno = 0;
  CHECK(register_fault_range(reinterpret_cast<void*>(UINTPTR_MAX - 10), 100, &unprotect_page,
                             &log) == -1);
  CHECK(errno == EINVAL);
  std::vector<int> ids;
  for (int i = 0; i < numamove::detail::fault_routing::capacity + 1; ++i) {
    const int id = register_fault_range(p, page(), &unprotect_page, &log);
    if (id < 0) {
      CHECK(errno == ENOSPC);
      break;
    }
    ids.push_back(id);
  }
  CHECK(ids.size() <= static_cast<std::size_t>(numamove::detail::fault_routing::capacity));
  CHECK(ids.size() >= static_cast<std::size_t>(numamove::detail::fault_routing::capacity) - 4);
  for (const int id : ids) unregister_fault_range(id);
  unregister_fault_range(-1);  // ignored
  unregister_fault_range(100000);
  const int again = register_fault_range(p, page(), &unprotect_page, &log);
  CHECK(again >= 0);
  unregister_fault_range(again);
  ::munmap(p, page());
}

TEST_CASE("fault handler: unregistering waits until no handler runs the callback",
          "[userspace][fault_handler]") {
  callback_log log;
  log.block = true;
  char* p = fresh_page(PROT_READ);
  const int id = register_fault_range(p, page(), &unprotect_page, &log);
  REQUIRE(id >= 0);
  std::thread writer([&] { p[0] = 1; });
  while (!log.entered.load()) std::this_thread::yield();
  std::atomic<bool> returned{false};
  std::thread unregistering([&] {
    unregister_fault_range(id);
    returned.store(true);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_FALSE(returned.load());
  log.block = false;
  writer.join();
  unregistering.join();
  CHECK(returned.load());
  CHECK(p[0] == 1);
  ::munmap(p, page());
}
