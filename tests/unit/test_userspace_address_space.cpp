// The userspace path under a program that does not hold still: another thread unmaps, maps,
// protects or drops part of the range while a forced migrate() runs, two migrate() calls cover
// the same range at once, a program's SIGSEGV handler leaves by siglongjmp. Whatever the other
// threads did stands afterwards (never undone, never resurrected), no write is lost, and the
// process lives. The races are repeated with the other thread's action at random moments over
// the length of a call; docs/userspace.md, "Concurrent changes to the address space", says how
// often each failed before the fence. Also run in the NUMA guests ([address-space]) and under
// ThreadSanitizer.
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#define NUMAMOVE_PUBLIC_INCLUDE  // this test looks at an internal piece
#include <numamove/detail/sanitizers.hpp>
#include <numamove/numamove.hpp>

#include "support/catch.hpp"
#include "support/child.hpp"
#include "support/pages.hpp"
#include "test_userspace_support.hpp"

using numamove_test::home;
using numamove_test::page;

namespace {

numamove::migrate_options forced_userspace() {
  numamove::migrate_options options;
  options.path = numamove::backend::userspace;
  options.force = true;
  return options;
}

/// The permissions /proc/self/maps gives the page at `address` ("rw-p"), "" where nothing is
/// mapped.
std::string perms_at(const void* address) {
  const auto at = reinterpret_cast<std::uintptr_t>(address);
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    unsigned long long start = 0, end = 0;
    char perms[8] = {};
    if (std::sscanf(line.c_str(), "%llx-%llx %7s", &start, &end, perms) == 3 && at >= start &&
        at < end)
      return perms;
  }
  return "";
}

/// Page i of a pattern family: every 8-byte word says (salt, page).
void fill(char* first, std::size_t pages, std::uint32_t salt, std::size_t index_base = 0) {
  for (std::size_t i = 0; i < pages; ++i) {
    const std::uint64_t word = static_cast<std::uint64_t>(salt) << 32 | (index_base + i);
    auto* p = reinterpret_cast<std::uint64_t*>(first + i * page());
    for (std::size_t w = 0; w < page() / 8; ++w) p[w] = word;
  }
}

/// The first page in [0, pages) that does not hold its pattern, or `pages`.
std::size_t first_bad(const char* first, std::size_t pages, std::uint32_t salt,
                      std::size_t index_base = 0) {
  for (std::size_t i = 0; i < pages; ++i) {
    const std::uint64_t word = static_cast<std::uint64_t>(salt) << 32 | (index_base + i);
    const auto* p = reinterpret_cast<const std::uint64_t*>(first + i * page());
    for (std::size_t w = 0; w < page() / 8; ++w)
      if (p[w] != word) return i;
  }
  return pages;
}

bool all_zero(const char* first, std::size_t bytes) {
  for (std::size_t i = 0; i < bytes; ++i)
    if (first[i] != 0) return false;
  return true;
}

// The range: 16 MiB, of which another thread changes the middle quarter [4 MiB, 8 MiB).
constexpr std::size_t range_pages = 4096;
constexpr std::size_t changed_first = 1024;
constexpr std::size_t changed_pages = 1024;
// Rounds of each race: NUMAMOVE_RACE_ROUNDS, default 25 (the guests, emulated, take fewer).
const int rounds = [] {
  const char* text = std::getenv("NUMAMOVE_RACE_ROUNDS");
  return text != nullptr && std::atoi(text) > 0 ? std::atoi(text) : 25;
}();

