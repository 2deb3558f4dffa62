// Helpers for the [multinode] tests: the kernel's own view of the NUMA layout (/sys), moves
// through numamove, pinning, cgroup v2 cpusets, and skips that say why. The pages' contents and
// where the kernel says they are come from tests/support/patterns.hpp and pages.hpp.
//
// The tests read the shape from the topology. tests/vm/run-guest.sh also tells the guest what
// its shape is meant to offer (NUMAMOVE_VM_EXPECT, e.g. "nodes=4 cpuset thp slit"): there a
// test that would skip for lack of a listed feature fails instead, so that a broken guest
// cannot turn the suite into a row of silent skips.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <numamove/numamove.hpp>

#include "support/catch.hpp"
#include "support/pages.hpp"
#include "support/patterns.hpp"

namespace numamove_test {

// ---------------------------------------------------------------- shape expectations -------

/// The words of NUMAMOVE_VM_EXPECT ("nodes=2 cpuset thp ..."); empty outside the guests.
inline std::vector<std::string> vm_expectations() {
  std::vector<std::string> words;
  const char* text = std::getenv("NUMAMOVE_VM_EXPECT");
  std::istringstream in(text ? text : "");
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

inline bool vm_expects(const std::string& feature) {
  const auto words = vm_expectations();
  return std::find(words.begin(), words.end(), feature) != words.end();
}

/// The value of "key=value" in NUMAMOVE_VM_EXPECT, or -1.
inline long vm_expected_number(const std::string& key) {
  for (const auto& w : vm_expectations())
    if (w.rfind(key + "=", 0) == 0) return std::strtol(w.c_str() + key.size() + 1, nullptr, 10);
  return -1;
}

inline std::string vm_shape() {
  const char* shape = std::getenv("NUMAMOVE_VM_SHAPE");
  return shape ? shape : "";
}

}  // namespace numamove_test

/// Skips the rest of the test case, saying why, when `condition` is false; fails instead when
/// the guest's shape promises `feature`.
#define NUMAMOVE_SKIP_UNLESS(condition, feature, why)                                        \
  do {                                                                                       \
    if (!(condition)) {                                                                      \
      if (numamove_test::vm_expects(feature)) {                                              \
        FAIL("the guest shape '" << numamove_test::vm_shape() << "' promises '" << (feature) \
                                 << "' but: " << why);                                       \
      }                                                                                      \
      WARN("SKIPPED (no " << (feature) << " here): " << why);                                \
      return;                                                                                \
    }                                                                                        \
  } while (false)

namespace numamove_test {

// ------------------------------------------------------------------- the kernel's view -----

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// "0-3,8,10-11" -> {0,1,2,3,8,10,11}
inline std::vector<int> parse_list(const std::string& text) {
  std::vector<int> ids;
  std::istringstream in(text);
  for (std::string part; std::getline(in, part, ',');) {
    part.erase(std::remove_if(part.begin(), part.end(),
                              [](char c) { return c == '\n' || c == ' ' || c == '\t'; }),
               part.end());
    if (part.empty()) continue;
    const auto dash = part.find('-');
    const int first = std::stoi(part.substr(0, dash));
    const int last = dash == std::string::npos ? first : std::stoi(part.substr(dash + 1));
    for (int id = first; id <= last; ++id) ids.push_back(id);
  }
  return ids;
}

inline const std::string sys_node = "/sys/devices/system/node";

/// Node lists as the kernel states them: "online", "possible", "has_memory", "has_cpu".
inline std::vector<int> kernel_nodes(const char* state) {
  return parse_list(read_file(sys_node + "/" + state));
}

inline std::vector<int> kernel_cpus_of(int node) {
  return parse_list(read_file(sys_node + "/node" + std::to_string(node) + "/cpulist"));
}

/// Row `node` of the SLIT as /sys shows it, indexed by the online nodes in order.
inline std::vector<int> kernel_distances_from(int node) {
  std::vector<int> row;
  std::istringstream in(read_file(sys_node + "/node" + std::to_string(node) + "/distance"));
  for (int d; in >> d;) row.push_back(d);
  return row;
}

/// Online nodes without memory (memoryless nodes: CPUs only, or nothing).
inline std::vector<int> memoryless_nodes() {
  std::vector<int> result;
  const std::vector<int> memory = kernel_nodes("has_memory");
  for (const int n : kernel_nodes("online"))
    if (!std::binary_search(memory.begin(), memory.end(), n)) result.push_back(n);
  return result;
}

/// Node ids that name no node at all: below the first, in gaps of "possible", and above it.
inline std::vector<int> nonexistent_nodes() {
  const std::vector<int> possible = kernel_nodes("possible");
  std::vector<int> ids{-1};
  for (int id = 0; id <= possible.back(); ++id)
    if (!std::binary_search(possible.begin(), possible.end(), id)) ids.push_back(id);
  ids.push_back(possible.back() + 1);
  ids.push_back(1024);  // MAX_NUMNODES of the distributions' kernels (NODES_SHIFT=10)
  ids.push_back(1 << 20);
  return ids;
}

// ------------------------------------------------------------- moves through numamove -----

/// numamove::move_pages on `path` of the targets.size() pages from `first` of process `pid`, page
/// i to targets[i]: the pages array built, `status` filled with INT32_MIN first, so that an
/// entry the call did not write shows. Returns what numamove::move_pages returns.
inline long numamove_move(numamove::backend path, const void* first,
                          const std::vector<int>& targets, std::vector<int>& status, int pid = 0) {
  std::vector<void*> addresses = page_addresses(first, targets.size());
  status.assign(targets.size(), INT32_MIN);
  return numamove::move_pages(pid, targets.size(), addresses.data(), targets.data(), status.data(),
                              MPOL_MF_MOVE, path);
}

// ------------------------------------------------------------------------ pinning -----------

/// Binds the calling thread to one CPU for its lifetime, then restores the old mask.
class pin_to_cpu {
 public:
  explicit pin_to_cpu(int cpu) {
    CPU_ZERO(&old_);
    ok_ = ::sched_getaffinity(0, sizeof old_, &old_) == 0;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    ok_ = ok_ && ::sched_setaffinity(0, sizeof one, &one) == 0;
  }
  ~pin_to_cpu() {
    if (ok_) ::sched_setaffinity(0, sizeof old_, &old_);
  }
  pin_to_cpu(const pin_to_cpu&) = delete;
  pin_to_cpu& operator=(const pin_to_cpu&) = delete;
  bool ok() const { return ok_; }

