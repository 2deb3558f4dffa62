// The test apps' own check of where their memory is, with the kernel's answers only: the
// thread's memory policy (get_mempolicy), each page's node (a move_pages query, or
// /proc/self/numa_maps where the Docker-like filter refuses the query), the affinity mask and
// /sys. No numamove code: the apps stand for programs that do not know numamove.
//
// NUMAMOVE_TEST_EXPECT says what the hooks should have done: none (the policy left at the
// default), local (policy and pages on the rank's node, in NUMAMOVE_TEST_MODE bind|preferred),
// spread (local, and different nodes on different ranks while there are enough nodes),
// interleave (the policy interleaves over the nodes of the rank's CPUs).
#include <mpi.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

int failures = 0;

std::string expectation() {
  const char* e = std::getenv("NUMAMOVE_TEST_EXPECT");
  return e ? e : "local";
}

int world_rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

std::vector<int> id_list(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  std::getline(in, text);
  std::vector<int> ids;
  std::istringstream parts(text);
  for (std::string part; std::getline(parts, part, ',');) {
    if (part.empty()) continue;
    const auto dash = part.find('-');
    const int first = std::atoi(part.c_str());
    const int last = dash == std::string::npos ? first : std::atoi(part.c_str() + dash + 1);
    for (int id = first; id <= last; ++id) ids.push_back(id);
  }
  return ids;
}

/// The node with memory whose /sys cpulist holds `cpu`, or -1.
int node_of_cpu(int cpu) {
  for (const int node : id_list("/sys/devices/system/node/has_memory")) {
    const std::vector<int> cpus =
        id_list("/sys/devices/system/node/node" + std::to_string(node) + "/cpulist");
    if (std::find(cpus.begin(), cpus.end(), cpu) != cpus.end()) return node;
  }
  return -1;
}

std::vector<int> my_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  sched_getaffinity(0, sizeof set, &set);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

std::set<int> nodes_of_my_cpus() {
  std::set<int> nodes;
  for (const int c : my_cpus())
    if (node_of_cpu(c) >= 0) nodes.insert(node_of_cpu(c));
  return nodes;
}

struct policy_seen {
  int mode = -1;
  std::set<int> nodes;
};

policy_seen thread_policy() {
  policy_seen p;
  unsigned long mask[16] = {};
  if (syscall(SYS_get_mempolicy, &p.mode, mask, 16 * 8 * sizeof(unsigned long), nullptr, 0) != 0)
    return p;
  for (int n = 0; n < 16 * 64; ++n)
    if (mask[n / 64] >> (n % 64) & 1) p.nodes.insert(n);
  return p;
}

/// Bytes of [data, data + bytes) per node: one move_pages query, or numa_maps (the mapping's
/// counts) when the query is refused.
std::map<int, long> where(const void* data, long bytes, bool& from_numa_maps) {
  const long page = sysconf(_SC_PAGESIZE);
  const auto first = reinterpret_cast<std::uintptr_t>(data) / static_cast<std::uintptr_t>(page) *
                     static_cast<std::uintptr_t>(page);
  const auto count = static_cast<std::size_t>((reinterpret_cast<std::uintptr_t>(data) +
                                               static_cast<std::uintptr_t>(bytes) - first +
                                               static_cast<std::uintptr_t>(page) - 1) /
                                              static_cast<std::uintptr_t>(page));
  std::vector<void*> pages(count);
  std::vector<int> status(count, -1);
  for (std::size_t i = 0; i < count; ++i)
    pages[i] = reinterpret_cast<void*>(first + i * static_cast<std::uintptr_t>(page));
  std::map<int, long> on;
  from_numa_maps = false;
  if (syscall(SYS_move_pages, 0, count, pages.data(), nullptr, status.data(), 0) == 0) {
    for (const int s : status) on[s] += page;
    return on;
  }
  from_numa_maps = true;
  // The kernel's per-mapping counts: the numa_maps line of the mapping that holds the data.
  std::uintptr_t start = 0;
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    unsigned long from = 0, to = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &from, &to) == 2 && from <= first && first < to)
      start = from;
  }
  std::ifstream numa_maps("/proc/self/numa_maps");
  for (std::string line; std::getline(numa_maps, line);) {
    if (std::strtoull(line.c_str(), nullptr, 16) != start) continue;
    std::istringstream words(line);
    for (std::string w; words >> w;) {
      int node = 0;
      long n = 0;
      if (std::sscanf(w.c_str(), "N%d=%ld", &node, &n) == 2) on[node] += n * page;
    }
  }
  return on;
}