/// The range a race works on (range_pages pages, read-write, private). Where mmap(NULL) puts it,
/// a hole the other thread opens is the first gap a new small mapping takes, which is how these
/// tests catch numamove mapping its own memory there. Under AddressSanitizer it lies below a
/// wide gap instead: the sanitizer's allocator also maps with mmap(NULL), and a block of it in
/// the hole would be replaced or unmapped by the test itself.
struct race_range {
  race_range() {
#ifdef NUMAMOVE_DETAIL_ADDRESS_SANITIZER
    constexpr std::size_t gap = std::size_t{16} << 30;
    void* probe =
        ::mmap(nullptr, gap + bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    REQUIRE(probe != MAP_FAILED);
    data = static_cast<char*>(::mmap(probe, bytes, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
    REQUIRE(::munmap(static_cast<char*>(probe) + bytes, gap) == 0);
#else
    data = static_cast<char*>(
        ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
#endif
    REQUIRE(data != MAP_FAILED);
  }
  ~race_range() {
    ::munmap(data, bytes);
  }
  race_range(const race_range&) = delete;
  race_range& operator=(const race_range&) = delete;

  char* at_page(std::size_t i) const {
    return data + i * page();
  }

  const std::size_t bytes = range_pages * page();
  char* data = nullptr;
};

/// How long one forced migrate of the range takes here, to spread the other thread's action
/// over it.
std::chrono::microseconds call_length() {
  race_range m;
  fill(m.data, range_pages, 1);
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(numamove::migrate(m.data, m.bytes, home, forced_userspace()));
  const auto took = std::chrono::steady_clock::now() - start;
  return std::max(std::chrono::microseconds(200),
                  std::chrono::duration_cast<std::chrono::microseconds>(took));
}

/// Runs `change` (returns false when it failed) on another thread after a random part of a
/// call's length (from `earliest` of it on), while the calling thread migrates `first` (range_pages
/// pages) with force. Returns the migration's result.
template <class Change>
numamove::migration_result race(char* first, std::chrono::microseconds length, std::mt19937& random,
                                Change change, double earliest = 0) {
  std::uniform_int_distribution<long> delay(
      static_cast<long>(earliest * static_cast<double>(length.count())),
      static_cast<long>(length.count()));
  const auto wait = std::chrono::microseconds(delay(random));
  std::atomic<bool> go{false};
  bool changed = false;
  std::thread other([&] {
    while (!go.load()) {
    }
    std::this_thread::sleep_for(wait);
    changed = change();
  });
  go.store(true);
  numamove::migration_result r =
      numamove::migrate(first, range_pages * page(), home, forced_userspace());
  other.join();
  REQUIRE(changed);
  return r;
}

/// Runs change(k) for k = 0, 1, ... on another thread, from a random part of a call's length
/// until the migration of `first` (range_pages pages, forced) has returned, at least once each
/// round. Returns the migration's result; `last` gets the last k.
template <class Change>
numamove::migration_result race_repeatedly(char* first, std::chrono::microseconds length,
                                           std::mt19937& random, std::uint32_t& last,
                                           Change change) {
  std::uniform_int_distribution<long> delay(0, static_cast<long>(length.count()) / 2);
  const auto wait = std::chrono::microseconds(delay(random));
  std::atomic<bool> go{false};
  std::atomic<bool> returned{false};
  bool failed = false;
  std::thread other([&] {
    while (!go.load()) {
    }
    std::this_thread::sleep_for(wait);
    std::uint32_t k = 0;
    do failed = failed || !change(k);
    while (!returned.load() && ++k != 0);
    last = k;
  });
  go.store(true);
  numamove::migration_result r =
      numamove::migrate(first, range_pages * page(), home, forced_userspace());
  returned.store(true);
  other.join();
  REQUIRE(!failed);
  return r;
}

/// Maps the changed quarter at `changed` anew (MAP_FIXED) and fills it with pattern `salt`.
/// Returns false when mmap failed.
bool map_anew(char* changed, std::uint32_t salt) {
  if (::mmap(changed, changed_pages * page(), PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != changed)
    return false;
  fill(changed, changed_pages, salt);
  return true;
}

/// Every status is the node (moved) or, for the changed pages [first, first + count) (default:
/// the middle quarter), one of `changed_statuses`.
void check_statuses(const numamove::migration_result& r, std::vector<int> changed_statuses,
                    std::size_t first = changed_first, std::size_t count = changed_pages) {
  REQUIRE(r.status.size() == range_pages);
  changed_statuses.push_back(home);
  for (std::size_t i = 0; i < range_pages; ++i) {
    INFO("page " << i << " status " << r.status[i]);
    if (i >= first && i < first + count)
      CHECK(std::find(changed_statuses.begin(), changed_statuses.end(), r.status[i]) !=
            changed_statuses.end());
    else
      CHECK(r.status[i] == home);
  }
}

}  // namespace

TEST_CASE("userspace: another thread's munmap during a call stands", "[userspace][address-space]") {
  const auto length = call_length();
  std::mt19937 random(12);
  for (int round = 0; round < rounds; ++round) {
    INFO("round " << round);
    race_range m;
    char* first = m.data;
    fill(first, range_pages, 2);
    char* changed = first + changed_first * page();
    const numamove::migration_result r =
        race(first, length, random, [&] { return ::munmap(changed, changed_pages * page()) == 0; });
    for (std::size_t i = 0; i < changed_pages; ++i) {
      INFO("unmapped page " << i);
      REQUIRE(perms_at(changed + i * page()).empty());  // not mapped again
    }
    CHECK(first_bad(first, changed_first, 2) == changed_first);
    const std::size_t rest = range_pages - changed_first - changed_pages;
    CHECK(first_bad(changed + changed_pages * page(), rest, 2, changed_first + changed_pages) ==
          rest);
    check_statuses(r, {-EFAULT});
  }
}

// The other thread leaves the hole open for a while between munmap and mmap: numamove's own
// mappings (a worker's stack) must not land there, or the program's MAP_FIXED replaces them.
TEST_CASE("userspace: a mapping another thread puts in place during a call keeps its contents",
          "[userspace][address-space]") {
  const auto length = call_length();
  std::mt19937 random(13);
  for (int round = 0; round < 2 * rounds; ++round) {
    INFO("round " << round);
    race_range m;
    fill(m.data, range_pages, 3);
    char* changed = m.at_page(changed_first);
    std::uint32_t last = 0;
    std::size_t overwritten = 0;  // times the other thread found its data replaced
    const numamove::migration_result r =
        race_repeatedly(m.data, length, random, last, [&](std::uint32_t k) {
          if (k > 0 && first_bad(changed, changed_pages, 100 + k - 1) != changed_pages)
            ++overwritten;
          if (::munmap(changed, changed_pages * page()) != 0) return false;
          std::this_thread::sleep_for(std::chrono::microseconds(100));
          return map_anew(changed, 100 + k);
        });
    INFO("the other thread mapped the quarter anew " << last + 1 << " times");
    CHECK(overwritten == 0);
    CHECK(first_bad(changed, changed_pages, 100 + last) ==
          changed_pages);  // the newest data, not older
    CHECK(first_bad(m.data, changed_first, 3) == changed_first);
    CHECK(perms_at(changed) == "rw-p");
    check_statuses(r, {-EFAULT, -EBUSY, -ENOENT});
  }
}

// A hole in the range when the call starts, which another thread maps during it: mmap(NULL)
// would put numamove's own small mappings (a worker's stack, its control page) into that hole,
// the top of the highest gap that fits, and the program's MAP_FIXED would then replace them.
TEST_CASE(
    "userspace: a mapping another thread puts into a hole of the range during a call keeps its "
    "contents",
    "[userspace][address-space]") {
  const auto length = call_length();
  std::mt19937 random(19);
  for (int round = 0; round < rounds; ++round) {
    INFO("round " << round);
    race_range m;
    fill(m.data, range_pages, 4);
    char* changed = m.at_page(changed_first);
    REQUIRE(::munmap(changed, changed_pages * page()) == 0);
    const numamove::migration_result r =
        race(m.data, length, random, [&] { return map_anew(changed, 200); });
    CHECK(first_bad(changed, changed_pages, 200) == changed_pages);
    CHECK(first_bad(m.data, changed_first, 4) == changed_first);
    CHECK(perms_at(changed) == "rw-p");
    check_statuses(r, {-EFAULT, -EBUSY, -ENOENT});
  }
}

// Pages another thread keeps writing and dropping, queried on the userspace path: no page is
// ever read while absent, so none maps the zero page, and a query must never say -EFAULT. The
// examination reads the pagemap, then asks the kernel where the present pages are; up to Linux
// 6.11 the kernel says -EFAULT for a page dropped in between. The kernel is asked only where
// there are several nodes (or no other way to tell the zero page apart): this fails in the
// guests before the fix, and cannot here.
TEST_CASE("userspace: a page another thread drops during a query is not the zero page",
          "[userspace][address-space]") {
  constexpr std::size_t churned = 1024;
  numamove_test::mapping m(churned);
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      for (std::size_t i = 0; i < churned; ++i) m.data[i * page()] = 1;
      for (std::size_t i = 0; i < churned; ++i) ::madvise(m.at_page(i), page(), MADV_DONTNEED);
    }
  });
  std::vector<void*> addresses(churned);
  for (std::size_t i = 0; i < churned; ++i) addresses[i] = m.at_page(i);
  std::vector<int> status(churned);
  std::size_t zero_pages = 0;
  for (int round = 0; round < 10 * rounds; ++round) {
    REQUIRE(numamove::move_pages(0, churned, addresses.data(), nullptr, status.data(), 0,
                                 numamove::backend::userspace) == 0);
    zero_pages += static_cast<std::size_t>(std::count(status.begin(), status.end(), -EFAULT));
  }
  stop.store(true);
  churn.join();
  CHECK(zero_pages == 0);
}

TEST_CASE("userspace: another thread's mprotect during a call stands",
          "[userspace][address-space]") {
  const auto length = call_length();
  std::mt19937 random(14);
  for (int round = 0; round < rounds; ++round) {
    INFO("round " << round);
    numamove_test::mapping m(range_pages);
    fill(m.data, range_pages, 5);
    char* changed = m.at_page(changed_first);
    const numamove::migration_result r = race(m.data, length, random, [&] {
      return ::mprotect(changed, changed_pages * page(), PROT_READ) == 0;
    });
    for (std::size_t i = 0; i < changed_pages; i += 17) {
      INFO("protected page " << i);
      REQUIRE(perms_at(changed + i * page()) == "r--p");
    }
    REQUIRE(perms_at(changed + (changed_pages - 1) * page()) == "r--p");
    CHECK(perms_at(m.data) == "rw-p");
    CHECK(first_bad(m.data, range_pages, 5) == range_pages);
    check_statuses(r, {-EBUSY});
  }
}

TEST_CASE("userspace: pages another thread drops during a call read zeros",
          "[userspace][address-space]") {
  const auto length = call_length();
  std::mt19937 random(15);
  // One drop of the last three quarters at a random moment of the copying part of the call (its
  // last 40 %: the fresh pages are made first), where a copy taken before the drop could come
  // back. The window is short: before the fence about 1 round in 70 failed, hence the rounds.
  const std::size_t dropped_pages = range_pages - changed_first;
  for (int round = 0; round < 8 * rounds; ++round) {
    INFO("round " << round);
    numamove_test::mapping m(range_pages);
    fill(m.data, range_pages, 6);
    char* dropped = m.at_page(changed_first);
    const numamove::migration_result r = race(
        m.data, length, random,
        [&] { return ::madvise(dropped, dropped_pages * page(), MADV_DONTNEED) == 0; }, 0.6);
    CHECK(all_zero(dropped, dropped_pages * page()));
    CHECK(first_bad(m.data, changed_first, 6) == changed_first);
    check_statuses(r, {-ENOENT}, changed_first, dropped_pages);
  }
}

TEST_CASE("userspace: two calls over the same range at once leave it writable and whole",
          "[userspace][address-space]") {
  numamove_test::mapping m(range_pages);
  fill(m.data, range_pages, 7);
  std::atomic<bool> go{false};
  std::atomic<int> failed{0};
  std::vector<std::thread> movers;
  for (int t = 0; t < 2; ++t)
    movers.emplace_back([&] {
      while (!go.load()) {
      }
      for (int round = 0; round < rounds; ++round)
        if (!numamove::migrate(m.data, m.bytes, home, forced_userspace())) failed.fetch_add(1);
    });
  go.store(true);
  for (std::thread& t : movers) t.join();
  CHECK(failed.load() == 0);
  for (std::size_t i = 0; i < range_pages; i += 31) {
    INFO("page " << i);
    REQUIRE(perms_at(m.at_page(i)) == "rw-p");
  }
  CHECK(first_bad(m.data, range_pages, 7) == range_pages);
  fill(m.data, range_pages, 8);  // every page still takes writes
  CHECK(first_bad(m.data, range_pages, 8) == range_pages);
}

TEST_CASE("userspace: two calls over the same range at once lose no write",
          "[userspace][address-space]") {
  numamove_test::mapping m(range_pages);
  std::memset(m.data, 0, m.bytes);
  std::atomic<bool> stop{false};
  std::uint64_t writes = 0;
  std::thread writer([&] {
    std::uint64_t n = 0;
    for (std::size_t i = 0; !stop.load(std::memory_order_relaxed); ++i, ++n) {
      auto* counter = reinterpret_cast<std::uint64_t*>(m.at_page(i % range_pages));
      *counter = *counter + 1;
    }
    writes = n;
  });
  std::vector<std::thread> movers;
  for (int t = 0; t < 2; ++t)
    movers.emplace_back([&] {
      for (int round = 0; round < rounds; ++round)
        numamove::migrate(m.data, m.bytes, home, forced_userspace());
    });
  for (std::thread& t : movers) t.join();
  stop.store(true);
  writer.join();
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < range_pages; ++i)
    total += *reinterpret_cast<const std::uint64_t*>(m.at_page(i));
  CHECK(total == writes);
}

