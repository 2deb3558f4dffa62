// numamove/topology.hpp: the machine's NUMA nodes, their CPUs and distances, read through hwloc.
#pragma once
#include "detail/public_header_begin.hpp"

#include <hwloc.h>
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace numamove {

/// A snapshot of the NUMA layout: which nodes hold memory, which CPUs each has, how far apart
/// nodes are. Node and CPU numbers are the operating system's (the ids move_pages, numactl and
/// /sys use), which need not be contiguous (0, 1, 16, 17 on some machines).
///
/// A topology is a plain value: loaded once from hwloc, then copied and queried freely from any
/// thread. Functions taking a node id throw std::out_of_range for an id that is not in nodes().
class topology {
 public:
  /// This machine, loaded from hwloc on first use. Thread-safe; later calls return the same object.
  /// Throws std::system_error when hwloc cannot load the topology.
  static const topology& system() {
    static const topology loaded = load([](hwloc_topology_t) { return 0; });
    return loaded;
  }

  /// A machine described by an hwloc synthetic string, e.g. "pack:2 numa:1 core:4 pu:1" or, with
  /// operating-system node ids, "pack:2 numa:1(indexes=0,16) core:2 pu:1". `distances`, when
  /// given, is the node-by-node matrix in the order of nodes(); otherwise 10 local, 20 remote.
  /// Throws std::invalid_argument for a description hwloc rejects or a matrix of the wrong size.
  static topology synthetic(const std::string& description,
                            const std::vector<std::vector<int>>& distances = {}) {
    topology made = load(
        [&](hwloc_topology_t t) { return hwloc_topology_set_synthetic(t, description.c_str()); });
    if (!distances.empty()) made.set_distances(distances);
    return made;
  }

  /// A snapshot of a topology the caller has already loaded with hwloc (which keeps ownership).
  static topology from_hwloc(hwloc_topology_t loaded) {
    topology made;
    made.read(loaded);
    return made;
  }

  /// OS ids of the nodes that hold memory, ascending. These are the valid targets of a move.
  std::vector<int> nodes() const {
    std::vector<int> ids;
    for (const auto& [id, info] : nodes_) ids.push_back(id);
    return ids;
  }

  /// True when `node` is a node with memory on this topology.
  bool has_node(int node) const noexcept { return nodes_.count(node) != 0; }

  /// OS ids of the CPUs local to `node`, ascending; empty for a node with memory but no CPUs.
  const std::vector<int>& cpus_of(int node) const { return at(node).cpus; }

  /// Bytes of memory local to `node` as hwloc reports it.
  std::uint64_t memory_of(int node) const { return at(node).memory; }

  /// Relative distance from `from` to `to` (the ACPI SLIT scale: 10 is local).
  int distance(int from, int to) const {
    const int row = at(from).index;
    const int column = at(to).index;
    return distances_[static_cast<std::size_t>(row) * nodes_.size() +
                      static_cast<std::size_t>(column)];
  }

  /// Nodes with memory and no CPUs (CXL or memory-only nodes), ascending. First touch cannot
  /// place memory there; only a kernel policy or a move can.
  std::vector<int> nodes_without_cpus() const {
    std::vector<int> ids;
    for (const auto& [id, info] : nodes_)
      if (info.cpus.empty()) ids.push_back(id);
    return ids;
  }

  /// The node whose CPUs include `cpu`, or -1 when no node with memory claims it (a CPU of a
  /// memoryless node, or an id this topology does not have).
  int node_of_cpu(int cpu) const noexcept {
    for (const auto& [id, info] : nodes_)
      if (std::binary_search(info.cpus.begin(), info.cpus.end(), cpu)) return id;
    return -1;
  }

  /// The node of the CPU the calling thread runs on at this instant (the thread may migrate
  /// right after unless it is bound), or -1 as node_of_cpu gives it.
  int current_node() const noexcept {
    const int cpu = ::sched_getcpu();
    return cpu < 0 ? -1 : node_of_cpu(cpu);
  }

 private:
  struct node_info {
    int index = 0;  // position in nodes(), the row of the distance matrix
    std::vector<int> cpus;
    std::uint64_t memory = 0;
  };

  template <class Configure>
  static topology load(Configure configure) {
    hwloc_topology_t t = nullptr;
    if (hwloc_topology_init(&t) != 0)
      throw std::system_error(errno, std::generic_category(), "numamove: hwloc_topology_init");
    struct release {
      hwloc_topology_t t;
      ~release() { hwloc_topology_destroy(t); }
    } guard{t};
    if (configure(t) != 0)
      throw std::invalid_argument("numamove: hwloc rejected the topology description");
    if (hwloc_topology_load(t) != 0)
      throw std::system_error(errno, std::generic_category(), "numamove: hwloc_topology_load");
    return from_hwloc(t);
  }

  void read(hwloc_topology_t t) {
    hwloc_obj_t obj = nullptr;
    while ((obj = hwloc_get_next_obj_by_type(t, HWLOC_OBJ_NUMANODE, obj)) != nullptr) {
      node_info& info = nodes_[static_cast<int>(obj->os_index)];
      info.memory = obj->attr ? obj->attr->numanode.local_memory : 0;
      if (obj->cpuset) {
        for (int cpu = hwloc_bitmap_first(obj->cpuset); cpu >= 0;
             cpu = hwloc_bitmap_next(obj->cpuset, cpu))
          info.cpus.push_back(cpu);
      }
    }
    int index = 0;
    for (auto& [id, info] : nodes_) info.index = index++;
    read_distances(t);
  }

  void read_distances(hwloc_topology_t t) {
    const std::size_t n = nodes_.size();
    distances_.assign(n * n, 20);
    for (std::size_t i = 0; i < n; ++i) distances_[i * n + i] = 10;
    unsigned count = 1;
    hwloc_distances_s* matrix = nullptr;
    if (hwloc_distances_get_by_type(t, HWLOC_OBJ_NUMANODE, &count, &matrix,
                                    HWLOC_DISTANCES_KIND_MEANS_LATENCY, 0) != 0 ||
        count == 0)
      return;
    for (unsigned i = 0; i < matrix->nbobjs; ++i) {
      for (unsigned j = 0; j < matrix->nbobjs; ++j) {
        const auto from = nodes_.find(static_cast<int>(matrix->objs[i]->os_index));
        const auto to = nodes_.find(static_cast<int>(matrix->objs[j]->os_index));
        if (from == nodes_.end() || to == nodes_.end()) continue;
        distances_[static_cast<std::size_t>(from->second.index) * n +
                   static_cast<std::size_t>(to->second.index)] =
            static_cast<int>(matrix->values[i * matrix->nbobjs + j]);
      }
    }
    hwloc_distances_release(t, matrix);
  }

  void set_distances(const std::vector<std::vector<int>>& rows) {
    const std::size_t n = nodes_.size();
    if (rows.size() != n)
      throw std::invalid_argument("numamove: distance matrix size differs from node count");
    for (std::size_t i = 0; i < n; ++i) {
      if (rows[i].size() != n)
        throw std::invalid_argument("numamove: distance matrix is not square");
      std::copy(rows[i].begin(), rows[i].end(),
                distances_.begin() + static_cast<std::ptrdiff_t>(i * n));
    }
  }

  const node_info& at(int node) const {
    const auto found = nodes_.find(node);
    if (found == nodes_.end())
      throw std::out_of_range("numamove: node " + std::to_string(node) +
                              " is not a node with memory");
    return found->second;
  }

  std::map<int, node_info> nodes_;
  std::vector<int> distances_;  // row-major, nodes() order
};

}  // namespace numamove

#include "detail/public_header_end.hpp"