std::string describe(const std::map<int, long>& on) {
  std::string text;
  for (const auto& [node, bytes] : on)
    text += " " + std::to_string(node) + ":" + std::to_string(bytes / 1024) + "KiB";
  return text;
}

void fail(const std::string& why) {
  ++failures;
  std::printf("numamove-test: rank %d FAIL %s\n", world_rank(), why.c_str());
}

}  // namespace

extern "C" {

/// Checks the calling thread's policy and where `data` is, against NUMAMOVE_TEST_EXPECT.
/// Prints one line; returns the failures so far.
int numamove_test_check(const char* what, const void* data, long bytes) {
  const std::string expect = expectation();
  const policy_seen p = thread_policy();
  bool numa_maps = false;
  const std::map<int, long> on = where(data, bytes, numa_maps);
  const std::set<int> mine = nodes_of_my_cpus();
  std::printf(
      "numamove-test: rank %d %s: mode %d policy nodes%s cpus' nodes%s pages%s%s\n", world_rank(),
      what, p.mode,
      [&] {
        std::string s;
        for (int n : p.nodes) s += " " + std::to_string(n);
        return s;
      }()
          .c_str(),
      [&] {
        std::string s;
        for (int n : mine) s += " " + std::to_string(n);
        return s;
      }()
          .c_str(),
      describe(on).c_str(), numa_maps ? " (numa_maps)" : "");
  if (expect == "none") {
    if (p.mode != 0)
      fail(std::string(what) + ": the policy changed (mode " + std::to_string(p.mode) + ")");
    return failures;
  }
  if (expect == "interleave") {
    if (p.mode != 3 || p.nodes != mine)
      fail(std::string(what) + ": not interleaved over the nodes of the CPUs");
    return failures;
  }
  const char* mode = std::getenv("NUMAMOVE_TEST_MODE");
  const int wanted = mode != nullptr && std::strcmp(mode, "preferred") == 0 ? 1 : 2;
  if (p.mode != wanted || p.nodes.size() != 1) {
    fail(std::string(what) + ": policy mode " + std::to_string(p.mode) + " with " +
         std::to_string(p.nodes.size()) + " nodes, expected mode " + std::to_string(wanted) +
         " on one node");
    return failures;
  }
  const int node = *p.nodes.begin();
  if (mine.count(node) == 0)
    fail(std::string(what) + ": policy node " + std::to_string(node) +
         " is not a node of the rank's CPUs");
  for (const auto& [n, b] : on)
    if (n != node)
      fail(std::string(what) + ": " + std::to_string(b) + " bytes on " + std::to_string(n) +
           ", not on " + std::to_string(node));
  if (expect == "spread") {
    int ranks = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    std::vector<int> nodes(static_cast<std::size_t>(ranks));
    MPI_Allgather(&node, 1, MPI_INT, nodes.data(), 1, MPI_INT, MPI_COMM_WORLD);
    const auto with_memory = id_list("/sys/devices/system/node/has_memory").size();
    const std::set<int> distinct(nodes.begin(), nodes.end());
    if (distinct.size() != std::min(with_memory, static_cast<std::size_t>(ranks)))
      fail(std::string(what) + ": the ranks' nodes are not spread over the nodes");
    if (mine.size() != 1) fail(std::string(what) + ": the unbound rank was not pinned to its node");
  }
  return failures;
}

/// Collective: rank 0 has written the whole window; each rank maps and queries the segment of
/// the next rank, whose node it learns from that rank, and checks that the segment's pages
/// holding only that rank's bytes are on its node. Returns the failures so far.
int numamove_test_check_window(MPI_Fint fortran_win) {
  const MPI_Win win = MPI_Win_f2c(fortran_win);
  int rank = 0;
  int ranks = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const policy_seen p = thread_policy();
  const int node = expectation() == "none" || p.nodes.size() != 1 ? -1 : *p.nodes.begin();
  std::vector<int> nodes(static_cast<std::size_t>(ranks));
  MPI_Allgather(&node, 1, MPI_INT, nodes.data(), 1, MPI_INT, MPI_COMM_WORLD);
  const int next = (rank + 1) % ranks;
  MPI_Aint size = 0;
  int unit = 0;
  char* base = nullptr;
  MPI_Win_shared_query(win, next, &size, &unit, &base);
  const long page = sysconf(_SC_PAGESIZE);
  // The whole pages of its segment: the boundary pages may belong to a neighbour.
  const auto begin =
      (reinterpret_cast<std::uintptr_t>(base) + static_cast<std::uintptr_t>(page) - 1) /
      static_cast<std::uintptr_t>(page) * static_cast<std::uintptr_t>(page);
  const auto end = (reinterpret_cast<std::uintptr_t>(base) + static_cast<std::uintptr_t>(size)) /
                   static_cast<std::uintptr_t>(page) * static_cast<std::uintptr_t>(page);
  long sum = 0;
  for (std::uintptr_t at = begin; at < end; at += static_cast<std::uintptr_t>(page))
    sum += *reinterpret_cast<volatile char*>(at);
  bool numa_maps = false;
  const std::map<int, long> on =
      end > begin ? where(reinterpret_cast<void*>(begin), static_cast<long>(end - begin), numa_maps)
                  : std::map<int, long>{};
  std::printf("numamove-test: rank %d window segment of rank %d (node %d): pages%s%s (sum %ld)\n",
              rank, next, nodes[static_cast<std::size_t>(next)], describe(on).c_str(),
              numa_maps ? " (numa_maps)" : "", sum);
  if (nodes[static_cast<std::size_t>(next)] >= 0 && !numa_maps)
    for (const auto& [n, b] : on)
      if (n != nodes[static_cast<std::size_t>(next)])
        fail("window: " + std::to_string(b) + " bytes of rank " + std::to_string(next) +
             "'s segment on node " + std::to_string(n));
  if (end <= begin)
    fail("window: the segment of rank " + std::to_string(next) + " has no whole page");
  MPI_Barrier(MPI_COMM_WORLD);
  return failures;
}

/// Writes [data, data + bytes) from the calling thread bound, for the while, to a node with
/// memory that is not one of its CPUs' nodes (when there is one): memory a program touched
/// before MPI_Init, somewhere the hooks must move it from.
void numamove_test_touch_elsewhere(void* data, long bytes) {
  const std::set<int> mine = nodes_of_my_cpus();
  int elsewhere = -1;
  for (const int node : id_list("/sys/devices/system/node/has_memory"))
    if (mine.count(node) == 0 && elsewhere < 0) elsewhere = node;
  unsigned long mask[16] = {};
  if (elsewhere >= 0) {
    mask[elsewhere / 64] |= 1UL << (elsewhere % 64);
    syscall(SYS_set_mempolicy, 2, mask, 16 * 64 + 1);
  }
  std::memset(data, 0x77, static_cast<std::size_t>(bytes));
  if (elsewhere >= 0) syscall(SYS_set_mempolicy, 0, nullptr, 0);
}

/// Collective: rank 0 writes every rank's segment of the shared window.
void numamove_test_write_window(MPI_Fint fortran_win) {
  const MPI_Win win = MPI_Win_f2c(fortran_win);
  int ranks = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  if (world_rank() == 0)
    for (int r = 0; r < ranks; ++r) {
      MPI_Aint size = 0;
      int unit = 0;
      char* base = nullptr;
      MPI_Win_shared_query(win, r, &size, &unit, &base);
      std::memset(base, 0x5a, static_cast<std::size_t>(size));
    }
  MPI_Barrier(MPI_COMM_WORLD);
}

/// Collective: prints "rank R OK" or "rank R FAILED"; returns 0 when every rank passed.
int numamove_test_summary() {
  int total = 0;
  MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  std::printf("numamove-test: rank %d %s\n", world_rank(), failures == 0 ? "OK" : "FAILED");
  std::fflush(stdout);
  return total == 0 ? 0 : 1;
}

}  // extern "C"