namespace {

sigjmp_buf escape;
volatile sig_atomic_t caught = 0;

void leave_by_siglongjmp(int) {
  caught = caught + 1;
  siglongjmp(escape, 1);
}

void leave_by_siglongjmp_info(int, siginfo_t*, void*) {
  caught = caught + 1;
  siglongjmp(escape, 1);
}

/// Faults on a PROT_NONE page `times` times, each caught by the program's handler, which leaves
/// by siglongjmp. Returns how many were caught.
int fault_and_escape(volatile char* forbidden, int times) {
  caught = 0;
  // Counted in `caught` (volatile, kept across siglongjmp), not in a local.
  while (caught < times)
    if (sigsetjmp(escape, 1) == 0) *forbidden = 1;
  return caught;
}

/// In a child: the program's handler installed by `install`, a migration (numamove's handler
/// comes in front of it), then the checks; exits 0 when all held, else the number of the check
/// that failed. A death by SIGSEGV is the failure this guards against.
template <class Install>
int child_after_migration(Install install) {
  return numamove_test::in_child([&] {
    install();
    numamove_test::mapping data(64);
    data.touch(0, 64);
    numamove_test::mapping forbidden(1);
    ::mprotect(forbidden.data, page(), PROT_NONE);
    // A range numamove routes faults for (next-touch and the fault routing use this), so that
    // numamove's handler is installed in front of the program's.
    numamove_test::mapping routed(1);
    const int id = numamove::detail::register_fault_range(
        routed.data, page(),
        [](void* address, bool, void*) noexcept {
          const auto page_of = reinterpret_cast<std::uintptr_t>(address) / numamove_test::page() *
                               numamove_test::page();
          return ::mprotect(reinterpret_cast<void*>(page_of), numamove_test::page(),
                            PROT_READ | PROT_WRITE) == 0;
        },
        nullptr);
    if (id < 0) ::_exit(10);
    ::mprotect(routed.data, page(), PROT_NONE);
    if (!numamove::migrate(data.data, data.bytes, home, forced_userspace())) ::_exit(11);
    if (fault_and_escape(forbidden.data, 3) != 3) ::_exit(12);
    // Faults in the routed range still reach numamove's callback after the escapes.
    *reinterpret_cast<volatile char*>(routed.data) = 5;
    if (fault_and_escape(forbidden.data, 2) != 2) ::_exit(13);
    // A writer that left a handler by siglongjmp writes into pages being moved.
    std::atomic<bool> stop{false};
    std::atomic<long> writes{0};
    std::thread writer([&] {
      if (fault_and_escape(forbidden.data, 1) != 1) ::_exit(14);
      for (long n = 0; !stop.load(); ++n) {
        data.data[static_cast<std::size_t>(n) % data.bytes] = static_cast<char>(n);
        writes.store(n + 1);
      }
    });
    while (writes.load() == 0) {
    }
    for (int round = 0; round < 10; ++round)
      if (!numamove::migrate(data.data, data.bytes, home, forced_userspace())) ::_exit(15);
    stop.store(true);
    writer.join();
    numamove::detail::unregister_fault_range(id);
    return 0;
  });
}

}  // namespace