 private:
  cpu_set_t old_;
  bool ok_ = false;
};

/// A CPU that is not local to `node` (it may belong to a memoryless node), or -1.
inline int cpu_not_of(int node) {
  const std::vector<int> local = kernel_cpus_of(node);
  for (const int n : kernel_nodes("online"))
    for (const int cpu : kernel_cpus_of(n))
      if (!std::binary_search(local.begin(), local.end(), cpu)) return cpu;
  return -1;
}

/// The nodes with memory and CPUs, ascending: where a pinned thread's first touch lands.
inline std::vector<int> nodes_with_cpus() {
  const numamove::topology& t = numamove::topology::system();
  std::vector<int> with_cpus;
  for (const int n : t.nodes())
    if (!t.cpus_of(n).empty()) with_cpus.push_back(n);
  return with_cpus;
}

/// A CPU of a node with memory other than `node` (first touch from it lands on its own node),
/// or -1.
inline int cpu_of_other_memory_node(int node) {
  const numamove::topology& t = numamove::topology::system();
  for (const int other : t.nodes())
    if (other != node && !t.cpus_of(other).empty()) return t.cpus_of(other).front();
  return -1;
}

/// A CPU of a node with memory, or -1: where faults get huge pages (a fault on a CPU of a
/// memoryless node asks that node for the THP, and Linux 6.1 then falls back to 4 KiB pages).
inline int cpu_of_a_memory_node() {
  const std::vector<int> with_cpus = nodes_with_cpus();
  return with_cpus.empty() ? -1 : numamove::topology::system().cpus_of(with_cpus.front()).front();
}

// ------------------------------------------------------------------ cgroup v2 cpuset --------

inline const std::string cgroup_root = "/sys/fs/cgroup";

/// Why a child cgroup with a cpuset cannot be made here, or "" when it can.
inline std::string cpuset_unavailable() {
  const std::string controllers = read_file(cgroup_root + "/cgroup.controllers");
  if (controllers.empty()) return "no cgroup v2 hierarchy at " + cgroup_root;
  if (controllers.find("cpuset") == std::string::npos)
    return "the cgroup v2 root has no cpuset controller";
  if (read_file(cgroup_root + "/cgroup.subtree_control").find("cpuset") == std::string::npos) {
    std::ofstream enable(cgroup_root + "/cgroup.subtree_control");
    enable << "+cpuset";
    enable.flush();
    if (!enable) return "cannot enable +cpuset in " + cgroup_root + "/cgroup.subtree_control";
  }
  return "";
}

/// A child cgroup of the root whose cpuset.mems is `mems`; removed when it goes out of scope
/// (once no process is left in it).
class cpuset_cgroup {
 public:
  explicit cpuset_cgroup(const std::string& mems) {
    static int serial = 0;
    path_ = cgroup_root + "/numamove-test-" + std::to_string(::getpid()) + "-" +
            std::to_string(++serial);
    if (::mkdir(path_.c_str(), 0755) != 0) {
      error_ = "mkdir " + path_ + ": " + std::strerror(errno);
      return;
    }
    made_ = true;
    std::ofstream out(path_ + "/cpuset.mems");
    out << mems;
    out.flush();
    if (!out) error_ = "cannot write '" + mems + "' to " + path_ + "/cpuset.mems";
  }
  ~cpuset_cgroup() {
    if (made_) ::rmdir(path_.c_str());
  }
  cpuset_cgroup(const cpuset_cgroup&) = delete;
  cpuset_cgroup& operator=(const cpuset_cgroup&) = delete;

  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }

  /// Moves the calling process into the cgroup. Returns 0 or an errno.
  int enter() const {
    const int fd = ::open((path_ + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    const std::string text = std::to_string(::getpid());
    const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    const int error = ok ? 0 : errno;
    ::close(fd);
    return error;
  }

 private:
  std::string path_;
  std::string error_;
  bool made_ = false;
};

// ------------------------------------------------------------------------- misc -------------

inline std::string to_text(const std::vector<int>& v) {
  std::string s = "{";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i != 0) s += ',';
    s += std::to_string(v[i]);
  }
  return s + "}";
}

/// The nodes with memory; the tests need two.
inline std::vector<int> memory_nodes() {
  const std::vector<int> nodes = numamove::topology::system().nodes();
  REQUIRE(nodes.size() >= 2);
  return nodes;
}

/// A node with memory and CPUs (`from`, where a pinned child first-touches its pages) and
/// another node with memory (`to`, the last one, or the first when `from` is the last).
struct move_across {
  move_across() : from(nodes_with_cpus().front()) {
    const std::vector<int> nodes = memory_nodes();
    to = from == nodes.back() ? nodes.front() : nodes.back();
  }
  int from;
  int to;
};

}  // namespace numamove_test