TEST_CASE("userspace: a SIGSEGV handler that leaves by siglongjmp keeps catching faults",
          "[userspace][address-space]") {
  SECTION("installed with signal()") {
    CHECK(child_after_migration([] { ::signal(SIGSEGV, &leave_by_siglongjmp); }) == 0);
  }
  SECTION("installed with SA_SIGINFO") {
    CHECK(child_after_migration([] {
            struct sigaction action {};
            action.sa_sigaction = &leave_by_siglongjmp_info;
            action.sa_flags = SA_SIGINFO;
            sigemptyset(&action.sa_mask);
            ::sigaction(SIGSEGV, &action, nullptr);
          }) == 0);
  }
}

TEST_CASE("userspace: the vsyscall page is no mapping of the process (-EFAULT)",
          "[userspace][address-space]") {
  std::ifstream maps("/proc/self/maps");
  void* vsyscall = nullptr;
  for (std::string line; std::getline(maps, line);)
    if (line.find("[vsyscall]") != std::string::npos)
      vsyscall = reinterpret_cast<void*>(std::stoull(line, nullptr, 16));
  if (vsyscall == nullptr) {
    WARN("SKIPPED (this kernel maps no [vsyscall] page: vsyscall=none)");
    return;
  }
  for (const numamove::backend path :
       {numamove::backend::userspace, numamove::backend::automatic}) {
    INFO("backend " << numamove::to_string(path));
    int status = 1000;
    REQUIRE(numamove::move_pages(0, 1, &vsyscall, nullptr, &status, 0, path) == 0);
    CHECK(status == -EFAULT);
    if (path == numamove::backend::userspace) {
      const int node = home;
      status = 1000;
      REQUIRE(numamove::move_pages(0, 1, &vsyscall, &node, &status, MPOL_MF_MOVE, path) == 0);
      CHECK(status == -EFAULT);
    }
  }
  int status = 1000;
  if (::syscall(SYS_move_pages, 0, 1, &vsyscall, nullptr, &status, 0) == 0)
    CHECK(status == -EFAULT);  // the kernel's answer
}

TEST_CASE("userspace: a shared file mapping whose file was unlinked moves with MOVE_ALL",
          "[userspace][address-space]") {
  if (!numamove::detail::has_cap_sys_nice()) {
    WARN("SKIPPED (MPOL_MF_MOVE_ALL needs CAP_SYS_NICE)");
    return;
  }
  struct statfs where {};
  REQUIRE(::statfs(".", &where) == 0);
  if (where.f_type == 0x01021994 || where.f_type == 0x858458f6) {  // TMPFS_MAGIC, RAMFS_MAGIC
    WARN(
        "SKIPPED (needs a disk file system: the working directory is tmpfs or ramfs, whose pages "
        "are -EINVAL)");
    return;
  }
  char name[] =
      "numamove-unlinked-XXXXXX";  // in the working directory: a disk file system, not tmpfs
  const int fd = ::mkstemp(name);
  REQUIRE(fd >= 0);
  const std::size_t pages = 8;
  REQUIRE(::ftruncate(fd, static_cast<off_t>(pages * page())) == 0);
  char* shared = static_cast<char*>(
      ::mmap(nullptr, pages * page(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  REQUIRE(shared != MAP_FAILED);
  ::close(fd);
  REQUIRE(::unlink(name) == 0);
  fill(shared, pages, 9);
  REQUIRE(::msync(shared, pages * page(), MS_SYNC) == 0);
  std::vector<int> status;
  REQUIRE(numamove_test::force_move(shared, pages, home, status, MPOL_MF_MOVE_ALL) == 0);
  for (std::size_t i = 0; i < pages; ++i) {
    INFO("page " << i);
    // Through /proc/self/map_files (root here); without CAP_SYS_ADMIN the file cannot be
    // reopened and the documented status is -EBUSY.
    CHECK(status[i] == home);
  }
  CHECK(first_bad(shared, pages, 9) == pages);
  ::munmap(shared, pages * page());
}

TEST_CASE("a present page of a PROT_NONE mapping is on its node on both paths and every kernel",
          "[userspace][address-space]") {
  numamove_test::mapping m(2);
  m.touch(0, 2);
  // Where the pages are, asked while they are readable (every kernel answers that).
  const std::vector<int> touched_on = numamove_test::kernel_query(m.data, 2);
  REQUIRE(::mprotect(m.data, m.bytes, PROT_NONE) == 0);
  for (const numamove::backend path :
       {numamove::backend::userspace, numamove::backend::automatic}) {
    INFO("backend " << numamove::to_string(path));
    std::vector<void*> pages{m.at_page(0), m.at_page(1)};
    std::vector<int> status(2, 1000);
    REQUIRE(numamove::move_pages(0, 2, pages.data(), nullptr, status.data(), 0, path) == 0);
    for (std::size_t i = 0; i < 2; ++i) {
      INFO("page " << i);
      if (touched_on[i] >= 0)
        CHECK(status[i] == touched_on[i]);  // the raw query is refused under seccomp
      else
        CHECK(status[i] == home);
    }
  }
  ::mprotect(m.data, m.bytes, PROT_READ | PROT_WRITE);
}
